"""kvmhole export: serve the probes' per-guest snapshot as Prometheus metrics."""

import signal

import click

from kvmhole.exporter.server import DEFAULT_LISTEN, listening, parse_listen
from kvmhole.exporter.store import LatestSnapshot
from kvmhole.probes.discovery import PRESETS, parse_hole_range


@click.command()
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT",
              help="Address to serve /metrics on (port 0 picks a free port).")
@click.option("--interval", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True,
              help="Seconds between reads of the BPF maps; scrapes serve the latest read.")
@click.option("-p", "--pid", "pids", type=int, multiple=True,
              help="Watch only this VMM process (repeatable); default: every guest.")
@click.option("--hole-range", "hole_ranges", multiple=True, metavar="PID:START-END",
              help="Hole range of a VMM kvmhole did not start (repeatable).")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
              help="Hole ranges for VMMs with no registry entry and no --hole-range "
                   "[default: q35, 0xb0000000 + 256 MiB].")
def export(listen, interval, pids, hole_ranges, preset):
    """Serve per-guest hole reads and exits as Prometheus metrics until stopped."""
    from kvmhole.exporter.poller import Poller
    from kvmhole.probes.monitor import Monitor  # loads bcc: only when exporting

    parse_listen(listen)  # a bad address fails before the probes load
    ranges: dict[int, list[tuple[int, int]]] = {}
    for spec in hole_ranges:
        pid, span = parse_hole_range(spec)
        ranges.setdefault(pid, []).append(span)
    # SIGTERM (systemd, kill) stops the exporter as Ctrl-C does: the with blocks
    # below then stop the poller, close the socket and detach the probes.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    store = LatestSnapshot()
    try:
        # Bind first: a port in use is reported before the probes load.
        with listening(listen, store) as address, \
                Monitor(pids=set(pids) or None, hole_ranges=ranges, preset=preset) as monitor, \
                Poller(monitor.poll, store, interval):
            click.echo(f"kvmhole export: serving http://{address}/metrics "
                       f"({monitor.plan.path} probe path); Ctrl-C to stop", err=True)
            while True:
                signal.pause()
    except KeyboardInterrupt:
        pass
