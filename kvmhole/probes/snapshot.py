"""The per-guest snapshot: the one model every view reads (TUI, exporter, trace/--json).

Plain dataclasses, serialisable to one JSON line and back, so a recorded session
can be replayed into any view. Counters are cumulative since the monitor started;
rates are per second over the last interval.
"""

import json
from dataclasses import asdict, dataclass, field

# Userspace round trip (return from KVM_RUN -> next KVM_RUN) buckets: powers of two
# of nanoseconds, 256 ns .. ~8.6 s; the last bucket is +Inf.
ROUNDTRIP_BOUNDS_S = tuple(2.0**i / 1e9 for i in range(8, 34))


@dataclass
class Histogram:
    """Non-cumulative bucket counts; bounds are upper bounds in seconds, plus one +Inf bucket."""

    bounds: tuple[float, ...] = ROUNDTRIP_BOUNDS_S
    counts: list[int] = field(default_factory=lambda: [0] * (len(ROUNDTRIP_BOUNDS_S) + 1))
    sum_s: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding quantile q (None when empty)."""
        total = self.count
        if not total:
            return None
        rank, seen = q * total, 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            seen += n
            if seen >= rank:
                return bound
        return float("inf")

    @property
    def mean_s(self) -> float | None:
        return self.sum_s / self.count if self.count else None


@dataclass
class GuestStats:
    pid: int
    name: str
    vmm: str  # "kvmhole", "qemu", or the process name of another VMM
    strategy: str  # native | alias | dense | exit | "unknown" (foreign VMMs)
    holes: list[tuple[int, int]]  # guest-physical [start, end) ranges
    hole_reads_in_kernel: int = 0
    hole_read_exits: int = 0  # hole reads that went to userspace
    hole_write_exits: int = 0
    userspace_exits: dict[str, int] = field(default_factory=dict)  # reason -> count
    rates: dict[str, float] = field(default_factory=dict)  # counter name -> per second
    roundtrip: Histogram = field(default_factory=Histogram)
    kernel_time: Histogram | None = None  # in-kernel handling of hole exits (VMX/SVM only)
    # KVM's own binary stats of the guest's vCPUs (exits, mmio_exits, io_exits,
    # halt_exits) since the VM was created: the independent check on the counts
    # above. None where the VMM keeps no stats fd open (QEMU, usually).
    kvm_stats: dict[str, int] | None = None
    alive: bool = True  # False in the last snapshot that reports an exited guest

    @property
    def hole_exits_userspace(self) -> int:
        return self.hole_read_exits + self.hole_write_exits

    @property
    def kernel_share(self) -> float | None:
        """Share of hole reads kept in the kernel (None before any hole read)."""
        total = self.hole_reads_in_kernel + self.hole_read_exits
        return self.hole_reads_in_kernel / total if total else None

    @property
    def time_saved_s(self) -> float | None:
        """Exits avoided x the median measured userspace round trip (its bucket's bound).

        The median, not the mean: a VMM's deliberate pauses are exits too (the mixed
        guest's 10 ms sleep request is one in three), and they would make the mean
        round trip, and so the time saved, a thousand times too large.
        """
        median = self.roundtrip.quantile(0.5)
        return None if median is None else self.hole_reads_in_kernel * median


# What a guest's in-kernel count is on each probe path. With hardware virtualisation
# only faults into KVM are seen: every read of a `native` hole traps, but an
# `alias`/`dense` hole page is mapped on its first read and later reads never leave
# the guest. Emulating hosts see every read. Every view names the count from here.
KERNEL_COUNTS = {
    "emulated": ("reads", "every hole read is emulated by KVM and seen"),
    "vmx/svm": ("faults", "hole faults into KVM: every read of a native hole, but only the "
                "first read of each mapped (alias/dense) hole page; later reads are unseen"),
    "exits-only": ("none", "hole reads served in the kernel cannot be seen on this host"),
}


@dataclass
class ProbeHealth:
    path: str  # a key of KERNEL_COUNTS: "vmx/svm", "emulated" or "exits-only" (plan.py)
    up: bool = True
    lost_events: int = 0
    tracepoints: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def kernel_counts(self) -> str:
        """What the in-kernel count counts here: reads, faults or none."""
        return KERNEL_COUNTS[self.path][0]

    @property
    def kernel_counts_note(self) -> str:
        return f"in-kernel = {KERNEL_COUNTS[self.path][1]}"


@dataclass
class Snapshot:
    ts: float
    interval_s: float
    probe: ProbeHealth
    guests: list[GuestStats] = field(default_factory=list)

    def guest(self, pid: int) -> GuestStats | None:
        return next((g for g in self.guests if g.pid == pid), None)

    def to_dict(self) -> dict:
        out = asdict(self)
        for raw, guest in zip(out["guests"], self.guests, strict=True):
            raw["hole_exits_userspace"] = guest.hole_exits_userspace
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, raw: dict) -> "Snapshot":
        guests = []
        for g in raw.get("guests", []):
            g = dict(g)
            g.pop("hole_exits_userspace", None)
            g["holes"] = [tuple(h) for h in g.get("holes", [])]
            g["roundtrip"] = _histogram(g.get("roundtrip"))
            g["kernel_time"] = _histogram(g["kernel_time"]) if g.get("kernel_time") else None
            guests.append(GuestStats(**g))
        return cls(raw["ts"], raw["interval_s"], ProbeHealth(**raw["probe"]), guests)

    @classmethod
    def from_json(cls, line: str) -> "Snapshot":
        return cls.from_dict(json.loads(line))


def _histogram(raw: dict | None) -> Histogram:
    if not raw:
        return Histogram()
    return Histogram(tuple(raw["bounds"]), list(raw["counts"]), raw["sum_s"])
