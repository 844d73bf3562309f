"""kvmhole trace: per-interval rows per guest (or NDJSON), and optionally every exit."""

import json
import signal
import sys
import threading
import time

import click

from kvmhole.cli.params import DURATION, INTERVAL
from kvmhole.cli.watching import monitor_args, watch_options
from kvmhole.probes.snapshot import GuestStats, Histogram
from kvmhole.text import printable
from kvmhole.tui.columns import seconds


@click.command()
@click.option("--interval", type=INTERVAL, default=1.0,
              show_default=True, help="Seconds between rows.")
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Stop after this many intervals.")
@click.option("--duration", type=DURATION, default=None,
              help="Stop after this many seconds.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object a line per guest and interval (cumulative counters).")
@click.option("--snapshots", is_flag=True,
              help="Print each interval's whole snapshot (every guest, histograms, probe "
                   "health) as one JSON line: a recording `kvmhole top --replay` plays back.")
@click.option("--events", is_flag=True,
              help="Also print every userspace exit (pid, tid, reason, address, latency).")
@watch_options
def trace(pids, interval, count, duration, as_json, snapshots, events, hole_ranges, preset):
    """Count, per guest, config reads of absent PCI functions (hole reads) by mechanism
    (ECAM, type-1 ports), served in the kernel or exited to userspace."""
    from kvmhole.probes import privileges
    from kvmhole.probes.monitor import Monitor  # loads bcc: only when tracing

    if snapshots and (as_json or events):
        raise click.UsageError("--snapshots prints whole snapshots: it goes without "
                               "--json and --events")
    with Monitor(**monitor_args(pids, hole_ranges, preset), events=events) as monitor:
        stop, broken = threading.Event(), threading.Event()  # broken: stdout was closed
        # Ctrl-C and SIGTERM end the loop after the current interval: raised as
        # KeyboardInterrupt, they would be swallowed inside bcc's event callbacks. Set
        # before saying the probes are attached, so a Ctrl-C right after is a clean stop.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        click.echo(f"kvmhole trace: probes attached ({monitor.plan.path} path; "
                   f"in-kernel = {monitor.plan.probe_path.kernel_counts_note}); Ctrl-C to stop",
                   err=True)
        if events:
            monitor.events(lambda e: _print_event(e, as_json, stop, broken))
        # everything is attached and open: what is left to do needs far less than root
        click.echo(f"kvmhole trace: {privileges.drop_all_but_kept()}", err=True)
        started, rows = time.monotonic(), 0
        lost = LostEvents(as_json)
        while not stop.is_set() and (count is None or rows < count):
            wait = interval
            if duration is not None:
                wait = min(wait, started + duration - time.monotonic())
                if wait <= 0:
                    break
            _wait(monitor, wait, events, stop)
            snapshot = monitor.poll()
            rows += 1
            if snapshots:
                click.echo(snapshot.to_json())
            for guest in [] if snapshots else snapshot.guests:
                click.echo(json.dumps(_row(snapshot.ts, guest)) if as_json
                           else _text(snapshot.ts, guest))
            lost.report(snapshot.probe.lost_events)
            sys.stdout.flush()
        if broken.is_set():
            raise BrokenPipeError  # click's quiet exit (status 1) for a reader that left
        if events:  # what the ring buffer still holds, then what it could not take
            monitor.poll_events(0)
            lost.report(monitor.poll().probe.lost_events)


class LostEvents:
    """Says how many exit events the ring buffer dropped since it last said so: a JSON
    line among the events with --json, a warning on stderr otherwise."""

    def __init__(self, as_json: bool):
        self.as_json, self.reported = as_json, 0

    def report(self, total: int) -> None:
        if total <= self.reported:
            return
        lost, self.reported = total - self.reported, total
        if self.as_json:
            click.echo(json.dumps({"event": "lost", "count": lost, "total": total}))
        else:
            click.echo(f"kvmhole: warning: {lost} exit events lost ({total} in all): the "
                       "ring buffer was full; counts are unaffected", err=True)


def _wait(monitor, seconds: float, events: bool, stop: threading.Event) -> None:
    if not events:
        stop.wait(seconds)
        return
    deadline = time.monotonic() + seconds
    while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        monitor.poll_events(max(1, int(min(left, 0.1) * 1000)))


def _row(ts: float, g: GuestStats) -> dict:
    """The guest's snapshot JSON under the keys trace has always printed (README and
    users' scripts read them): the name as `guest`, each bus's reads flat beside its
    number, histograms as their summary."""
    row = g.to_dict()
    row["guest"] = row.pop("name")
    row["buses"] = [{"bus": b.bus, **b.reads} for b in g.buses]
    row["roundtrip"] = _summary(g.roundtrip)
    row["kernel_time"] = None if g.kernel_time is None else _summary(g.kernel_time)
    return {"ts": round(ts, 6), **row}


def _summary(h: Histogram) -> dict:
    return {"count": h.count, "sum_s": h.sum_s, "p50_s": h.quantile(0.5),
            "p99_s": h.quantile(0.99)}


def _mechanisms(g: GuestStats) -> str:
    """Per mechanism: absent-function reads in kernel / exited (the exits they cost)."""
    parts = []
    for mechanism, c in g.config.items():
        if c.reads_in_kernel or c.read_exits or c.writes:
            parts.append(f"{mechanism} {c.reads_in_kernel}/{c.read_exits} ({c.exits} exits, "
                         f"{c.functions} functions)")
    return "; ".join(parts) or "none"


def _text(ts: float, g: GuestStats) -> str:
    exits = " ".join(f"{k} {v}" for k, v in sorted(g.userspace_exits.items())) or "none"
    state = "" if g.alive else " [exited]"
    buses = ", ".join(f"{b.bus:02x}:{b.total}" for b in g.buses[:3])
    return (f"{time.strftime('%H:%M:%S', time.localtime(ts))} {printable(g.name)} "
            f"(pid {g.pid}, {printable(g.vmm)}/{printable(g.strategy)}){state}: "
            f"hole reads in kernel "
            f"{g.hole_reads_in_kernel} ({g.rates.hole_reads_in_kernel:.0f}/s), "
            f"hole exits {g.hole_read_exits} reads {g.hole_write_exits} writes, "
            f"in kernel/exited by mechanism: {_mechanisms(g)}"
            + (f", busiest buses {buses}" if buses else "") +
            f", exits {exits}, round trip p50 <= {seconds(g.roundtrip.quantile(0.5))}"
            + ("" if g.kernel_time is None
               else f", in kernel p50 <= {seconds(g.kernel_time.quantile(0.5))}"))


def _print_event(event, as_json: bool, stop: threading.Event,
                 broken: threading.Event) -> None:
    """From bcc's callback, which must not raise: a closed stdout (`| head`) stops trace."""
    if broken.is_set():
        return
    try:
        _echo_event(event, as_json)
    except BrokenPipeError:
        broken.set()
        stop.set()


def _echo_event(event, as_json: bool) -> None:
    from kvmhole.probes.bpf import EXIT_REASONS

    reason = EXIT_REASONS.get(event.reason, str(event.reason))
    if as_json:
        click.echo(json.dumps({"event": "exit", "pid": event.pid, "tid": event.tid,
                               "reason": reason, "addr": event.addr,
                               "latency_s": event.latency_ns / 1e9}))
    else:
        click.echo(f"exit pid {event.pid} tid {event.tid} {reason} addr {event.addr:#x} "
                   f"round trip {seconds(event.latency_ns / 1e9)}")
