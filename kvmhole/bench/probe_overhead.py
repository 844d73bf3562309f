"""Probe overhead: the guest's run time with and without the monitor attached.

The Machine runs in this process, so the monitor watches exactly this pid.
Loading the probes compiles BPF (seconds), so it is done once, and each run with
them follows one with them detached (ProbeProgram.detached): pairs side by side,
so the machine's drift, which is large here, hits both alike. The monitor's counts
are checked against the guest's own, so a probe that silently stopped counting
cannot make the overhead look small.
"""

import os
import statistics
import time

from kvmhole.bench.scans import scan
from kvmhole.bench.stats import spread
from kvmhole.vmm.strategies import STRATEGIES as ALL_STRATEGIES

STRATEGIES = ("exit", "alias")  # one whose reads exit, one whose reads stay in the kernel


def _counted(snapshot, strategy: str) -> int:
    stats = snapshot.guest(os.getpid())
    if stats is None:
        return 0
    if ALL_STRATEGIES[strategy].served_in_kernel:
        return stats.hole_reads_in_kernel
    return stats.hole_read_exits


def measure(pages: int, reps: int, advance) -> dict:
    from kvmhole.probes.monitor import Monitor  # bcc: only when this section runs

    without = {s: [] for s in STRATEGIES}
    with_monitor = {s: [] for s in STRATEGIES}
    loaded = time.monotonic()
    with Monitor(pids={os.getpid()}) as monitor:
        load_s = time.monotonic() - loaded
        poll_s = []
        for _ in range(reps):
            for strategy in STRATEGIES:
                with monitor.program.detached():
                    without[strategy].append(scan(strategy, pages).wall_s)
                before = _counted(monitor.poll(), strategy)
                result = scan(strategy, pages)
                with_monitor[strategy].append(result.wall_s)
                started = time.monotonic()
                counted = _counted(monitor.poll(), strategy) - before
                poll_s.append(time.monotonic() - started)
                if counted != result.guest_hole_reads:  # the monitor, not the guest, erred
                    raise RuntimeError(f"the monitor counted {counted} hole accesses of a "
                                       f"{strategy} guest that made {result.guest_hole_reads}")
            advance()
    out = {"pages": pages, "reps": reps, "load_s": load_s, "poll_ms": spread(
        [s * 1e3 for s in poll_s]), "strategies": {}}
    for strategy in STRATEGIES:
        bare, watched = spread(without[strategy]), spread(with_monitor[strategy])
        out["strategies"][strategy] = {
            "without_s": bare, "with_s": watched,
            # the median of each pair's ratio: a pair ran back to back, so it shares
            # the machine's state of the moment
            "slowdown": statistics.median(w / b for w, b in zip(with_monitor[strategy],
                                                               without[strategy], strict=True)),
            "added_us_per_access": (watched["median"] - bare["median"]) / pages * 1e6,
        }
    return out


def steps(reps: int) -> int:
    return reps
