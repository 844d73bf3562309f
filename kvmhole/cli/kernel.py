"""kvmhole kernel: the KVM_MEM_PCI_HOLE port as kvm modules for Debian 12's 6.1 kernel."""

import json
from pathlib import Path

import click


@click.group()
def kernel():
    """Build the 2020 KVM_MEM_PCI_HOLE series, ported to Linux 6.1 (kernel/pci-hole/),
    as out-of-tree kvm modules for Debian's 6.1.0-56-amd64 kernel."""


@kernel.command()
@click.option("--source", type=click.Path(path_type=Path, dir_okay=False),
              default=None, show_default="/usr/src/linux-source-6.1.tar.xz",
              help="The linux-source-6.1 tarball (must match the headers exactly).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
def build(source, as_json):
    """Build kvm.ko, kvm-amd.ko and kvm-intel.ko with the patches applied (cached under
    /var/cache/kvmhole/kernel: a rerun does no work) and print their paths."""
    from kvmhole.kernel import build as kernel_build

    done = kernel_build.build(**({"source": source} if source else {}))
    if as_json:
        click.echo(json.dumps(done.to_dict()))
        return
    for path in done.modules.values():
        click.echo(path)
