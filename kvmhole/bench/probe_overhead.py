"""Probe overhead: the guest's run time with and without the monitor attached.

The Machine runs in this process, so the monitor watches exactly this pid.
Loading the probes compiles BPF (seconds), so it is done once, and each run with
them follows one with them detached (ProbeProgram.detached): pairs side by side,
so the machine's drift, which is large here, hits both alike. The monitor's counts
are checked against the guest's own, so a probe that silently stopped counting
cannot make the overhead look small.

A third run of each round has only the probes' empty twin attached: programs that
do nothing, on the same events. Its slowdown is what tracing those events costs
this host at all, the floor under any probe's overhead, measured beside it.
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
    # bcc: only when this section runs
    from kvmhole.probes.bpf import detached
    from kvmhole.probes.monitor import Monitor

    without = {s: [] for s in STRATEGIES}
    with_monitor = {s: [] for s in STRATEGIES}
    tracing_only = {s: [] for s in STRATEGIES}
    loaded = time.monotonic()
    with Monitor(pids={os.getpid()}) as monitor:
        load_s = time.monotonic() - loaded
        twin = monitor.program.empty_twin()
        poll_s = []
        for _ in range(reps):
            for strategy in STRATEGIES:
                with monitor.program.detached():
                    tracing_only[strategy].append(scan(strategy, pages).wall_s)
                    with detached(twin):
                        without[strategy].append(scan(strategy, pages).wall_s)
                before = _counted(monitor.poll(), strategy)
                with detached(twin):
                    result = scan(strategy, pages)
                with_monitor[strategy].append(result.wall_s)
                started = time.monotonic()
                counted = _counted(monitor.poll(), strategy) - before
                poll_s.append(time.monotonic() - started)
                if counted != result.guest_hole_reads:  # the monitor, not the guest, erred
                    raise RuntimeError(f"the monitor counted {counted} hole accesses of a "
                                       f"{strategy} guest that made {result.guest_hole_reads}")
            advance()
        twin.cleanup()
    out = {"pages": pages, "reps": reps, "load_s": load_s, "poll_ms": spread(
        [s * 1e3 for s in poll_s]), "strategies": {}}
    for strategy in STRATEGIES:
        bare, watched = spread(without[strategy]), spread(with_monitor[strategy])
        floor = spread(tracing_only[strategy])
        out["strategies"][strategy] = {
            "without_s": bare, "with_s": watched, "tracing_only_s": floor,
            # the median of each pair's ratio: a pair ran back to back, so it shares
            # the machine's state of the moment
            "slowdown": _paired(with_monitor[strategy], without[strategy]),
            "added_us_per_access": (watched["median"] - bare["median"]) / pages * 1e6,
            "tracing_only_slowdown": _paired(tracing_only[strategy], without[strategy]),
            "tracing_only_added_us_per_access": (floor["median"] - bare["median"]) / pages * 1e6,
        }
    return out


def _paired(slower: list[float], bare: list[float]) -> float:
    return statistics.median(s / b for s, b in zip(slower, bare, strict=True))


def steps(reps: int) -> int:
    return reps
