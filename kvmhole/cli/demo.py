"""kvmhole demo: the 2020 patch's experiment on the default q35 hole, every strategy in turn."""

import click
from rich.console import Console
from rich.table import Table

from kvmhole.vmm import Machine, MachineConfig
from kvmhole.vmm.strategies import STRATEGIES, native_support


@click.command()
@click.option("--pages", type=click.IntRange(1, 65535), default=8192, show_default=True,
              help="All-ones reads the ecam-scan guest makes.")
def demo(pages):
    """Scan the q35 ECAM window with each hole strategy and compare the exits."""
    console = Console()
    native_ok, why = native_support()
    table = Table(title=f"ecam-scan: {pages} all-ones reads of the 256 MiB q35 ECAM window "
                        "at 0xb0000000")
    for column in ("--hole", "guest reads", "MMIO exits", "KVM mmio_exits", "memslots", "wall",
                   "RSS"):
        table.add_column(column, justify="right")
    for strategy, properties in STRATEGIES.items():
        if properties.needs_patch and not native_ok:
            table.add_row(strategy, "n/a", "n/a", "n/a", "n/a", "n/a", "n/a")
            continue
        r = Machine(MachineConfig(guest="ecam-scan", hole=strategy, pages=pages)).run()
        table.add_row(strategy, str(r.guest_hole_reads), str(r.userspace_exits.get("MMIO", 0)),
                      str(r.kvm_stats["mmio_exits"]), str(r.memslots), f"{r.wall_s * 1e3:.0f} ms",
                      f"{r.rss_bytes / 1e6:.0f} MB")
    console.print(table)
    if not native_ok:
        console.print(f"native: {why}")
