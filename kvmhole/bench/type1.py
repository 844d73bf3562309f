"""Type-1 config reads (address to port 0xCF8, data from 0xCFC) in each hole strategy.

The strategies back the ECAM window with memslots; port I/O has no memslot and
always exits to the VMM, twice per read (address write, data read). So for the
reads stock Linux makes, no strategy changes anything: this row shows it, beside
the same strategy's ECAM read. Each repetition runs ecam-scan with one ECAM read
and then with `pages` type-1 reads too, so the difference is the type-1 reads alone.
"""

from kvmhole.bench.scans import scan
from kvmhole.bench.stats import spread
from kvmhole.vmm.strategies import STRATEGIES, native_support


def _strategies() -> list[str]:
    native_ok, _ = native_support()
    return [name for name, s in STRATEGIES.items() if native_ok or not s.needs_patch]


def measure(pages: int, reps: int, advance) -> dict:
    samples = {s: {"per_read_us": [], "exits": []} for s in _strategies()}
    for _ in range(reps):
        for strategy, s in samples.items():
            alone = scan(strategy, 1)
            both = scan(strategy, 1, type1_pages=pages)
            # the present host bridge is read on the way, like every scan here
            reads = pages + both.guest_result["type1_present_reads"]
            s["per_read_us"].append((both.wall_s - alone.wall_s) / reads * 1e6)
            s["exits"].append((both.userspace_exits["IO"] - alone.userspace_exits["IO"]) / reads)
            advance()
    return {"pages": pages, "reps": reps, "strategies": {
        strategy: {"per_read_us": spread(s["per_read_us"]),
                   "userspace_exits_per_read": max(s["exits"])}
        for strategy, s in samples.items()}}


def steps(reps: int) -> int:
    return reps * len(_strategies())
