"""Loading bpf/kvmhole.bpf.c with bcc and reading its maps into plain Python values."""

import contextlib
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from kvmhole.guests import protocol
from kvmhole.kvm.exits import EXIT_NAMES
from kvmhole.probes import ProbeUnavailable, host
from kvmhole.probes.plan import ProbePlan
from kvmhole.probes.snapshot import (
    MECHANISMS,
    ROUNDTRIP_BOUNDS_S,
    TOP_BUSES,
    BusReads,
    ConfigCounts,
    Histogram,
    config_counts,
)
from kvmhole.vmm import pci
from kvmhole.vmm.memmap import MAX_HOLE_RUNS


def _source() -> Path:
    """bpf/kvmhole.bpf.c: shipped inside an installed package as kvmhole/bpf/ (setup.py),
    at the top of the tree in a checkout (and an editable install)."""
    package = Path(__file__).resolve().parents[1]
    shipped = package / "bpf" / "kvmhole.bpf.c"
    return shipped if shipped.is_file() else package.parent / "bpf" / "kvmhole.bpf.c"


SOURCE = _source()
MAX_HOLES = MAX_HOLE_RUNS  # hole ranges per guest
NR_REASONS = 32  # KVM_EXIT_* numbers below this are counted one by one
REASON_ERROR = NR_REASONS  # the counter of KVM_RUN failures other than EINTR

# KVM_EXIT_* numbers -> the names kvmhole's VMM uses for exits (from <linux/kvm.h>).
EXIT_REASONS = {**{n: name for n, name in EXIT_NAMES.items() if n < NR_REASONS},
                REASON_ERROR: "ERROR"}

# The maps that grow with guests (holes, counts) and vCPU threads (vcpus): what a
# full one refuses is counted per map (map_full in the C), in this order.
GROWING_MAPS = ("holes", "counts", "vcpus")

# The sizes the BPF program is compiled with: passed as -D, never written in the C.
CONSTANTS = {
    "MAX_HOLES": MAX_HOLES,
    "NR_REASONS": NR_REASONS,
    "NR_BUCKETS": len(ROUNDTRIP_BOUNDS_S) + 1,  # the last one is +Inf
    "FIRST_BUCKET_LOG2": round(math.log2(ROUNDTRIP_BOUNDS_S[0] * 1e9)),
    **{f"MECH_{m.upper()}": i for i, m in enumerate(MECHANISMS)},  # index in config[]
    "NR_MECHANISMS": len(MECHANISMS),
    "PCI_CONFIG_ADDRESS": protocol.PCI_CONFIG_ADDRESS,
    "PCI_CONFIG_DATA": protocol.PCI_CONFIG_DATA,
    "PCI_IDENTITY_END": pci.IDENTITY_END,
    "MAX_FUNCTIONS": 1 << 17,  # what is known per function: two guests' full 256-bus scans
    "MAX_BUS_ENTRIES": 1 << 14,  # absent-function reads per bus: 256 buses of 64 guests
    "MAX_GUESTS": 1024,  # holes and counts
    "MAX_VCPUS": 8192,  # vcpus, keyed by thread
    **{f"FULL_{m.upper()}": i for i, m in enumerate(GROWING_MAPS)},  # index in map_full[]
    "NR_FULL_MAPS": len(GROWING_MAPS),
    # refused guests and threads remembered, so that each is counted once however often
    # it retries; past this many at once, the longest-refused may be counted again
    "MAX_REFUSED": 4096,
}


@dataclass
class RawCounts:
    """One guest's counters as the BPF maps hold them (cumulative since they were
    created), in the snapshot's types and under GuestStats' field names."""

    config: dict[str, ConfigCounts] = field(default_factory=config_counts)  # every mechanism
    buses: list[BusReads] = field(default_factory=list)  # the TOP_BUSES busiest
    userspace_exits: dict[str, int] = field(default_factory=dict)
    roundtrip: Histogram = field(default_factory=Histogram)
    kernel_time: Histogram = field(default_factory=Histogram)  # VMX_PATH only


def _histogram(buckets, sum_ns: int) -> Histogram:
    return Histogram(counts=list(buckets), sum_s=sum_ns / 1e9)


