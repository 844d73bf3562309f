"""The Grafana dashboard and the example rules, checked by promtool and against a
real Prometheus (Debian's package) scraping an in-process exporter over synthetic
snapshots. test_dashboards_live.py does the same against real guests.
"""

import json
import re
import time

import pytest

from kvmhole.exporter.poller import Poller
from kvmhole.exporter.server import listening
from kvmhole.exporter.store import LatestSnapshot
from kvmhole.probes.snapshot import GuestStats, Histogram, ProbeHealth, Snapshot
from kvmhole.tui.columns import COLUMN
from tests.prometheus_harness import (
    DASHBOARD,
    DASHBOARDS,
    GRAFANA_VARIABLES,
    RULES,
    Prometheus,
    dashboard_code,
    dashboard_exprs,
    ended,
    one_series,
    panel_exprs,
    promtool,
    series,
    wait_for,
)
from tests.test_exporter import ecam


def test_committed_dashboard_is_the_one_the_code_generates():
    """kvmhole.json is built by dashboards/kvmhole_dashboard.py; regenerate it with
    `.venv/bin/python dashboards/kvmhole_dashboard.py > dashboards/kvmhole.json`."""
    assert DASHBOARD.read_text() == dashboard_code().render()


def test_dashboard_is_a_grafana_dashboard_with_host_guest_and_datasource_variables():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] and dashboard["title"]
    variables = [v["name"] for v in dashboard["templating"]["list"]]
    assert variables == ["datasource", "instance", "guest"]  # a host before its guests
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["guest"]["definition"] == \
        'label_values(kvmhole_guest_info{instance=~"$instance"}, guest)'
    for name in ("instance", "guest"):
        assert variables[name]["multi"] and variables[name]["includeAll"]

    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        # Every query goes to the data source the user picked, never a fixed one.
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            # every panel follows the host picker; per-guest panels the guest picker too
            assert 'instance=~"$instance"' in target["expr"], target["expr"]
            per_host = target["expr"].startswith(("instance", "sort_desc", "sum by (instance)"))
            if not per_host and "kvmhole_probe" not in target["expr"]:
                assert 'guest=~"$guest"' in target["expr"], target["expr"]
        assert set(re.findall(r"\$\w+", json.dumps(panel["targets"]))) <= set(GRAFANA_VARIABLES)

    kinds = {p["type"] for p in dashboard["panels"]}
    assert {"timeseries", "heatmap", "stat", "bargauge"} <= kinds
    exprs = " ".join(dashboard_exprs())
    for needed in ('served="kernel"', "kvmhole_userspace_exits_total", "histogram_quantile",
                   "kvmhole_userspace_exit_seconds_bucket", "kvmhole_probe_info"):
        assert needed in exprs


def test_the_fleet_row_comes_first_and_links_a_host_to_its_guests():
    panels = json.loads(DASHBOARD.read_text())["panels"]
    fleet_row = next(i for i, p in enumerate(panels[1:], 1) if p["type"] == "row")
    assert panels[0]["title"] == "Fleet: hosts"
    fleet = panels[1:fleet_row]
    for panel in fleet:  # every fleet panel reads a per-host recording rule
        assert [t["legendFormat"] for t in panel["targets"]] == ["{{instance}}"]
        link = panel["fieldConfig"]["defaults"]["links"][0]["url"]
        assert "var-instance=${__field.labels.instance}" in link
        assert link.startswith(f"/d/{json.loads(DASHBOARD.read_text())['uid']}/")
    titles = " ".join(p["title"] for p in fleet)
    for needed in ("reaching userspace", "served in the kernel", "Time saved", "Probe health"):
        assert needed in titles


def test_rules_pass_promtool():
    assert "SUCCESS: 11 rules found" in promtool("check", "rules", str(RULES))


def test_rules_behave_as_their_unit_tests_say():
    """Alert timing and recorded values on series whose answers are known."""
    assert "SUCCESS" in promtool("test", "rules", str(DASHBOARDS / "kvmhole-rules.test.yml"))


