"""Run a command in an SVM host whose KVM is the KVM_MEM_PCI_HOLE port.

The SVM host boots Debian's own kernel of the release kernel/release.py resolves, with
the stock kvm_amd loaded; the patched modules built for that very release replace it
before the command runs, so `--hole native` works there. The modules come from
`build()` (cached) and are reached through the SVM host's root, which is this
machine's `/`.
"""

import shlex

from kvmhole.kernel import release
from kvmhole.kernel.build import build
from kvmhole.svmhost import SvmResult, run
from kvmhole.svmhost.kernel import BUSYBOX

SWAP_FAILED = 125  # the command's exit code when the patched modules did not load


def swap_script(modules: dict) -> str:
    """Shell commands that replace the stock kvm_amd and kvm by `modules`."""
    return (f"{BUSYBOX} rmmod kvm_amd kvm && {BUSYBOX} insmod {shlex.quote(str(modules['kvm']))}"
            f" && {BUSYBOX} insmod {shlex.quote(str(modules['kvm-amd']))}")


def run_patched(command: list[str], series: str | None = None, progress=lambda message: None,
                **kwargs) -> SvmResult:
    """svmhost.run(command) on `series` (default: Debian's default), with the patched kvm
    and kvm-amd built for that release loaded first."""
    kernel = release.resolve(series)
    modules = build(kernel, progress=progress).modules
    setup = (f"{swap_script(modules)} || {{ echo 'kvmhole: loading the KVM_MEM_PCI_HOLE "
             f"modules failed' >&2; exit {SWAP_FAILED}; }}")
    return run(command, series=kernel.series, kvm="stock", setup=setup, progress=progress,
               **kwargs)
