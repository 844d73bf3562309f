"""The per-guest snapshot: the one model every view reads (TUI, exporter, trace/--json).

Plain dataclasses, serialisable to one JSON line and back, so a recorded session
can be replayed into any view. Counters are cumulative since the monitor started;
rates are per second over the last interval.
"""

import json
from dataclasses import asdict, dataclass, field, replace

from kvmhole.probes import paths, typed_json
from kvmhole.probes.paths import ProbePath

# Userspace round trip (return from KVM_RUN -> next KVM_RUN) buckets: powers of two
# of nanoseconds, 256 ns .. ~8.6 s; the last bucket is +Inf.
ROUNDTRIP_BOUNDS_S = tuple(2.0**i / 1e9 for i in range(8, 34))

# How a guest reaches PCI config space, in the order the BPF maps index them:
# ECAM (MMIO in the window; the only kind a hole memslot can serve) and type-1
# (port 0xCF8 address, then 0xCFC-0xCFF data: two exits to the VMM per read).
MECHANISMS = ("ecam", "type1")
TOP_BUSES = 8  # buses listed per guest: bounded cardinality for the exporter


@dataclass
class ConfigCounts:
    """Config-space accesses to absent PCI functions ("hole" accesses) by one mechanism.

    Absent is a property of the function (its vendor-ID read returned ffff, or the
    kvmhole registry says so), not of one read's value: a present function's
    unimplemented extended config space reads all-ones too and is not counted.
    """

    reads_in_kernel: int = 0
    read_exits: int = 0  # reads that went to the VMM
    writes: int = 0
    functions: int = 0  # distinct absent functions accessed
    exits: int = 0  # userspace exits the read exits cost (type-1: address write + data read)


def per_second(totals: dict[str, float], before: dict[str, float],
               interval_s: float) -> dict[str, float]:
    """Rates of cumulative counters over one interval; a counter absent before was 0."""
    return {name: (n - before.get(name, 0)) / interval_s for name, n in totals.items()}


@dataclass
class Rates:
    """A guest's counters per second over the snapshot's interval, computed once (by the
    monitor, with `between`) for every view: top's columns and history, trace."""

    hole_reads_in_kernel: float = 0.0
    hole_read_exits: float = 0.0
    hole_write_exits: float = 0.0
    hole_exits_userspace: float = 0.0
    userspace_exits: float = 0.0
    by_reason: dict[str, float] = field(default_factory=dict)  # userspace exit reason

    @property
    def other_exits(self) -> float:
        """Userspace exits per second that were not hole accesses (device MMIO, port I/O)."""
        return max(0.0, self.userspace_exits - self.hole_exits_userspace)

    @classmethod
    def between(cls, now: "GuestStats", before: "GuestStats | None",
                interval_s: float) -> "Rates":
        """From the guest's previous stats (None: its first poll, every counter was 0)."""
        return cls(**per_second(now.totals(), before.totals() if before else {}, interval_s),
                   by_reason=per_second(now.userspace_exits,
                                        before.userspace_exits if before else {}, interval_s))


def config_counts(**by_mechanism: ConfigCounts) -> dict[str, ConfigCounts]:
    """Every mechanism's counts, zero where not given."""
    return {m: by_mechanism.get(m, ConfigCounts()) for m in MECHANISMS}


@dataclass
class BusReads:
    """Absent-function reads on one bus (served anywhere), by mechanism."""

    bus: int
    reads: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.reads.values())


@dataclass
class CostEstimate:
    """An estimate, not a measurement: what one mechanism's absent-function reads cost in
    userspace round trips, and what the same reads would cost served in the kernel.

    Inputs, all measured: the userspace exits the reads caused, the median userspace
    round trip and (VMX/SVM only) the median in-kernel handling of a hole fault. Served
    in the kernel, every exit would still trap into KVM (a port access always does; an
    ECAM read does with `native`, once per page with `alias`/`dense`): exits x the
    in-kernel time, an upper bound. On paths that cannot time KVM it is unknown.
    """

    mechanism: str
    exits: int
    roundtrip_s: float | None
    kernel_each_s: float | None

    @property
    def userspace_s(self) -> float | None:
        return None if self.roundtrip_s is None else self.exits * self.roundtrip_s

    @property
    def kernel_s(self) -> float | None:
        return None if self.kernel_each_s is None else self.exits * self.kernel_each_s

    @property
    def saved_s(self) -> float | None:
        if self.userspace_s is None or self.kernel_s is None:
            return None
        return self.userspace_s - self.kernel_s

    def to_dict(self) -> dict:
        return {**asdict(self), "userspace_s": self.userspace_s, "kernel_s": self.kernel_s,
                "saved_s": self.saved_s}


