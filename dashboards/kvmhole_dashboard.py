"""The Grafana dashboard as code, built with Grafana's own SDK (grafana-foundation-sdk).

    .venv/bin/python dashboards/kvmhole_dashboard.py > dashboards/kvmhole.json

kvmhole.json is generated from this file and committed so it can be imported as
is; tests/test_dashboards.py checks that the two agree. The fleet row reads the
per-host recording rules of kvmhole-rules.yml, so it works the same on a
Prometheus that only federates those; the per-guest rows read the exporter's series.
"""

import json
import sys

from grafana_foundation_sdk.builders import bargauge, dashboard, heatmap, prometheus, stat, table
from grafana_foundation_sdk.builders import timeseries as ts
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

UID = "kvmhole-pci-hole"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
# Every per-guest selector: the hosts and guests picked at the top.
GUEST = 'instance=~"$instance",guest=~"$guest"'
BY_GUEST = "instance, guest, vmm"
# A host's guests: the same dashboard with only that host selected.
DRILL_DOWN = (f"/d/{UID}/kvmhole?${{datasource:queryparam}}"
              "&var-instance=${__field.labels.instance}&${__url_time_range}")


def query(expr: str, legend: str, ref: str = "A", instant: bool = False,
          fmt: PromQueryFormat | None = None) -> prometheus.Dataquery:
    q = prometheus.Dataquery().ref_id(ref).datasource(DATASOURCE).expr(" ".join(expr.split()))
    q = q.legend_format(legend)
    if instant:
        q = q.instant()
    return q.format(fmt) if fmt else q


def rate(selector: str, window: str = "$__rate_interval") -> str:
    return f"rate({selector}[{window}])"


def time_saved(over) -> str:
    """In-kernel hole reads x the median userspace round trip, per guest: the one
    definition (GuestStats.time_saved_s, the recording rule) with `over` = rate or increase."""
    kernel = over(f'kvmhole_pci_hole_reads_total{{{GUEST},served="kernel"}}')
    buckets = over(f"kvmhole_userspace_exit_seconds_bucket{{{GUEST}}}")
    return (f"sum by ({BY_GUEST}) ({kernel}) * on ({BY_GUEST}) "
            f"histogram_quantile(0.5, sum by ({BY_GUEST}, le) ({buckets}))")


def add(d: dashboard.Dashboard, panel) -> None:
    """Every panel queries the data source picked in the variable, never a fixed one."""
    d.with_panel(panel.datasource(DATASOURCE))


def drill_down() -> dashboard.DashboardLink:
    # The SDK has no data-link builder: it types a panel's data links as dashboard
    # links, whose extra fields (type, tags, ...) Grafana ignores on a data link.
    return dashboard.DashboardLink("Guests of ${__field.labels.instance}").url(DRILL_DOWN)


def fleet(d: dashboard.Dashboard) -> None:
    d.with_row(dashboard.Row("Fleet: hosts"))
    host = 'instance=~"$instance"'
    add(d,
        bargauge.Panel().title("Hosts by hole reads still reaching userspace").height(8).span(12)
        .description("Hole reads/s that exit to the VMM, per host, largest first; click a "
                     "host for its guests.")
        .with_target(query("sort_desc(sum by (instance) (instance_served:kvmhole_pci_hole_reads"
                           f':rate1m{{{host},served="userspace"}}))', "{{instance}}",
                           instant=True))
        .unit("reqps").data_links([drill_down()]))
    add(d,
        ts.Panel().title("Share of hole reads served in the kernel, per host").height(8).span(12)
        .with_target(query(f"instance:kvmhole_pci_hole_reads_kernel_share:ratio_rate1m{{{host}}}",
                           "{{instance}}"))
        .unit("percentunit").min(0).max(1).data_links([drill_down()]))
    add(d,
        ts.Panel().title("Time saved by in-kernel handling, per host").height(8).span(12)
        .description("Seconds of VMM round trips avoided per second: in-kernel hole reads x "
                     "each guest's median userspace round trip, summed over the host's guests.")
        .with_target(query(f"instance:kvmhole_hole_time_saved_seconds:rate1m{{{host}}}",
                           "{{instance}}"))
        .unit("s").data_links([drill_down()]))
    add(d,
        stat.Panel().title("Probe health per host").height(8).span(12)
        .description("down: the probes cannot read BPF, or the exporter itself is not "
                     "scraped (it failed to load the probes, or the host is gone).")
        .with_target(query(f"instance:kvmhole_probe_up:min{{{host}}}", "{{instance}}",
                           instant=True))
        .mappings([model.ValueMap({"0": model.ValueMappingResult("down", "red"),
                                   "1": model.ValueMappingResult("up", "green")})])
        .data_links([drill_down()]))


