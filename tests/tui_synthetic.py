"""Deterministic made-up snapshots for the TUI tests: no KVM, no BPF, no clock."""

from dataclasses import dataclass

from kvmhole.probes import paths
from kvmhole.probes.snapshot import (
    ROUNDTRIP_BOUNDS_S,
    BusReads,
    ConfigCounts,
    GuestStats,
    Histogram,
    ProbeHealth,
    Rates,
    Snapshot,
    config_counts,
)

Q35 = [(0xB0000000, 0xC0000000)]


@dataclass
class Guest:
    pid: int
    name: str
    strategy: str
    kernel: float  # hole reads served in the kernel per second
    exits: float  # hole reads exiting to userspace per second
    other: float  # other userspace exits per second (device MMIO + port I/O)


GUESTS = (
    Guest(4101, "demo-alias", "alias", 6400.0, 0.0, 300.0),
    Guest(4102, "demo-dense", "dense", 5200.0, 0.0, 250.0),
    Guest(4103, "demo-exit", "exit", 0.0, 1800.0, 90.0),
    Guest(4104, "web-1", "alias", 120.0, 0.0, 40.0),
)


class SyntheticSource:
    """Each call is one interval later; the rates wobble a little so sparklines have shape.

    end(pid) makes the next snapshot report the guest with alive=False and the ones
    after it leave it out, as the Monitor does.
    """

    def __init__(self, guests=GUESTS, interval: float = 1.0):
        self.guests = list(guests)
        self.interval = interval
        self.tick = 0
        self.totals: dict[int, dict[str, float]] = {}
        self.ending: set[int] = set()
        self.calls = 0
        self.previous: dict[int, GuestStats] = {}  # as the monitor keeps them, for rates

    def end(self, pid: int) -> None:
        self.ending.add(pid)

    def __call__(self) -> Snapshot:
        self.calls += 1
        self.tick += 1
        stats = []
        for i, g in enumerate(self.guests):
            wobble = 1.0 + 0.25 * (((self.tick + i) % 5) - 2) / 2
            rates = {"kernel": g.kernel * wobble, "exits": g.exits * wobble,
                     "other": g.other * wobble}
            total = self.totals.setdefault(g.pid, dict.fromkeys(rates, 0.0))
            for key, rate in rates.items():
                total[key] += rate * self.interval
            now = self._stats(g, rates, total)
            # per reason as the monitor rates them (the other rates are the wobbled ones)
            now.rates.by_reason = Rates.between(now, self.previous.get(g.pid),
                                                self.interval).by_reason
            self.previous[g.pid] = now
            stats.append(now)
        for pid in self.ending:
            self.guests = [g for g in self.guests if g.pid != pid]
        for s in stats:
            s.alive = s.pid not in self.ending
        self.ending.clear()
        return Snapshot(ts=1_700_000_000.0 + self.tick * self.interval,
                        interval_s=self.interval, probe=ProbeHealth(paths.EMULATED.name),
                        guests=stats)

    @staticmethod
    def _stats(g: Guest, rates: dict[str, float], total: dict[str, float]) -> GuestStats:
        exits = int(total["exits"]) + int(total["other"])
        counts = [0] * (len(ROUNDTRIP_BOUNDS_S) + 1)
        for bucket, share in ((4, 0.1), (5, 0.6), (6, 0.25), (8, 0.05)):  # 4 µs .. 64 µs
            counts[bucket] = int(exits * share)
        mean = 10e-6
        type1 = int(total["exits"] / 3)
        return GuestStats(
            pid=g.pid, name=g.name, vmm="kvmhole", strategy=g.strategy, holes=Q35,
            # a third of the hole exits are type-1 reads (two port exits each)
            config=config_counts(
                ecam=ConfigCounts(reads_in_kernel=int(total["kernel"]),
                                  read_exits=int(total["exits"]) - type1,
                                  exits=int(total["exits"]) - type1,
                                  functions=min(65535, int(total["kernel"] + total["exits"]))),
                type1=ConfigCounts(read_exits=type1, exits=2 * type1,
                                   functions=min(8193, type1))),
            buses=[BusReads(0, {"ecam": 255, "type1": 33}),
                   BusReads(1, {"ecam": 256, "type1": 32})],
            userspace_exits={"MMIO": int(total["exits"] + total["other"] / 3),
                             "IO": int(total["other"] * 2 / 3)},
            rates=Rates(hole_reads_in_kernel=rates["kernel"], hole_read_exits=rates["exits"],
                        hole_exits_userspace=rates["exits"],
                        userspace_exits=rates["exits"] + rates["other"]),
            roundtrip=Histogram(counts=counts, sum_s=sum(counts) * mean))
