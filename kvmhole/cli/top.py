"""kvmhole top: the live view of every guest (a table when stdout is not a terminal)."""

import contextlib
import sys
import time
from pathlib import Path

import click

from kvmhole.cli.params import INTERVAL
from kvmhole.cli.watching import monitor_args, watch_options
from kvmhole.probes import ProbeUnavailable


@click.command()
@click.option("--interval", type=INTERVAL, default=1.0,
              show_default=True, help="Seconds between refreshes.")
@click.option("--demo", is_flag=True,
              help="Also start mixed guests with the alias, dense and exit strategies; "
                   "they stop when kvmhole top does.")
@click.option("--replay", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Play back a `kvmhole trace --snapshots` recording, one "
                                   "snapshot per interval, instead of watching this host "
                                   "(needs no root or BPF).")
@watch_options
def top(interval, demo, replay, pids, hole_ranges, preset):
    """Live table of guests: hole reads served in the kernel vs exits to userspace.

    Keys: arrows select, s/r sort, / filter, p pause, ? help, q quit. When stdout
    is not a terminal, prints one snapshot (taken over one interval) and exits;
    with --replay, the recording's last one."""
    if replay is not None:
        _replay(replay, interval, demo or pids or hole_ranges or preset)
        return
    from kvmhole.probes.monitor import Monitor  # loads bcc: only when watching

    watch = monitor_args(pids, hole_ranges, preset)
    with contextlib.ExitStack() as stack:
        if demo:  # first, so the guests start while the probes load
            from kvmhole.tui.demo import DemoGuests

            guests = stack.enter_context(DemoGuests())
            if watch["pids"] is not None:
                watch["pids"] |= guests.pids
        try:
            monitor = stack.enter_context(Monitor(**watch))
        except ProbeUnavailable as error:
            raise ProbeUnavailable(f"{error} (`kvmhole doctor` checks the whole host)") from None
        if demo:
            guests.wait_ready()
        from kvmhole.probes import privileges

        # attached, demo guests started: what is left to do needs far less than root
        click.echo(f"kvmhole top: {privileges.drop_all_but_kept()}", err=True)
        if not sys.stdout.isatty():
            _print_once(monitor.poll, interval)
            return
        from kvmhole.tui.app import TopApp

        _run_app(TopApp(monitor.poll, interval))


def _run_app(app) -> None:
    """Run the TUI; a crash (Textual has shown its traceback) is exit status 1, not 0."""
    app.run()
    if app.return_code:
        sys.exit(app.return_code)


def _print_once(poll, interval: float) -> None:
    """One snapshot whose rates cover exactly one interval from now."""
    from kvmhole.tui.columns import text_table

    poll()  # the baseline: rates are over the time since the previous poll
    time.sleep(interval)
    click.echo(text_table(poll()))


def _replay(path: Path, interval: float, watching) -> None:
    from kvmhole.tui.columns import text_table
    from kvmhole.tui.source import read_recording, replay

    if watching:
        raise click.UsageError("--replay shows a recording: it goes without --demo, -p, "
                               "--hole-range and --preset")
    snapshots = read_recording(path)
    if not sys.stdout.isatty():
        click.echo(text_table(snapshots[-1]))
        return
    from kvmhole.tui.app import TopApp

    _run_app(TopApp(replay(snapshots), interval))