def hole_reads(d: dashboard.Dashboard) -> None:
    reads = f"kvmhole_pci_hole_reads_total{{{GUEST}}}"
    d.with_row(dashboard.Row("PCI hole reads"))
    add(d,
        ts.Panel().title("Hole reads: served in the kernel vs exits to userspace")
        .height(8).span(12).unit("reqps")
        .with_target(query(f"sum by ({BY_GUEST}, served) ({rate(reads)})",
                           "{{instance}} {{guest}} {{served}}")))
    kernel = f'kvmhole_pci_hole_reads_total{{{GUEST},served="kernel"}}'
    add(d,
        ts.Panel().title("Share of hole reads served in the kernel").height(8).span(12)
        .unit("percentunit").min(0).max(1)
        .with_target(query(f"sum by ({BY_GUEST}) ({rate(kernel)}) / "
                           f"sum by ({BY_GUEST}) ({rate(reads)})", "{{instance}} {{guest}}")))
    writes = f"kvmhole_pci_hole_writes_total{{{GUEST}}}"
    add(d,
        ts.Panel().title("Hole writes (always exit to userspace)").height(8).span(12)
        .unit("wps")
        .with_target(query(f"sum by ({BY_GUEST}) ({rate(writes)})", "{{instance}} {{guest}}")))
    add(d,
        stat.Panel().title("Hole reads over the time range").height(8).span(12)
        .with_target(query(f"sum by ({BY_GUEST}, served) (increase({reads}[$__range]))",
                           "{{instance}} {{guest}} {{served}}", instant=True)))


def exits(d: dashboard.Dashboard) -> None:
    buckets = f"kvmhole_userspace_exit_seconds_bucket{{{GUEST}}}"
    by_reason = f"kvmhole_userspace_exits_total{{{GUEST}}}"
    d.with_row(dashboard.Row("Exits to userspace"))
    add(d,
        ts.Panel().title("Userspace exits by reason").height(8).span(12).unit("ops")
        .with_target(query(f"sum by ({BY_GUEST}, reason) ({rate(by_reason)})",
                           "{{instance}} {{guest}} {{reason}}")))
    quantiles = ts.Panel().title("Userspace round trip quantiles").height(8).span(12).unit("s")
    for ref, q in zip("ABC", ("0.5", "0.9", "0.99"), strict=True):
        quantiles.with_target(query(
            f"histogram_quantile({q}, sum by ({BY_GUEST}, le) ({rate(buckets)}))",
            f"{{{{instance}}}} {{{{guest}}}} p{q.removeprefix('0.').ljust(2, '0')}", ref))
    add(d, quantiles)
    add(d,
        heatmap.Panel().title("Userspace round trip heatmap").height(8).span(24)
        .with_target(query(f"sum by (le) ({rate(buckets)})", "{{le}}",
                           fmt=PromQueryFormat.HEATMAP)))


