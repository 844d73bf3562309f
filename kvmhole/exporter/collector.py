"""The custom collector: metric families built from the latest snapshot at scrape time.

Per-guest series carry only the guest's name and VMM kind as labels (bounded by
the number of guests), plus the config mechanism (ecam | type1) and, for the
TOP_BUSES busiest buses only, the bus; addresses never become labels, and a pid only
in the rare name/pid label of a guest whose name another guest holds
(store.LatestSnapshot). Counters are the
snapshot's cumulative counts; rates are left to PromQL.
"""

import sys
import time
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from kvmhole.exporter.selfmetrics import SelfMetrics
from kvmhole.exporter.store import LatestSnapshot
from kvmhole.probes import paths
from kvmhole.probes.snapshot import MECHANISMS, GuestStats, Histogram, Snapshot
from kvmhole.text import printable

GUEST_LABELS = ("guest", "vmm")
# Every kvmhole family comes from the latest poll, not from the moment of the scrape.
FRESHNESS = " Values as of the exporter's latest poll: up to one --interval old."


class SnapshotCollector:
    def __init__(self, store: LatestSnapshot, self_metrics: SelfMetrics | None = None):
        self.store = store
        self.self_metrics = self_metrics or SelfMetrics()

    def collect(self) -> Iterator[Metric]:
        start = time.perf_counter()
        snapshot = self.store.for_scrape()
        if snapshot is None:
            return  # before the first poll there is nothing true to say
        for family in (*_probe_families(snapshot), *_guest_families(snapshot)):
            family.documentation += FRESHNESS
            yield family
        yield from self.self_metrics.families(snapshot)
        self.self_metrics.scraped(time.perf_counter() - start)


def _probe_families(snapshot: Snapshot) -> Iterator[Metric]:
    probe = snapshot.probe
    yield GaugeMetricFamily("kvmhole_probe_up", "1 while the BPF probes load and read cleanly.",
                            value=int(probe.up))
    yield CounterMetricFamily("kvmhole_probe_lost_events",
                              "Probe events dropped before they could be counted.",
                              value=probe.lost_events)
    info = InfoMetricFamily("kvmhole_probe", "The probe path, how the probes see hole reads "
                            f"served in the kernel, and what they count: {paths.summary()}.",
                            labels=())
    info.add_metric((), {"path": probe.path, "kernel_counts": probe.kernel_counts})
    yield info
    # A full map drops new guests: fill = entries / max_entries, per map.
    entries = GaugeMetricFamily("kvmhole_probe_map_entries", "Entries in a BPF map.",
                                labels=("map",))
    capacity = GaugeMetricFamily("kvmhole_probe_map_max_entries",
                                 "Entries a BPF map can hold.", labels=("map",))
    full = CounterMetricFamily("kvmhole_probe_map_full",
                               "Guests (vCPU threads, for map=vcpus) a full BPF map refused: "
                               "not counted at all.", labels=("map",))
    for name, (used, size) in sorted(probe.maps.items()):
        entries.add_metric((name,), used)
        capacity.add_metric((name,), size)
    for name, refused in sorted(probe.map_full.items()):
        full.add_metric((name,), refused)
    yield from (entries, capacity, full)


