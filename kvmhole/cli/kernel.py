"""kvmhole kernel: the KVM_MEM_PCI_HOLE port as kvm modules for Debian 12's kernels."""

import json
from pathlib import Path

import click

from kvmhole.kernel.release import SERIES


@click.group()
def kernel():
    """Build the 2020 KVM_MEM_PCI_HOLE series, ported to Debian 12's kernel series
    (kernel/pci-hole/patches/SERIES/), as out-of-tree kvm modules for the installed
    headers release of a series."""


@kernel.command()
@click.option("--kernel", "series", type=click.Choice(SERIES), default=None,
              help="The kernel series to build for, its installed headers release "
                   "[default: the series of linux-headers-amd64].")
@click.option("--source", type=click.Path(path_type=Path, dir_okay=False),
              default=None, show_default="/usr/src/linux-source-SERIES.tar.xz",
              help="The linux-source-SERIES tarball (must match the headers exactly).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
def build(series, source, as_json):
    """Build kvm.ko, kvm-amd.ko and kvm-intel.ko with the patches applied (cached under
    /var/cache/kvmhole/kernel: a rerun does no work) and print their paths."""
    from kvmhole.kernel import build as kernel_build
    from kvmhole.kernel import release

    done = kernel_build.build(release.resolve(series), source=source)
    if as_json:
        click.echo(json.dumps(done.to_dict()))
        return
    for path in done.modules.values():
        click.echo(path)
