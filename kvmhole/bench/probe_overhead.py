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
Each round also times another process's syscalls the three ways: what the probes
cost every process on the host, not only the guests.
"""

import os
import statistics
import subprocess
import time

from kvmhole.bench.scans import scan
from kvmhole.bench.stats import spread
from kvmhole.vmm.strategies import STRATEGIES as ALL_STRATEGIES

STRATEGIES = ("exit", "alias")  # one whose reads exit, one whose reads stay in the kernel
# Another process's syscalls: what the probes cost every process on the host, not
# only guests (dd with 1-byte blocks makes two syscalls per byte, nothing else).
SYSCALL_BYTES = 200_000
WAYS = ("without", "with", "tracing_only")  # detached, attached, only the empty twin


def _counted(snapshot, strategy: str) -> int:
    stats = snapshot.guest(os.getpid())
    if stats is None:
        return 0
    if ALL_STRATEGIES[strategy].served_in_kernel:
        return stats.hole_reads_in_kernel
    return stats.hole_read_exits


def _scan(strategy: str, pages: int) -> tuple[float, int]:
    """The scan's time, and the hole reads the guest counted (only a watched run's
    are the monitor's too)."""
    result = scan(strategy, pages)
    return result.wall_s, result.guest_hole_reads


def _syscalls() -> tuple[float, None]:
    """Seconds per syscall of a dd copying 1-byte blocks."""
    started = time.monotonic()
    subprocess.run(["dd", "if=/dev/zero", "of=/dev/null", "bs=1", f"count={SYSCALL_BYTES}"],
                   check=True, capture_output=True)
    return (time.monotonic() - started) / (2 * SYSCALL_BYTES), None


def measure(pages: int, reps: int, advance) -> dict:
    # bcc: only when this section runs
    from kvmhole.probes.bpf import detached
    from kvmhole.probes.monitor import Monitor

    def three_ways(run, *args, times: dict[str, list[float]]):
        """run(*args) -> (seconds, result) with the probes detached, with only their
        empty twin (`twin`), with the probes: side by side, each taking its turn in every
        round. The result of the watched run."""
        with monitor.program.detached():
            times["tracing_only"].append(run(*args)[0])
            with detached(twin):
                times["without"].append(run(*args)[0])
        with detached(twin):
            seconds, watched = run(*args)
        times["with"].append(seconds)
        return watched

    scans = {s: {way: [] for way in WAYS} for s in STRATEGIES}
    syscalls = {way: [] for way in WAYS}
    loaded = time.monotonic()
    with Monitor(pids={os.getpid()}) as monitor:
        load_s = time.monotonic() - loaded
        poll_s = []
        with monitor.program.empty_twin() as twin:
            for _ in range(reps):
                for strategy in STRATEGIES:
                    before = _counted(monitor.poll(), strategy)
                    made = three_ways(_scan, strategy, pages, times=scans[strategy])
                    started = time.monotonic()
                    counted = _counted(monitor.poll(), strategy) - before
                    poll_s.append(time.monotonic() - started)
                    if counted != made:  # the monitor, not the guest, erred
                        raise RuntimeError(f"the monitor counted {counted} hole accesses of "
                                           f"a {strategy} guest that made {made}")
                three_ways(_syscalls, times=syscalls)
                advance()
    out = {"pages": pages, "reps": reps, "load_s": load_s, "poll_ms": spread(
        [s * 1e3 for s in poll_s]), "strategies": {},
        "syscalls": {"syscalls_per_run": 2 * SYSCALL_BYTES, **_compared(syscalls, "ns", 1e9)}}
    for strategy in STRATEGIES:
        compared = out["strategies"][strategy] = _compared(scans[strategy], "s", 1.0)
        for way, added in (("with", "added_us_per_access"),
                           ("tracing_only", "tracing_only_added_us_per_access")):
            compared[added] = (compared[f"{way}_s"]["median"] - compared["without_s"]["median"]
                               ) / pages * 1e6
    return out


def _compared(times: dict[str, list[float]], unit: str, scale: float) -> dict:
    """Each way's spread, and the slowdowns: the median of each round's ratio to the
    detached run (a round's runs share the machine's state of the moment)."""
    return {f"{way}_{unit}": spread([t * scale for t in times[way]]) for way in WAYS} | {
        "slowdown": _paired(times["with"], times["without"]),
        "tracing_only_slowdown": _paired(times["tracing_only"], times["without"])}


def _paired(slower: list[float], bare: list[float]) -> float:
    return statistics.median(s / b for s, b in zip(slower, bare, strict=True))


def steps(reps: int) -> int:
    return reps