class ProbeProgram:
    def __init__(self, plan: ProbePlan, auto_track: bool, events: bool,
                 sizes: dict[str, int] | None = None):
        """sizes: CONSTANTS to compile with other values (tests fill maps with a few
        guests this way)."""
        host.prepare()
        from bcc import BPF  # only after prepare(): bcc reads BCC_KERNEL_SOURCE when compiling

        constants = {**CONSTANTS, **(sizes or {})}
        cflags = [*host.CLANG_QUIET, *(f"-D{k}={v}" for k, v in constants.items())]
        if plan.probe_path.cflag:
            cflags.append(plan.probe_path.cflag)
        if auto_track:
            cflags.append("-DAUTO_TRACK")
        if events:
            cflags.append("-DEVENTS")
        try:
            self.bpf = BPF(src_file=str(SOURCE).encode(), cflags=cflags)
        except Exception as error:  # bcc raises bare Exception for compile and load failures
            raise ProbeUnavailable(f"loading {SOURCE.name} failed ({error}): "
                                   "run `kvmhole doctor`") from None
        arm(self.bpf, True)  # bcc attached every probe while loading: count from now on
        self.holes = self.bpf[b"holes"]
        self.counts = self.bpf[b"counts"]
        self.vcpus = self.bpf[b"vcpus"]
        self.functions = self.bpf[b"functions"]
        self.buses = self.bpf[b"buses"]
        self.events = events

    def detached(self):
        """The probes off for a while, still loaded, maps kept: a guest run inside costs
        what it costs unwatched, so `kvmhole bench` alternates runs with and without
        them (detaching and attaching takes milliseconds; loading takes a second)."""
        return detached(self.bpf)

    def empty_twin(self):
        """A bcc program attached where these probes are, each of its programs doing
        nothing: what tracing these events costs before any of kvmhole's own work
        (`kvmhole bench` runs it beside the probes); a context manager, like any bcc BPF."""
        from bcc import BPF

        text = [f"TRACEPOINT_PROBE({category}, {event}) {{ return 0; }}" for category, event
                in (tp.decode().split(":") for tp in self.bpf.tracepoint_fds)]
        text += [f"RAW_TRACEPOINT_PROBE({tp.decode()}) {{ return 0; }}"
                 for tp in self.bpf.raw_tracepoint_fds]
        return BPF(text="\n".join(text).encode(), cflags=host.CLANG_QUIET)

    def _holes_leaf(self, ranges: list[tuple[int, int]], ecam: tuple[int, int] | None,
                    comm: bytes = b"", provisional: bool = False):
        """ecam: the window when `ranges` are exactly its absent functions' pages (a
        registered kvmhole guest); None: the ranges are the window, presence is learned.
        provisional: the process is not identified yet (AUTO_TRACK's defaults)."""
        leaf = self.holes.Leaf()
        if len(ranges) > MAX_HOLES:  # callers check; cutting would silently miss reads
            raise ValueError(f"{len(ranges)} hole ranges, the probes take at most {MAX_HOLES}")
        ranges = sorted(ranges)
        leaf.n = len(ranges)
        for i, (start, end) in enumerate(ranges):
            leaf.start[i], leaf.end[i] = start, end
        leaf.exact = ecam is not None
        leaf.provisional = provisional
        leaf.ecam_start, leaf.ecam_end = ecam or (ranges[0][0], max(e for _, e in ranges))
        leaf.comm = comm[:15]
        return leaf

    def set_default_holes(self, ranges: list[tuple[int, int]]) -> None:
        table = self.bpf[b"default_holes"]
        table[table.Key(0)] = self._holes_leaf(ranges, None, provisional=True)

    def track(self, pid: int, ranges: list[tuple[int, int]],
              ecam: tuple[int, int] | None = None) -> bool:
        """Count guest `pid` with these hole ranges (keeping the name BPF recorded);
        False if `holes` is full and did not have it."""
        key = self.holes.Key(pid)
        old = self.holes.get(key)
        try:
            self.holes[key] = self._holes_leaf(ranges, ecam, bytes(old.comm) if old else b"")
        except Exception:  # bcc raises bare Exception when the update fails (E2BIG: full)
            if len(self.holes) < self.holes.max_entries:
                raise
            return False
        return True

    def comm(self, pid: int) -> str:
        leaf = self.holes.get(self.holes.Key(pid))
        return bytes(leaf.comm).split(b"\0")[0].decode(errors="replace") if leaf else ""

    def read(self, pids: set[int] | None = None) -> dict[int, RawCounts]:
        """Every guest's counts, or only those of `pids`."""
        buses: dict[int, list[BusReads]] = {}
        for key, leaf in _entries(self.buses):
            buses.setdefault(key.tgid, []).append(
                BusReads(key.bus, dict(zip(MECHANISMS, leaf.reads, strict=True))))
        if pids is None:
            entries = _entries(self.counts)
        else:
            entries = [(key, leaf) for key in map(self.counts.Key, pids)
                       if (leaf := self.counts.get(key)) is not None]
        found = {}
        for key, leaf in entries:
            busiest = sorted(buses.get(key.value, []), key=lambda b: (-b.total, b.bus))
            found[key.value] = RawCounts(
                # struct config_counts' members are ConfigCounts' fields, by name
                config={m: ConfigCounts(**{f.name: getattr(c, f.name)
                                           for f in fields(ConfigCounts)})
                        for m, c in zip(MECHANISMS, leaf.config, strict=True)},
                buses=busiest[:TOP_BUSES],
                userspace_exits={EXIT_REASONS.get(i, str(i)): n
                                 for i, n in enumerate(leaf.exits) if n},
                roundtrip=_histogram(leaf.rt, leaf.rt_sum_ns),
                kernel_time=_histogram(leaf.kt, leaf.kt_sum_ns))
        return found

    def capacity(self) -> dict[str, int]:
        """max_entries of the per-guest and per-vCPU maps: how many guests and vCPU
        threads the probes can hold at once."""
        return {"guests": self.counts.max_entries, "vcpus": self.vcpus.max_entries}

    def map_fill(self) -> dict[str, list[int]]:
        """[entries, max_entries] of the maps that grow with guests and vCPUs."""
        return {name: [len(_entries(table)), table.max_entries] for name, table in
                zip(GROWING_MAPS, (self.holes, self.counts, self.vcpus), strict=True)}

    def map_full(self) -> dict[str, int]:
        """Per growing map: the guests (threads for vcpus) BPF could not add to it, full."""
        table = self.bpf[b"map_full"]
        return {name: table[table.Key(i)].value for i, name in enumerate(GROWING_MAPS)}

    def forget(self, pids: set[int]) -> None:
        """Drop every map entry of these exited guests: one pass over each shared map for
        all of them (a pass over 100k functions is what costs, not a pid)."""
        if not pids:
            return
        for table in (self.holes, self.counts):
            for pid in pids:
                with contextlib.suppress(KeyError):
                    del table[table.Key(pid)]
        for table in (self.vcpus, self.functions, self.buses):
            keys = [key for key, leaf in _entries(table)
                    if (leaf.tgid if table is self.vcpus else key.tgid) in pids]
            _delete(table, keys)

    def lost_events(self) -> int:
        if not self.events:
            return 0
        table = self.bpf[b"lost"]
        return table[table.Key(0)].value

    def open_events(self, callback) -> None:
        """callback(event) for every userspace exit, once its round trip is known; the
        event's fields are struct exit_event's, as bcc parses them from the C."""
        events = self.bpf[b"events"]

        def handle(_ctx, data, _size):
            callback(events.event(data))
        events.open_ring_buffer(handle)

    def poll_events(self, timeout_ms: int) -> None:
        self.bpf.ring_buffer_poll(timeout_ms)

    def close(self) -> None:
        self.bpf.cleanup()