@dataclass
class Histogram:
    """Non-cumulative bucket counts; bounds are upper bounds in seconds, plus one +Inf bucket."""

    bounds: tuple[float, ...] = ROUNDTRIP_BOUNDS_S
    counts: list[int] = field(default_factory=lambda: [0] * (len(ROUNDTRIP_BOUNDS_S) + 1))
    sum_s: float = 0.0

    def __post_init__(self):
        if not self.bounds or len(self.counts) != len(self.bounds) + 1:
            raise ValueError("a histogram's counts do not match its bounds (one or more)")

    @property
    def count(self) -> int:
        return sum(self.counts)

    def quantile(self, q: float) -> float | None:
        """Quantile q as PromQL's histogram_quantile() computes it from the same buckets
        (None when empty), so `top` and the dashboards agree: linear interpolation
        inside the bucket holding rank q x count, from the previous bound (0 for the
        first bucket); a rank in the +Inf bucket gives the highest finite bound."""
        total = self.count
        if not total:
            return None
        rank, below, lower = q * total, 0, 0.0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            if below + n >= rank and n:
                return lower + (bound - lower) * (rank - below) / n
            below, lower = below + n, bound
        return self.bounds[-1]

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
    config: dict[str, ConfigCounts] = field(default_factory=config_counts)  # by mechanism
    buses: list[BusReads] = field(default_factory=list)  # most absent-function reads first
    userspace_exits: dict[str, int] = field(default_factory=dict)  # reason -> count
    rates: Rates = field(default_factory=Rates)
    roundtrip: Histogram = field(default_factory=Histogram)
    kernel_time: Histogram | None = None  # in-kernel handling of hole exits (VMX/SVM only)
    # KVM's own binary stats of the guest's vCPUs (exits, mmio_exits, io_exits,
    # halt_exits) since the VM was created: the independent check on the counts
    # above. None where the VMM keeps no stats fd open (QEMU, usually).
    kvm_stats: dict[str, int] | None = None
    alive: bool = True  # False in the last snapshot that reports an exited guest
    uuid: str | None = None  # the VM's UUID where its VMM was given one (QEMU's -uuid)

    def __post_init__(self):
        self.config = {**config_counts(), **self.config}  # every mechanism, zero if absent

    # A hole read is a config read of an absent function by any mechanism: the sums
    # below are what top's columns, the exporter's totals and the rules count.
    @property
    def hole_reads_in_kernel(self) -> int:
        return sum(c.reads_in_kernel for c in self.config.values())

    @property
    def hole_read_exits(self) -> int:
        return sum(c.read_exits for c in self.config.values())

    @property
    def hole_write_exits(self) -> int:
        return sum(c.writes for c in self.config.values())

    @property
    def hole_exits_userspace(self) -> int:
        return self.hole_read_exits + self.hole_write_exits

    def cost_estimates(self) -> dict[str, CostEstimate]:
        kernel = self.kernel_time.quantile(0.5) if self.kernel_time else None
        return {m: CostEstimate(m, c.exits, self.roundtrip.quantile(0.5), kernel)
                for m, c in self.config.items()}

    @property
    def kernel_share(self) -> float | None:
        """Share of hole reads kept in the kernel (None before any hole read)."""
        total = self.hole_reads_in_kernel + self.hole_read_exits
        return self.hole_reads_in_kernel / total if total else None

    def to_dict(self) -> dict:
        """The guest as JSON: its fields, plus the DERIVED counts and the cost estimates
        for readers that do not recompute them (ignored on load)."""
        return {**asdict(self), **{name: getattr(self, name) for name in DERIVED},
                "cost_estimates": {m: e.to_dict() for m, e in self.cost_estimates().items()}}

    def totals(self) -> dict[str, int]:
        """The cumulative counters the monitor turns into `rates`, by rate name."""
        return {**{name: getattr(self, name) for name in DERIVED},
                "userspace_exits": sum(self.userspace_exits.values())}

    @property
    def time_saved_s(self) -> float | None:
        """Exits avoided x the median measured userspace round trip (interpolated as
        PromQL does: the recording rule instance_guest:kvmhole_hole_time_saved_seconds
        is this, per second).

        The median, not the mean: a VMM's deliberate pauses are exits too (the mixed
        guest's 10 ms sleep request is one in three), and they would make the mean
        round trip, and so the time saved, a thousand times too large.
        """
        median = self.roundtrip.quantile(0.5)
        return None if median is None else self.hole_reads_in_kernel * median


@dataclass
class ProbeHealth:
    path: str  # the name of a probes.paths entry: what the in-kernel count counts there
    up: bool = True
    lost_events: int = 0
    tracepoints: list[str] = field(default_factory=list)
    message: str = ""
    # per BPF map keyed by guest or thread: [entries, max_entries]; a full map
    # cannot take a new guest
    maps: dict[str, list[int]] = field(default_factory=dict)
    # per such map: the guests (threads, for vcpus) it refused, full: not counted
    map_full: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        if self.path not in paths.BY_NAME:
            raise ValueError(f"probe.path {self.path!r} is none of {', '.join(paths.BY_NAME)}")

    @property
    def probe_path(self) -> ProbePath:
        return paths.BY_NAME[self.path]

    @property
    def kernel_counts(self) -> str:
        """What the in-kernel count counts here: reads, faults or none."""
        return self.probe_path.kernel_counts

    @property
    def kernel_counts_note(self) -> str:
        return f"in-kernel = {self.probe_path.kernel_counts_note}"


@dataclass
class Snapshot:
    ts: float
    interval_s: float
    probe: ProbeHealth
    guests: list[GuestStats] = field(default_factory=list)

    def guest(self, pid: int) -> GuestStats | None:
        return next((g for g in self.guests if g.pid == pid), None)

    def to_dict(self) -> dict:
        return {**asdict(replace(self, guests=[])), "guests": [g.to_dict() for g in self.guests]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, raw) -> "Snapshot":
        """The snapshot of a JSON object, every field's type checked against the
        declarations above (ValueError says which is wrong): a recording is a file
        anyone may have edited or cut."""
        return typed_json.load(cls, raw, "the snapshot")

    @classmethod
    def from_json(cls, line: str) -> "Snapshot":
        return cls.from_dict(json.loads(line))


# Written into each guest's JSON for readers that do not recompute them (ignored on
# load), and, with the total of userspace exits, the counters the monitor rates.
DERIVED = ("hole_reads_in_kernel", "hole_read_exits", "hole_write_exits", "hole_exits_userspace")
