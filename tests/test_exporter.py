"""The exporter's collector over constructed snapshots: names, values, labels,
histograms, exited guests, and `promtool check metrics` on what it serves."""

import gzip
import subprocess
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kvmhole.exporter.collector import SnapshotCollector
from kvmhole.exporter.selfmetrics import SelfMetrics
from kvmhole.exporter.server import listening
from kvmhole.exporter.store import LatestSnapshot
from kvmhole.probes.snapshot import (
    BusReads,
    ConfigCounts,
    GuestStats,
    Histogram,
    ProbeHealth,
    Snapshot,
    config_counts,
)

pytestmark = pytest.mark.pure  # no KVM, no root

HOLE = [(0xB0008000, 0xC0000000)]


def ecam(**counts: int) -> dict[str, ConfigCounts]:
    """Config counts with these ECAM counts and no type-1 accesses."""
    return config_counts(ecam=ConfigCounts(**counts))


def guest(pid: int, name: str, **counts) -> GuestStats:
    return GuestStats(pid, name, "kvmhole", "alias", HOLE, **counts)


def snapshot(*guests: GuestStats, probe: ProbeHealth | None = None) -> Snapshot:
    return Snapshot(1700000000.0, 1.0, probe or ProbeHealth("emulated"), list(guests))


def scrape(store: LatestSnapshot) -> dict[tuple[str, tuple], float]:
    """One scrape -> {(sample name, sorted labels): value}."""
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(store))
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def key(name: str, **labels: str) -> tuple[str, tuple]:
    """The scrape() key of one sample; per-guest samples default to vmm="kvmhole"."""
    if "guest" in labels:
        labels.setdefault("vmm", "kvmhole")
    return name, tuple(sorted(labels.items()))


def store_with(*snapshots: Snapshot) -> LatestSnapshot:
    store = LatestSnapshot()
    for s in snapshots:
        store.update(s)
    return store


def test_counters_and_info_carry_the_snapshot_counts():
    g = guest(7, "vm-a", config=config_counts(
                  ecam=ConfigCounts(reads_in_kernel=8192, read_exits=3, exits=3, writes=2,
                                    functions=8195),
                  type1=ConfigCounts(read_exits=40, exits=80, functions=33)),
              buses=[BusReads(0, {"ecam": 255, "type1": 33}), BusReads(0x1f, {"ecam": 256,
                                                                          "type1": 7})],
              userspace_exits={"MMIO": 6, "IO": 1},
              kvm_stats={"exits": 9, "mmio_exits": 6, "io_exits": 0, "halt_exits": 0})
    g.roundtrip.counts[3] = 10  # median round trip <= 2 us
    samples = scrape(store_with(snapshot(g)))
    reads = "kvmhole_pci_hole_reads_total"
    assert samples[key(reads, guest="vm-a", mechanism="ecam", served="kernel")] == 8192
    assert samples[key(reads, guest="vm-a", mechanism="ecam", served="userspace")] == 3
    assert samples[key(reads, guest="vm-a", mechanism="type1", served="userspace")] == 40
    assert samples[key(reads, guest="vm-a", mechanism="type1", served="kernel")] == 0
    assert samples[key("kvmhole_pci_hole_writes_total", guest="vm-a", mechanism="ecam")] == 2
    exits = "kvmhole_pci_hole_read_userspace_exits_total"
    assert samples[key(exits, guest="vm-a", mechanism="type1")] == 80
    assert samples[key("kvmhole_pci_absent_functions", guest="vm-a", mechanism="ecam")] == 8195
    bus = "kvmhole_pci_hole_bus_reads_total"
    assert samples[key(bus, guest="vm-a", mechanism="type1", bus="1f")] == 7
    # an estimate from the measured inputs: 80 exits x the median round trip's bound
    cost = "kvmhole_pci_hole_read_cost_estimate_seconds"
    # the median round trip as histogram_quantile(0.5) interpolates it: halfway through
    # the (1.024, 2.048] µs bucket that holds all 10 round trips
    assert samples[key(cost, guest="vm-a", mechanism="type1", served="userspace")] == \
        pytest.approx(80 * 1.536e-6)
    assert key(cost, guest="vm-a", mechanism="type1", served="kernel") not in samples  # unknown
    assert samples[key("kvmhole_userspace_exits_total", guest="vm-a", reason="MMIO")] == 6
    assert samples[key("kvmhole_userspace_exits_total", guest="vm-a", reason="IO")] == 1
    assert samples[key("kvmhole_guest_info", guest="vm-a", strategy="alias")] == 1
    assert samples[key("kvmhole_kvm_stat_exits_total", guest="vm-a", stat="mmio_exits")] == 6
    assert samples[key("kvmhole_probe_up")] == 1
    assert samples[key("kvmhole_probe_lost_events_total")] == 0
    assert samples[key("kvmhole_probe_info", path="emulated", kernel_counts="reads")] == 1
    # Bounded cardinality: no pid or address ever becomes a label.
    label_names = {name for (_, labels) in samples for name, _ in labels}
    assert label_names <= {"guest", "vmm", "served", "reason", "strategy", "path",
                           "kernel_counts", "stat", "le", "map", "quantile", "mechanism",
                           "bus"}


