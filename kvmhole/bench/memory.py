"""Host memory and memslots as the hole grows, for dense and alias (exit as the
baseline). Each point is a fresh `kvmhole run` process, so RSS is not muddied by
earlier runs."""

from kvmhole.bench.scans import scan_process
from kvmhole.vmm.strategies import STRATEGIES as ALL_STRATEGIES
from kvmhole.vmm.strategies import native_support

SIZES_MIB = (1, 4, 16, 64, 256)
QUICK_SIZES_MIB = (1, 16, 256)
# the strategy with no hole memslots (exit) is the baseline, measured first; then every
# strategy that serves the hole in the kernel here (native only on the patched kernel)
BASELINE = next(name for name, s in ALL_STRATEGIES.items() if not s.served_in_kernel)


def strategies() -> tuple[str, ...]:
    native_ok = native_support()[0]
    return (BASELINE, *(name for name, s in ALL_STRATEGIES.items()
                        if s.served_in_kernel and (native_ok or not s.needs_patch)))


def _run(strategy: str, size_mib: int) -> dict:
    pages = min(1024, size_mib * 256 - 1)
    result, _ = scan_process(strategy, "--hole-size", f"{size_mib}M", "--pages", str(pages))
    return result


def measure(sizes_mib, advance) -> list[dict]:
    rows = []
    for size in sizes_mib:
        for strategy in strategies():
            result = _run(strategy, size)
            if strategy == BASELINE:
                baseline = result
            rows.append({
                "strategy": strategy,
                "hole_bytes": size << 20,
                "memslots": result["memslots"],
                "rss_bytes": result["rss_bytes"],
                "uss_bytes": result["uss_bytes"],
                "rss_added_bytes": result["rss_bytes"] - baseline["rss_bytes"],
                "uss_added_bytes": result["uss_bytes"] - baseline["uss_bytes"],
            })
            advance()
    return rows


def steps(sizes_mib) -> int:
    return len(sizes_mib) * len(strategies())