def time_saved_row(d: dashboard.Dashboard) -> None:
    d.with_row(dashboard.Row("Time saved by in-kernel handling"))
    add(d,
        ts.Panel().title("Time saved by in-kernel handling").height(8).span(12).unit("s")
        .description("Seconds of VMM time avoided per second: in-kernel hole reads x the "
                     "guest's median userspace round trip.")
        .with_target(query(time_saved(rate), "{{instance}} {{guest}}")))
    add(d,
        stat.Panel().title("Time saved over the time range").height(8).span(12).unit("s")
        .with_target(query(time_saved(lambda s: f"increase({s}[$__range])"),
                           "{{instance}} {{guest}}", instant=True)))


def guests_and_probes(d: dashboard.Dashboard) -> None:
    host = 'instance=~"$instance"'
    d.with_row(dashboard.Row("Guests and probes"))
    add(d,
        table.Panel().title("Guests").height(6).span(12)
        .with_target(query(f"kvmhole_guest_info{{{GUEST}}}", "", instant=True,
                           fmt=PromQueryFormat.TABLE)))
    add(d,
        stat.Panel().title("Probe path").height(6).span(6)
        .with_target(query(f"kvmhole_probe_info{{{host}}}", "{{instance}} {{path}}",
                           instant=True)))
    add(d,
        stat.Panel().title("Lost probe events").height(6).span(6)
        .with_target(query("sum by (instance) "
                           f"(increase(kvmhole_probe_lost_events_total{{{host}}}[$__range]))",
                           "{{instance}}", instant=True)))
    probes = f'kvmhole_userspace_exits_total{{{GUEST},reason="MMIO"}}'
    kvm = f'kvmhole_kvm_stat_exits_total{{{GUEST},stat="mmio_exits"}}'
    mmio = ts.Panel().title("MMIO exits: the probes' count vs KVM's own").height(8).span(24)
    mmio.with_target(query(f"sum by ({BY_GUEST}) ({rate(probes)})",
                           "{{instance}} {{guest}} probes"))
    mmio.with_target(query(f"sum by ({BY_GUEST}) ({rate(kvm)})", "{{instance}} {{guest}} KVM",
                           "B"))
    add(d, mmio.unit("ops"))


def variables(d: dashboard.Dashboard) -> None:
    d.with_variable(dashboard.DatasourceVariable("datasource").label("Data source")
                    .type("prometheus"))
    # Hosts come from the per-host probe health rule, which keeps a host whose
    # exporter is down: it must show as down, not vanish from the picker.
    picks = (("instance", "Host", "label_values(instance:kvmhole_probe_up:min, instance)"),
             ("guest", "Guest", 'label_values(kvmhole_guest_info{instance=~"$instance"}, guest)'))
    for name, label, definition in picks:
        d.with_variable(
            dashboard.QueryVariable(name).label(label).datasource(DATASOURCE)
            .query({"query": definition, "refId": "PrometheusVariableQueryEditor-VariableQuery",
                    "qryType": 1})
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
            .multi(True).include_all(True).all_value(".*"))


def build() -> dict:
    d = (dashboard.Dashboard("kvmhole: PCI hole reads").uid(UID)
         .description("kvmhole: PCI hole reads served in the kernel versus exits to "
                      "userspace, per host and guest.")
         .tags(["kvmhole", "kvm"]).editable().tooltip(model.DashboardCursorSync.CROSSHAIR)
         .time("now-15m", "now").refresh("10s"))
    variables(d)
    for section in (fleet, hole_reads, exits, time_saved_row, guests_and_probes):
        section(d)
    out = json.loads(JSONEncoder().encode(d.build()))
    for number, panel in enumerate(out["panels"], 1):
        panel["id"] = number  # the SDK leaves ids to Grafana; stable ones keep diffs small
    # The SDK has no builder for a query variable's `definition` (the text Grafana's
    # variable editor shows): set it from the query.
    for variable in out["templating"]["list"]:
        if variable["type"] == "query":
            variable["definition"] = variable["query"]["query"]
    return out


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
