"""kvmhole run: one guest to completion, with a summary or one JSON object."""

import json
import sys

import click

from kvmhole.cli.params import ADDRESS, DURATION, SIZE
from kvmhole.guests import GUESTS
from kvmhole.vmm import GuestStopped, Machine, MachineConfig
from kvmhole.vmm.memmap import Q35_ECAM_BASE, Q35_ECAM_SIZE
from kvmhole.vmm.strategies import CHOICES

SUMMARY_STATS = ("exits", "mmio_exits", "io_exits", "insn_emulation", "halt_exits")


@click.command(help="Run GUEST (default ecam-scan) to completion and summarise its exits.\n\n"
                    "Guests: " + ", ".join(GUESTS) + ".")
@click.argument("guest", default="ecam-scan", metavar="[GUEST]")
@click.option("--hole", type=click.Choice(CHOICES), default="auto", show_default=True,
              help="How the PCI hole is backed: auto picks the best the host supports.")
@click.option("--hole-base", type=ADDRESS, default=Q35_ECAM_BASE, show_default="0xb0000000",
              help="Guest-physical start of the ECAM window the hole lives in.")
@click.option("--hole-size", type=SIZE, default=Q35_ECAM_SIZE, show_default="256M",
              help="Size of the ECAM window (1 MiB per bus).")
@click.option("--ram", "ram_size", type=SIZE, default=64 << 20, show_default="64M",
              help="Guest RAM, placed below the hole.")
@click.option("--pages", type=click.IntRange(0, (1 << 32) - 1), default=None,
              help="ecam-scan: all-ones reads to make (default 8192); mixed: per batch (64).")
@click.option("--passes", type=click.IntRange(min=1), default=1, show_default=True,
              help="ecam-scan: scan the same pages this many times (re-reads).")
@click.option("--type1-pages", type=click.IntRange(min=0), default=0, show_default=True,
              help="ecam-scan: then read this many absent functions by type-1 port I/O "
                   "(0xCF8/0xCFC), as stock Linux does: each read is two exits to the VMM.")
@click.option("--device", "devices", multiple=True, metavar="BB:DD.F[=VVVV:DDDD]",
              help="Add a present PCI function (00:00.0, the host bridge, always is).")
@click.option("--scan-ram", is_flag=True,
              help="ecam-scan reads RAM pages instead of the hole (the loop-cost baseline).")
@click.option("--c-fastpath", is_flag=True,
              help="Answer hole-read exits in a C loop instead of Python (shows Python's cost).")
@click.option("--timeout", type=DURATION, default=None,
              help="Stop the guest after this many seconds (an error).")
@click.option("--name", default=None, help="Guest name shown by monitors (default GUEST-PID).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
def run(guest, hole, hole_base, hole_size, ram_size, pages, passes, type1_pages, devices,
        scan_ram, c_fastpath, timeout, name, as_json):
    config = MachineConfig(guest=guest, hole=hole, hole_base=hole_base, hole_size=hole_size,
                           ram_size=ram_size, pages=pages, passes=passes, type1_pages=type1_pages,
                           devices=list(devices), name=name, timeout=timeout,
                           scan_ram=scan_ram, c_fastpath=c_fastpath)
    machine = Machine(config)
    result = machine.run()
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        _summary(result)
    if result.error is not None:
        click.echo(f"kvmhole: error: {result.error}", err=True)
        # a stopping signal: the exit status of a process it killed, as shells expect
        stopped = isinstance(machine.error, GuestStopped)
        sys.exit(128 + machine.error.signum if stopped else 1)
    if result.status != "ok":
        click.echo(f"kvmhole: error: guest {result.guest} reported failures: "
                   f"{result.guest_result}", err=True)
        sys.exit(1)


def _summary(r) -> None:
    exits = ", ".join(f"{k} {v}" for k, v in sorted(r.userspace_exits.items())) or "none"
    stats = ", ".join(f"{k} {r.kvm_stats[k]}" for k in SUMMARY_STATS if k in r.kvm_stats)
    g = r.guest_result
    click.echo(f"{r.name}: {r.guest} with hole={r.hole} "
               f"({r.hole_size >> 20} MiB at {r.hole_base:#x}, {r.hole_pages} hole pages, "
               f"{r.memslots} memslots)")
    click.echo(f"  guest:           {g['hole_reads']} all-ones reads, {g['present_reads']} "
               f"present-device reads, {g['hole_writes']} hole writes -> {r.status}")
    click.echo(f"  userspace exits: {exits} (hole reads {r.hole_read_exits} by ECAM, "
               f"{r.type1_hole_read_exits} by type-1, "
               f"hole writes {r.hole_write_exits}, device {r.device_mmio_exits})")
    click.echo(f"  KVM stats:       {stats}")
    click.echo(f"  wall {r.wall_s:.3f} s, RSS {r.rss_bytes / 1e6:.1f} MB "
               f"(USS {r.uss_bytes / 1e6:.1f} MB)")
