"""What the views cost with many guests: one exporter scrape and one `kvmhole top` refresh.

64 guests do not fit on a 2-CPU machine as real VMs, and the views' cost does
not depend on where the numbers come from: they read the same snapshot model.
So the snapshots are synthetic, with every field filled (counters, rates, exits
by reason, a populated round-trip histogram), and change every tick like a live
monitor's would.
"""

import time
import urllib.request

from kvmhole.bench.stats import spread
from kvmhole.probes import paths
from kvmhole.probes.snapshot import (
    ROUNDTRIP_BOUNDS_S,
    ConfigCounts,
    GuestStats,
    Histogram,
    ProbeHealth,
    Rates,
    Snapshot,
    config_counts,
)
from kvmhole.vmm.strategies import STRATEGIES as ALL_STRATEGIES

GUESTS = 64
HOLE = [(0xB0008000, 0xC0000000)]
STRATEGIES = tuple(ALL_STRATEGIES)


def synthetic_snapshot(guests: int, tick: int) -> Snapshot:
    """`guests` guests whose counters all advance with `tick`."""
    stats = []
    for i in range(guests):
        strategy = STRATEGIES[i % len(STRATEGIES)]
        in_kernel = ALL_STRATEGIES[strategy].served_in_kernel
        kernel = 1000 * (tick + 1) * (i + 1) if in_kernel else 0
        exits = tick if in_kernel else 1000 * (tick + 1) * (i + 1)
        counts = [0] * (len(ROUNDTRIP_BOUNDS_S) + 1)
        for bucket in range(4, 12):
            counts[bucket] = (tick + 1) * (i + bucket)
        stats.append(GuestStats(
            pid=10000 + i, name=f"guest-{i:02d}", vmm="kvmhole", strategy=strategy,
            holes=HOLE, config=config_counts(ecam=ConfigCounts(
                reads_in_kernel=kernel, read_exits=exits, exits=exits, writes=tick)),
            userspace_exits={"MMIO": exits + tick, "IO": 10 * tick,
                                                    "HLT": tick},
            rates=Rates(hole_reads_in_kernel=1000.0 * (i + 1), hole_read_exits=float(i),
                        hole_write_exits=1.0, hole_exits_userspace=float(i + 1),
                        userspace_exits=float(12 + i)),
            roundtrip=Histogram(counts=counts, sum_s=sum(counts) * 8e-6)))
    return Snapshot(ts=1.7e9 + tick, interval_s=1.0, probe=ProbeHealth(paths.EMULATED.name),
                    guests=stats)


def synthetic(tick: int) -> Snapshot:
    return synthetic_snapshot(GUESTS, tick)


def exporter_scrape(reps: int, snapshot_at=synthetic) -> dict:
    """Wall time and size of a /metrics scrape over HTTP: the first after each new
    snapshot (it renders the exposition) and a second one before the next (it serves
    the bytes already rendered). snapshot_at(tick) gives the snapshots: synthetic
    here, a live monitor's in the scale section."""
    from kvmhole.exporter.server import listening
    from kvmhole.exporter.store import LatestSnapshot

    def timed_scrape(address: str) -> tuple[float, int]:
        started = time.perf_counter()
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=30) as response:
            size = len(response.read())
        return (time.perf_counter() - started) * 1e3, size

    store = LatestSnapshot()
    first, again, size, guests = [], [], 0, 0
    with listening("127.0.0.1:0", store) as address:
        for tick in range(reps):
            snapshot = snapshot_at(tick)
            guests = len(snapshot.guests)
            store.update(snapshot)
            ms, size = timed_scrape(address)
            first.append(ms)
            again.append(timed_scrape(address)[0])
    return {"guests": guests, "scrape_ms": spread(first), "scrape_again_ms": spread(again),
            "bytes": size}


def exporter_under_attack(reps: int, trickle: int = 20, stall: int = 200) -> dict:
    """Scrape wall time while `trickle` clients send a request head a byte every 0.5 s
    and `stall` connections sent one byte and stopped (bench.attack, on loopback): a
    new snapshot before every other scrape, so half of them render. `held` is how many
    attacking connections were still open after the last scrape: all of them, or the
    scrapes did not run under the attack."""
    from kvmhole.bench.attack import SlowClients
    from kvmhole.exporter.server import listening
    from kvmhole.exporter.store import LatestSnapshot

    store = LatestSnapshot()
    store.update(synthetic(0))
    times = []
    with listening("127.0.0.1:0", store) as address, \
            SlowClients(address, trickle=trickle, stall=stall) as attack:
        for tick in range(reps):
            if tick % 2 == 0:
                store.update(synthetic(tick))
            started = time.perf_counter()
            with urllib.request.urlopen(f"http://{address}/metrics", timeout=30) as response:
                response.read()
            times.append((time.perf_counter() - started) * 1e3)
        held = attack.held()
    return {"guests": GUESTS, "trickling": trickle, "stalled": stall + 1, "held": held,
            "scrape_ms": spread(times)}


def tui_refresh(reps: int, snapshot_at=synthetic) -> dict:
    """kvmhole top with 64 guests on a headless 160x50 screen: the CPU time of taking
    one snapshot (apply) and of taking it and repainting (refresh), against a repaint
    cycle in which nothing changed (idle). CPU time, not wall time: waiting for the
    screen to settle sleeps at least 20 ms (Textual's pilot), which costs nothing."""
    import asyncio

    from kvmhole.tui.app import TopApp

    async def run() -> dict:
        app = TopApp(source=None)
        apply_ms, refresh_ms, idle_ms = [], [], []
        async with app.run_test(size=(160, 50)) as pilot:
            app.apply_snapshot(snapshot_at(0))
            await pilot.pause()
            for tick in range(1, reps + 1):
                snapshot = snapshot_at(tick)
                started = time.process_time()
                app.apply_snapshot(snapshot)
                applied = time.process_time()
                await pilot.pause()
                painted = time.process_time()
                await pilot.pause()
                idle = time.process_time()
                apply_ms.append((applied - started) * 1e3)
                refresh_ms.append((painted - started) * 1e3)
                idle_ms.append((idle - painted) * 1e3)
        return {"guests": len(snapshot.guests), "apply_ms": spread(apply_ms),
                "refresh_ms": spread(refresh_ms), "idle_repaint_ms": spread(idle_ms)}

    return asyncio.run(run())


def measure(reps: int, advance) -> dict:
    out = {"exporter": exporter_scrape(reps)}
    advance()
    out["exporter_under_attack"] = exporter_under_attack(reps)
    advance()
    out["tui"] = tui_refresh(reps)
    advance()
    return out


def steps() -> int:
    return 3
