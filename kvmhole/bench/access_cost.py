"""Per-access cost of a hole read in each strategy.

Each repetition runs ecam-scan over the hole and, right after, the same guest
over RAM pages made to read all-ones (--scan-ram): identical instructions, so
(hole - RAM) / reads is the cost of the hole access itself and the guest
loop's own cost cancels out. Strategies are interleaved within a repetition so
drift on the machine hits them all alike.
"""

from kvmhole.bench.scans import scan
from kvmhole.bench.stats import ratio, spread
from kvmhole.vmm.strategies import STRATEGIES, native_support

# (label, hole strategy, C fast path): every strategy, and the exiting ones once more
# with the C run loop, whose difference is Python's share of an exit
VARIANTS = [(name, name, False) for name in STRATEGIES] + [
    (f"{name} (C loop)", name, True) for name, s in STRATEGIES.items() if not s.served_in_kernel]


def _runnable(native_ok: bool) -> list[tuple[str, str, bool]]:
    return [v for v in VARIANTS if native_ok or not STRATEGIES[v[1]].needs_patch]


def measure(pages: int, reps: int, advance) -> dict:
    native_ok, native_why = native_support()
    variants = _runnable(native_ok)
    samples = {label: {"hole": [], "ram": [], "exits": []} for label, _, _ in variants}
    for _ in range(reps):
        for label, strategy, c_fastpath in variants:
            hole = scan(strategy, pages, c_fastpath=c_fastpath)
            ram = scan(strategy, pages, scan_ram=True, c_fastpath=c_fastpath)
            samples[label]["hole"].append(hole.wall_s)
            samples[label]["ram"].append(ram.wall_s)
            samples[label]["exits"].append(hole.hole_read_exits)
            advance()
    out = {"pages": pages, "reps": reps, "native": {"available": native_ok, "reason": native_why},
           "strategies": {}}
    for label, s in samples.items():
        accesses = pages
        out["strategies"][label] = {
            "per_read_us": spread([w / accesses * 1e6 for w in s["hole"]]),
            "ram_per_read_us": spread([w / accesses * 1e6 for w in s["ram"]]),
            "hole_cost_us": spread([(h - r) / accesses * 1e6
                                    for h, r in zip(s["hole"], s["ram"], strict=True)]),
            "userspace_exits_per_read": max(s["exits"]) / accesses,
        }
    per_read = {k: v["per_read_us"]["median"] for k, v in out["strategies"].items()}
    cost = {k: v["hole_cost_us"]["median"] for k, v in out["strategies"].items()}
    # the first served-in-kernel strategy this host ran: the patch's, where it exists
    in_kernel = next(name for name, s in STRATEGIES.items()
                     if s.served_in_kernel and name in per_read)
    out["headline"] = {
        "in_kernel_strategy": in_kernel,
        "per_read_ratio_exit_vs_in_kernel": ratio(per_read["exit"], per_read[in_kernel]),
        # a ratio over an in-kernel cost whose runs straddle zero would be noise's
        "hole_cost_ratio_exit_vs_in_kernel":
            ratio(cost["exit"], cost[in_kernel])
            if out["strategies"][in_kernel]["hole_cost_us"]["min"] > 0 else None,
        "python_share_of_exit_us": cost["exit"] - cost["exit (C loop)"],
    }
    return out


def steps(reps: int) -> int:
    return reps * len(_runnable(native_support()[0]))