def test_self_metrics_and_map_fill():
    probe = ProbeHealth("emulated", maps={"counts": [3, 1024], "vcpus": [5, 8192]},
                        map_full={"holes": 2, "counts": 0, "vcpus": 0})
    store = store_with(snapshot(guest(7, "vm-a"), guest(8, "vm-b"), probe=probe))
    self_metrics = SelfMetrics()
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(store, self_metrics))
    for _ in range(2):
        generate_latest(registry)
    # Renders are counted as of the latest poll, so every render of one snapshot agrees.
    assert "kvmhole_exporter_scrape_duration_seconds_count 0.0" in generate_latest(
        registry).decode()
    self_metrics.timed(lambda: store.peek())()
    text = generate_latest(registry).decode()
    assert "kvmhole_exporter_scrape_duration_seconds_count 3.0" in text
    assert "kvmhole_exporter_poll_duration_seconds_count 1.0" in text
    samples = scrape(store)  # a collector of its own: it has seen no scrape yet
    assert samples[key("kvmhole_probe_map_entries", map="counts")] == 3
    assert samples[key("kvmhole_probe_map_max_entries", map="vcpus")] == 8192
    assert samples[key("kvmhole_probe_map_full_total", map="holes")] == 2
    assert samples[key("kvmhole_exporter_guests")] == 2
    assert samples[key("kvmhole_exporter_scrape_duration_seconds_count")] == 0


def test_roundtrip_histogram_is_cumulative_in_seconds():
    h = Histogram()
    h.counts[2], h.counts[4], h.counts[-1] = 5, 3, 1  # 1.024 us, 4.096 us, +Inf
    h.sum_s = 12.5
    samples = scrape(store_with(snapshot(guest(7, "vm-a", roundtrip=h))))
    name = "kvmhole_userspace_exit_seconds"
    assert samples[key(f"{name}_bucket", guest="vm-a", le="5.12e-07")] == 0
    assert samples[key(f"{name}_bucket", guest="vm-a", le="1.024e-06")] == 5
    assert samples[key(f"{name}_bucket", guest="vm-a", le="4.096e-06")] == 8
    assert samples[key(f"{name}_bucket", guest="vm-a", le="+Inf")] == 9
    assert samples[key(f"{name}_count", guest="vm-a")] == 9
    assert samples[key(f"{name}_sum", guest="vm-a")] == 12.5