@contextlib.contextmanager
def detached(bpf):
    """bcc program `bpf`'s tracepoints detached for a while, then attached again."""
    tracepoints, raw = list(bpf.tracepoint_fds), list(bpf.raw_tracepoint_fds)
    arm(bpf, False)
    for tp in tracepoints:
        bpf.detach_tracepoint(tp)
    for tp in raw:
        bpf.detach_raw_tracepoint(tp)
    try:
        yield
    finally:  # the names bcc gives the functions it attached on load
        for tp in tracepoints:
            category, event = tp.split(b":")
            bpf.attach_tracepoint(tp=tp, fn_name=b"tracepoint__%s__%s" % (category, event))
        for tp in raw:
            bpf.attach_raw_tracepoint(tp=tp, fn_name=b"raw_tracepoint__" + tp)
        arm(bpf, True)


def arm(bpf, on: bool) -> None:
    """Let the probes make vCPU states (and so classify accesses) only while all of
    them are attached (bpf/kvmhole.bpf.c, `armed`)."""
    armed = bpf[b"armed"]
    armed[armed.Key(0)] = armed.Leaf(int(on))


def _entries(table) -> list:
    """(key, leaf) of every entry, fetched with BPF_MAP_LOOKUP_BATCH: a few syscalls per
    map instead of two per entry (entry by entry, a map of 100k functions took ~0.5 s,
    and a poll that forgets guests walks it)."""
    try:
        # an array of a plain ctypes integer type gives ints: make them keys again
        return [(table.Key(key) if isinstance(key, int) else key, leaf)
                for key, leaf in table.items_lookup_batch()]
    except Exception:  # bcc raises bare Exception; a kernel before 5.6 has no batch ops
        return list(table.items())


def _delete(table, keys: list) -> None:
    if not keys:
        return
    try:
        table.items_delete_batch((table.Key * len(keys))(*keys))
    except Exception:  # as in _entries: fall back to one syscall per key
        for key in keys:
            with contextlib.suppress(KeyError):
                del table[key]
