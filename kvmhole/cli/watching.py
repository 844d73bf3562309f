"""The options every command that watches guests shares (trace, export, top):
which VMM processes, and the hole ranges of VMMs that kvmhole did not start."""

import click

from kvmhole.cli.params import PID
from kvmhole.errors import ConfigError
from kvmhole.probes.discovery import PRESETS, parse_hole_range
from kvmhole.vmm.memmap import MAX_HOLE_RUNS
from kvmhole.vmm.registry import process_start


def watch_options(command):
    """Add -p/--pid, --hole-range and --preset to a click command."""
    for option in reversed((
        click.option("-p", "--pid", "pids", type=PID, multiple=True,
                     help="Watch only this VMM process (repeatable); default: every guest."),
        click.option("--hole-range", "hole_ranges", multiple=True, metavar="PID:START-END",
                     help="Hole range of a VMM kvmhole did not start (repeatable)."),
        click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
                     help="Hole ranges for VMMs with no registry entry and no --hole-range "
                          "[default: q35, 0xb0000000 + 256 MiB]."),
    )):
        command = option(command)
    return command


def monitor_args(pids: tuple[int, ...], hole_ranges: tuple[str, ...],
                 preset: str | None) -> dict:
    """The options' values as keyword arguments of probes.Monitor."""
    for pid in pids:
        if process_start(pid) is None:  # gone, or a zombie that runs no guest
            raise ConfigError(f"-p {pid}: there is no process {pid}")
    ranges: dict[int, list[tuple[int, int]]] = {}
    for spec in hole_ranges:
        pid, span = parse_hole_range(spec)
        ranges.setdefault(pid, []).append(span)
    for pid, spans in ranges.items():
        if len(spans) > MAX_HOLE_RUNS:
            raise ConfigError(f"{len(spans)} --hole-range values for pid {pid}: the probes "
                              f"count at most {MAX_HOLE_RUNS} ranges per guest")
    return {"pids": set(pids) or None, "hole_ranges": ranges, "preset": preset}
