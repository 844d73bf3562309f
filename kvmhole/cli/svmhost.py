"""kvmhole svmhost: run one command inside an SVM host nested under QEMU TCG."""

import sys

import click

from kvmhole.kernel.release import SERIES


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=600.0,
              show_default=True, help="Seconds from boot to power-off before giving up.")
@click.option("--no-kvm", is_flag=True,
              help="Do not load Debian's kvm_amd: the command loads its own KVM modules.")
@click.option("--pci-hole-kvm", is_flag=True,
              help="Replace kvm_amd by the KVM_MEM_PCI_HOLE port (kvmhole kernel build) "
                   "before COMMAND, so --hole native works in it.")
@click.option("--kernel", "series", type=click.Choice(SERIES), default=None,
              help="The Debian kernel series to boot, from its installed headers release "
                   "[default: the series of linux-headers-amd64].")
@click.option("--memory", default="4G", show_default=True, help="The SVM host's RAM.")
@click.option("--cpu", default=None, metavar="MODEL[,+FEATURE,-FEATURE...]",
              help="QEMU -cpu for the SVM host's vCPUs [default: EPYC with svm and npt].")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def svmhost(timeout, no_kvm, pci_hole_kvm, series, memory, cpu, command):
    """Boot an SVM host (QEMU TCG with an AMD vCPU that has SVM and nested paging,
    running Debian's own kernel of an installed headers release, with this machine's /
    as its read-only root), run COMMAND in it in the current directory (any directory:
    /tmp too), power it off.

    The command's output is streamed as it runs and its exit code is kvmhole's.
    Inside, kvm_amd is loaded, so kvm_exit, kvm_page_fault and kvm_entry fire as on
    an AMD host. TCG timings are no hardware timings: compare ratios only.

    Example: kvmhole svmhost --kernel 6.12 -- .venv/bin/kvmhole doctor
    """
    from kvmhole.svmhost import CPU, run

    def progress(message: str) -> None:  # on a terminal only: stderr is the command's
        if sys.stderr.isatty():
            click.echo(f"kvmhole svmhost: {message}", err=True)

    if pci_hole_kvm:
        if no_kvm:
            raise click.UsageError("--pci-hole-kvm and --no-kvm exclude each other")
        from kvmhole.svmhost.patched_kvm import run_patched

        result = run_patched(list(command), series, timeout=timeout, memory=memory,
                             cpu=cpu or CPU, stream=True, progress=progress)
    else:
        result = run(list(command), timeout=timeout, kvm="none" if no_kvm else "stock",
                     memory=memory, cpu=cpu or CPU, stream=True, series=series,
                     progress=progress)
    progress(f"exit code {result.returncode} after {result.seconds:.1f} s")
    sys.exit(result.returncode)