def _guest_families(snapshot: Snapshot) -> Iterator[Metric]:
    info = InfoMetricFamily("kvmhole_guest", "A watched guest and how its PCI hole is backed.",
                            labels=GUEST_LABELS)
    by_mechanism = (*GUEST_LABELS, "mechanism")
    reads = CounterMetricFamily(
        "kvmhole_pci_hole_reads",
        "Config-space reads of absent PCI functions (hole reads), by mechanism (ecam, "
        "type1 ports) and where they were served.", labels=(*by_mechanism, "served"))
    writes = CounterMetricFamily(
        "kvmhole_pci_hole_writes", "Config-space writes to absent PCI functions, by mechanism.",
        labels=by_mechanism)
    read_exits = CounterMetricFamily(
        "kvmhole_pci_hole_read_userspace_exits",
        "Userspace exits the hole reads cost: one per ECAM read, two per type-1 read "
        "(address write, data read).", labels=by_mechanism)
    functions = GaugeMetricFamily(
        "kvmhole_pci_absent_functions", "Distinct absent PCI functions accessed, by mechanism.",
        labels=by_mechanism)
    bus_reads = CounterMetricFamily(
        "kvmhole_pci_hole_bus_reads",
        "Hole reads on each of the guest's busiest buses (at most 8 buses per guest).",
        labels=(*by_mechanism, "bus"))
    cost = GaugeMetricFamily(
        "kvmhole_pci_hole_read_cost_estimate_seconds",
        "ESTIMATE of the time hole reads cost, by mechanism: served=userspace is their "
        "userspace exits x the median round trip; served=kernel the same exits x the median "
        "in-kernel handling of a hole fault (vmx/svm path only; absent when unknown).",
        labels=(*by_mechanism, "served"))
    exits = CounterMetricFamily("kvmhole_userspace_exits",
                                "Exits from KVM_RUN to the VMM, by KVM_EXIT_* reason.",
                                labels=(*GUEST_LABELS, "reason"))
    roundtrip = HistogramMetricFamily(
        "kvmhole_userspace_exit_seconds",
        "Userspace round trip of an exit: return from KVM_RUN to the next KVM_RUN.",
        labels=GUEST_LABELS)
    kvm_exits = CounterMetricFamily(
        "kvmhole_kvm_stat_exits",
        "KVM's own exit counters for the guest's vCPUs (binary stats: exits, mmio_exits, "
        "io_exits, halt_exits) since the VM was created, to check the probes against; "
        "only for VMMs that keep their stats fds open (kvmhole's).",
        labels=(*GUEST_LABELS, "stat"))
    kernel_time = HistogramMetricFamily(
        "kvmhole_hole_kernel_seconds",
        "Time KVM spent serving a hole access in the kernel (vmx/svm probe path only).",
        labels=GUEST_LABELS)
    families = {"info": info, "reads": reads, "writes": writes, "read_exits": read_exits,
                "functions": functions, "bus_reads": bus_reads, "cost": cost, "exits": exits,
                "roundtrip": roundtrip, "kvm_exits": kvm_exits, "kernel_time": kernel_time}
    for guest in snapshot.guests:  # the store has named each by its stable label
        labels = (printable(guest.name), printable(guest.vmm))  # whoever made them: safe
        try:
            samples = list(_guest_samples(labels, guest))
        except (KeyError, TypeError, ValueError) as error:
            # one guest with an inconsistent snapshot must not take the others down
            _warn(f"guest {printable(guest.name)} (pid {guest.pid}) left out of a scrape: {error}")
            continue
        for family, args in samples:
            families[family].add_metric(*args)
    yield from families.values()


def _guest_samples(labels: tuple[str, str], guest: GuestStats) -> Iterator[tuple[str, tuple]]:
    """(family, add_metric arguments) for one guest, all computed before any is added."""
    info = {"strategy": printable(guest.strategy)}
    if guest.uuid is not None:  # QEMU's -uuid: what OpenStack and KubeVirt join on
        info["uuid"] = printable(guest.uuid)
    yield "info", (labels, info)
    for mechanism in MECHANISMS:
        counts, where = guest.config[mechanism], (*labels, mechanism)
        yield "reads", ((*where, "kernel"), counts.reads_in_kernel)
        yield "reads", ((*where, "userspace"), counts.read_exits)
        yield "writes", (where, counts.writes)
        yield "read_exits", (where, counts.exits)
        yield "functions", (where, counts.functions)
        for bus in guest.buses:
            yield "bus_reads", ((*where, f"{bus.bus:02x}"), bus.reads[mechanism])
    for mechanism, estimate in guest.cost_estimates().items():
        for served, seconds in (("userspace", estimate.userspace_s),
                                ("kernel", estimate.kernel_s)):
            if seconds is not None:
                yield "cost", ((*labels, mechanism, served), seconds)
    for reason, count in sorted(guest.userspace_exits.items()):
        yield "exits", ((*labels, reason), count)
    yield "roundtrip", (labels, _buckets(guest.roundtrip), guest.roundtrip.sum_s)
    for stat, count in sorted((guest.kvm_stats or {}).items()):
        yield "kvm_exits", ((*labels, stat), count)
    if guest.kernel_time is not None:
        yield "kernel_time", (labels, _buckets(guest.kernel_time), guest.kernel_time.sum_s)


_warned: set[str] = set()


def _warn(message: str) -> None:
    """Once per distinct message: scrapes repeat every few seconds."""
    if message not in _warned:
        _warned.add(message)
        print(f"kvmhole: warning: {message}", file=sys.stderr, flush=True)


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    """Snapshot buckets are per-bucket counts; Prometheus buckets are cumulative."""
    out, total = [], 0
    for bound, count in zip((*histogram.bounds, float("inf")), histogram.counts, strict=True):
        total += count
        out.append((floatToGoString(bound), total))
    return out
