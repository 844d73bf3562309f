"""A real hypervisor host: hundreds of idle guests, two busy ones, one monitor.

The idle fleet grows in steps (50, 100, 250, 500 guests); at each step two busy
guests (an exit and an alias ecam-scan) run beside it under the same monitor and
must be counted exactly, every idle guest must be listed, and what the monitor and
the views cost is measured against the guest count: one poll, one /metrics scrape
(time and size), one `kvmhole top` refresh, the monitor's RSS and its CPU share
while it polls every second.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack

import psutil

from kvmhole.bench import views
from kvmhole.bench.fleet import Fleet
from kvmhole.bench.stats import spread

COUNTS = (50, 100, 250, 500)
QUICK_COUNTS = (50, 100)
BUSY_PAGES = 4096
CPU_WINDOW_S = 5.0  # the monitor polls once a second for this long, CPU measured over it


def _busy(strategy: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kvmhole", "run", "ecam-scan", "--hole",
                             strategy, "--pages", str(BUSY_PAGES), "--json",
                             "--name", f"busy-{strategy}"], stdout=subprocess.PIPE, text=True,
                            env=env)


def _wait_listed(monitor, pids: set[int], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not pids <= {g.pid for g in monitor.poll().guests if g.alive}:
        if time.monotonic() > deadline:
            raise RuntimeError("the idle guests did not all appear in the monitor's snapshot")
        time.sleep(0.5)


def _busy_exact(monitor, env: dict) -> bool:
    """Two busy guests beside the fleet: counted exactly, against their own counts."""
    runs = [_busy(strategy, env) for strategy in ("exit", "alias")]
    results = []
    for process in runs:
        out, _ = process.communicate(timeout=300)
        results.append(json.loads(out))
    snapshot = monitor.poll()
    exact = True
    for run in results:
        guest = snapshot.guest(run["pid"])
        served = (guest.hole_reads_in_kernel if run["hole"] == "alias"
                  else guest.hole_read_exits) if guest else None
        exact &= served == run["guest_hole_reads"] == BUSY_PAGES
    return exact


def _step(monitor, fleet_pids: set[int], env: dict, reps: int) -> dict:
    _wait_listed(monitor, fleet_pids)
    exact = _busy_exact(monitor, env)
    polls = []
    me = psutil.Process()
    cpu_before, started = me.cpu_times(), time.monotonic()
    while time.monotonic() - started < CPU_WINDOW_S:
        t = time.perf_counter()
        snapshot = monitor.poll()
        polls.append((time.perf_counter() - t) * 1e3)
        time.sleep(1.0)
    cpu_after = me.cpu_times()
    cpu = (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system)
    listed = fleet_pids <= {g.pid for g in snapshot.guests}
    return {
        "idle_guests": len(fleet_pids), "busy_exact": exact, "idle_all_listed": listed,
        "poll_ms": spread(polls),
        "exporter": views.exporter_scrape(reps, lambda _: monitor.poll()),
        "tui": views.tui_refresh(reps, lambda _: monitor.poll()),
        "monitor_rss_bytes": me.memory_info().rss,
        "monitor_cpu_share": cpu / (time.monotonic() - started),
    }


def measure(counts, reps: int, advance) -> dict:
    from kvmhole.probes.monitor import Monitor

    rows = []
    with tempfile.TemporaryDirectory() as run_dir, ExitStack() as fleets:
        env = {**os.environ, "KVMHOLE_RUN_DIR": run_dir}
        saved = os.environ.get("KVMHOLE_RUN_DIR")
        os.environ["KVMHOLE_RUN_DIR"] = run_dir  # the monitor reads this registry only
        try:
            with Monitor() as monitor:
                pids: set[int] = set()
                for count in counts:
                    fleet = fleets.enter_context(
                        Fleet(count - len(pids), prefix=f"idle{count}", env=env))
                    pids |= set(fleet.pids)
                    rows.append(_step(monitor, pids, env, reps))
                    advance()
                maps = monitor.program.capacity()
        finally:
            if saved is None:
                os.environ.pop("KVMHOLE_RUN_DIR")
            else:
                os.environ["KVMHOLE_RUN_DIR"] = saved
    return {"busy_pages": BUSY_PAGES, "rows": rows, "map_capacity": maps}


def steps(counts) -> int:
    return len(counts)