def test_example_prometheus_config_is_valid():
    assert "is valid prometheus config" in promtool(
        "check", "config", str(DASHBOARDS / "prometheus.yml"))


def test_the_readmes_fleet_config_is_valid(tmp_path):
    """README's "Run it on every host" scrape config, with its rule file where it is here."""
    readme = (DASHBOARDS.parent / "README.md").read_text()
    section = readme[readme.index("### Run it on every host"):]
    config = re.search(r"```yaml\n(.*?)```", section, re.S)[1]
    assert 'job_name: kvmhole' in config  # the name the probe health rule reads
    path = tmp_path / "prometheus.yml"
    path.write_text(config.replace("/etc/prometheus/kvmhole-rules.yml", str(RULES)))
    assert "is valid prometheus config" in promtool("check", "config", str(path))


class GrowingGuests:
    """A snapshot source whose two guests make progress at every poll: one whose
    hole reads stay in the kernel, one whose hole reads and writes exit. A third
    lives for SHORT_POLLS polls only, far less than a scrape interval. The probe
    reports itself down and losing events, so the failure alerts have data too."""

    SHORT_POLLS = 3

    def __init__(self):
        self.polls = 0

    def __call__(self) -> Snapshot:
        self.polls += 1
        n = self.polls
        in_kernel = GuestStats(1001, "synthetic-alias", "kvmhole", "alias",
                               [(0xB0008000, 0xC0000000)], config=ecam(reads_in_kernel=100 * n),
                               userspace_exits={"MMIO": n, "IO": 2 * n})
        to_vmm = GuestStats(1002, "synthetic-exit", "kvmhole", "exit",
                            [(0xB0008000, 0xC0000000)],
                            config=ecam(read_exits=50 * n, exits=50 * n, writes=n),
                            userspace_exits={"MMIO": 51 * n, "IO": 2 * n})
        # Round trips: MMIO exits in bucket 5, port I/O in bucket 6 (twice as slow).
        for guest in (in_kernel, to_vmm):
            exits = guest.userspace_exits
            guest.kvm_stats = {"exits": sum(exits.values()), "mmio_exits": exits["MMIO"]}
            guest.roundtrip.counts[5], guest.roundtrip.counts[6] = exits["MMIO"], exits["IO"]
            guest.roundtrip.sum_s = sum(exits.values()) * guest.roundtrip.bounds[5]
        guests = [in_kernel, to_vmm]
        if n <= self.SHORT_POLLS:
            guests.append(GuestStats(1003, "synthetic-short", "kvmhole", "alias",
                                     [(0xB0008000, 0xC0000000)],
                                     config=ecam(reads_in_kernel=7 * n)))
        probe = ProbeHealth("emulated", up=False, lost_events=n, message="synthetic")
        return Snapshot(time.time(), 0.2, probe, guests)


@pytest.fixture(scope="module")
def synthetic_prometheus(tmp_path_factory):
    """An in-process exporter over GrowingGuests, scraped by a real Prometheus every
    second. The guests start once Prometheus is up (it takes seconds to start), and
    exited guests are kept 20 s, so the short one reaches it and then goes stale within
    the test."""
    store = LatestSnapshot(retain_s=20)
    with listening("127.0.0.1:0", store) as address:
        prometheus = Prometheus(tmp_path_factory.mktemp("prometheus"), address)
        try:
            with Poller(GrowingGuests(), store, 0.2):
                yield prometheus
        finally:
            prometheus.close()