class Clock:
    """The store's clock, moved by hand: retention is a fixed time, tested without waiting."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def names(samples) -> set[str]:
    return {dict(labels)["guest"] for (name, labels) in samples if name == "kvmhole_guest_info"}


def test_an_exited_guest_is_served_to_every_scraper_for_a_fixed_time():
    clock = Clock()
    store = LatestSnapshot(retain_s=120, clock=clock)
    store.update(snapshot(guest(1, "stays", config=ecam(reads_in_kernel=1)),
                          guest(2, "leaves", config=ecam(reads_in_kernel=10))))
    # The source drops the guest between two scrapes: its final count is still served,
    # to each of two scrapers (an HA pair), however often they scrape
    store.update(snapshot(guest(1, "stays", config=ecam(reads_in_kernel=2))))
    for _ in range(3):
        for _scraper in ("a", "b"):
            samples = scrape(store)
            assert samples[key("kvmhole_pci_hole_reads_total", guest="leaves",
                               mechanism="ecam", served="kernel")] == 10
    clock.now += 121
    store.update(snapshot(guest(1, "stays", config=ecam(reads_in_kernel=3))))
    assert names(scrape(store)) == {"stays"}


def test_exited_guests_do_not_pile_up_without_scrapes():
    clock = Clock()
    store = LatestSnapshot(retain_s=120, clock=clock)
    for pid in range(100, 1100):
        store.update(snapshot(guest(pid, f"short-{pid}", alive=False)))
        clock.now += 1
    assert len(store.for_scrape().guests) == 121  # the last 120 s, not all 1000


def test_guest_reported_dead_is_kept_even_if_the_source_keeps_it():
    clock = Clock()
    store = LatestSnapshot(retain_s=120, clock=clock)
    dead = guest(2, "done", config=ecam(reads_in_kernel=5), alive=False)
    store.update(snapshot(dead))
    store.update(snapshot(dead))
    assert names(scrape(store)) == {"done"}
    clock.now += 121
    store.update(snapshot(dead))
    assert names(scrape(store)) == set()


def test_guests_sharing_a_name_do_not_collide_and_keep_their_labels():
    store = store_with(snapshot(guest(11, "twin")))
    assert names(scrape(store)) == {"twin"}
    store.update(snapshot(guest(11, "twin"), guest(12, "twin")))
    assert names(scrape(store)) == {"twin", "twin/12"}  # the first keeps its series
    store.update(snapshot(guest(12, "twin")))  # the first exits: retained, same label
    assert names(scrape(store)) == {"twin", "twin/12"}
    store.update(snapshot(guest(12, "twin")))
    assert names(scrape(store)) == {"twin", "twin/12"}  # and the second never flips


def test_failed_poll_reports_probe_down_and_keeps_counts():
    store = store_with(snapshot(guest(1, "vm", config=ecam(reads_in_kernel=4))))
    store.probe_failed("BPF map vanished")
    samples = scrape(store)
    assert samples[key("kvmhole_probe_up")] == 0
    assert samples[key("kvmhole_pci_hole_reads_total", guest="vm", mechanism="ecam",
                       served="kernel")] == 4


def test_nothing_is_served_before_the_first_snapshot():
    assert scrape(LatestSnapshot()) == {}


def test_served_metrics_pass_promtool(tmp_path):
    kernel_time = Histogram()
    kernel_time.counts[0], kernel_time.sum_s = 4, 1e-6
    busy = guest(3, "busy", config=ecam(reads_in_kernel=9, read_exits=1, exits=1, writes=1),
                 userspace_exits={"MMIO": 2, "IO": 5, "HLT": 1}, kernel_time=kernel_time)
    busy.roundtrip.counts[3], busy.roundtrip.sum_s = 8, 1.6e-5
    store = store_with(snapshot(busy, guest(4, "idle"),
                                probe=ProbeHealth("vmx/svm", lost_events=2)))
    with listening("127.0.0.1:0", store) as address, \
            urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as reply:
        text = reply.read()
    done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                          timeout=60)
    assert done.returncode == 0, (done.stdout + done.stderr).decode()
    assert b'kvmhole_hole_kernel_seconds_count{guest="busy",vmm="kvmhole"} 4.0' in text


def test_a_scrape_between_polls_serves_the_bytes_of_that_poll():
    """Rendered once per poll: the same body until the store changes, then the new counts,
    in either exposition format and gzipped when asked."""
    store = LatestSnapshot()
    store.update(snapshot(guest(1, "vm-a", config=ecam(reads_in_kernel=5))))

    def get(address: str, **headers) -> tuple[bytes, dict]:
        request = urllib.request.Request(f"http://{address}/metrics", headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read(), dict(response.headers)

    with listening("127.0.0.1:0", store) as address:
        first, _ = get(address)
        assert get(address)[0] == first
        assert b'mechanism="ecam",served="kernel",vmm="kvmhole"} 5.0' in first
        store.update(snapshot(guest(1, "vm-a", config=ecam(reads_in_kernel=9))))
        second, _ = get(address)
        assert b'mechanism="ecam",served="kernel",vmm="kvmhole"} 9.0' in second
        open_metrics, headers = get(address, Accept="application/openmetrics-text")
        assert headers["Content-Type"].startswith("application/openmetrics-text")
        assert open_metrics.endswith(b"# EOF\n")
        zipped, headers = get(address, **{"Accept-Encoding": "gzip"})
        assert headers["Content-Encoding"] == "gzip"
        # rendered for its own format: the same counts (self-metrics count renders)
        assert b'mechanism="ecam",served="kernel",vmm="kvmhole"} 9.0' in gzip.decompress(zipped)
