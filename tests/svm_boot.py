"""Boots of the SVM host for the suite, with one retry of a boot that hung.

The SVM host used to hang now and then (both QEMU vCPU threads at 100 %, nothing
on its console): KVM live-patched __schedule while the other vCPU ran it, under
multi-threaded TCG. The idle VM it now holds for every job (svmhost/keeper.py)
removed that cause. A boot that still does not finish is retried once, and the
first boot's report, which names where each vCPU was, is kept in a warning, so any
new hang stays visible without failing the suite on the emulator's account.
"""

import warnings

from kvmhole.svmhost import SvmHostTimeout


def boot(run, *args, **kwargs):
    """run(*args, **kwargs), again once if the SVM host did not power off in time."""
    try:
        return run(*args, **kwargs)
    except SvmHostTimeout as hang:
        warnings.warn(f"retrying a hung SVM host boot: {hang}", stacklevel=2)
        return run(*args, **kwargs)