def test_every_dashboard_and_rule_expression_returns_data(synthetic_prometheus):
    prometheus = synthetic_prometheus
    # rate() needs two samples in its window; three make sure the window is full.
    wait_for("three scrapes",
             lambda: prometheus.query("count_over_time(kvmhole_probe_up[1m]) >= 3"))
    guests = prometheus.api("label/guest/values", **{"match[]": "kvmhole_guest_info"})
    assert {"synthetic-alias", "synthetic-exit"} <= set(guests)  # the $guest picker

    rules = prometheus.rules()
    assert len(rules) == 11, "Prometheus did not load every rule in the file"
    for rule in rules:  # the fleet row reads recorded series
        if rule["type"] == "recording":
            wait_for(f"recorded series {rule['name']}",
                     lambda rule=rule: prometheus.query(rule["name"]))
    for expr in dashboard_exprs() + [r["query"] for r in rules]:
        assert prometheus.query(expr), f"no data for {expr}"

    # The numbers behind the panels: the kernel share is 1 for the guest whose reads
    # stay in the kernel and 0 for the one whose reads all exit.
    share = {r["metric"]["guest"]: float(r["value"][1]) for r in prometheus.query(
        panel_exprs()["Share of hole reads served in the kernel"][0])}
    assert share["synthetic-alias"] == 1.0 and share["synthetic-exit"] == 0.0


def test_a_guest_shorter_than_a_scrape_reaches_prometheus_with_its_final_count(
        synthetic_prometheus):
    wait_for("the short guest to come and go", lambda: ended(synthetic_prometheus,
                                                             "synthetic-short"))
    final = 7 * GrowingGuests.SHORT_POLLS
    samples = series(synthetic_prometheus,
                     'kvmhole_pci_hole_reads_total{guest="synthetic-short",mechanism="ecam",served="kernel"}')
    assert samples[-1] == final


def test_time_saved_in_top_is_the_recording_rule(synthetic_prometheus):
    """One definition of time saved: top's column (in-kernel reads x the median round
    trip, over the whole run) and the rule (the same per second) on the same data.
    The synthetic counters all grow in step, so the median of the 1m rates is the
    median of the totals: the rule divided by the kernel rate, and top's figure
    divided by the kernel count, must both be that median.

    The two recorded series are compared at each evaluation they share: Prometheus
    stores each rule's result as it goes, so a query at "now" can take the kernel rate
    of one evaluation and the time saved of the one before, and rates move a little
    between evaluations as polls and scrapes drift."""
    prometheus = synthetic_prometheus
    rule = 'instance_guest:kvmhole_hole_time_saved_seconds:rate1m{guest="synthetic-alias"}'
    kernel = ('instance_guest_served:kvmhole_pci_hole_reads:rate1m'
              '{guest="synthetic-alias",served="kernel"}')

    def medians_in_prometheus() -> list[float]:
        saved, reads = one_series(prometheus, rule), one_series(prometheus, kernel)
        return [float(saved[t]) / float(reads[t]) for t in sorted(saved.keys() & reads.keys())
                if float(reads[t]) > 0]  # none while a stalled poll left two samples equal

    medians = wait_for("the time-saved rule", medians_in_prometheus)
    guest = GrowingGuests()().guest(1001)
    median_in_top = COLUMN["saved"].sort(guest) / guest.hole_reads_in_kernel
    assert medians == pytest.approx([median_in_top] * len(medians), rel=1e-9)
    # One MMIO exit in bucket 5 per two port I/O exits in bucket 6: the median lies a
    # quarter into bucket 6 (the bucket's upper bound would be twice bucket 5's).
    bounds = guest.roundtrip.bounds
    assert median_in_top == pytest.approx(bounds[5] + (bounds[6] - bounds[5]) / 4, rel=1e-12)


def test_snapshot_quantile_interpolates_as_histogram_quantile_does():
    """From 0 in the first bucket; the highest finite bound for a rank in +Inf."""
    h = Histogram(bounds=(1.0, 2.0, 4.0), counts=[2, 0, 2, 0])
    assert h.quantile(0.25) == 0.5 and h.quantile(0.5) == 1.0 and h.quantile(0.75) == 3.0
    assert Histogram(bounds=(1.0, 2.0), counts=[1, 0, 3]).quantile(0.5) == 2.0
    assert Histogram(bounds=(1.0,), counts=[0, 0]).quantile(0.5) is None
