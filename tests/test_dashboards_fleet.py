"""A fleet: a real Prometheus scrapes three `kvmhole export` processes as three
hosts (distinct ports on 127.0.0.1, each watching only its own guests with -p), plus
a fourth host whose probes fail to load. Hosts a and b each run a guest named
web-1. A second Prometheus federates the first's recording rules, as a global
Prometheus over many hypervisors would.

Ground truth is each guest's own `kvmhole run ecam-scan --json`. Guests start
stopped (SIGSTOP before exec, so the pid is the VMM's) and are let go once their
host's exporter serves, so the exporter sees every read they make.
"""

import json
import os
import signal
import subprocess
from dataclasses import dataclass, field

import pytest

from tests.broken_hosts import NO_TRACEFS, in_namespace
from tests.conftest import KVMHOLE, assert_one_line_error, serving, start_stopped
from tests.prometheus_harness import (
    Prometheus,
    free_port,
    one_series,
    panel_exprs,
    samples,
    wait_for,
)

# host -> its guests: (name, hole strategy, ecam-scan passes); long enough for a
# few scrapes each, so every guest's rate() has samples of its growth.
HOSTS = {
    "a": [("web-1", "alias", 20)],
    "b": [("web-1", "exit", 8)],
    "c": [("db-1", "alias", 20), ("db-2", "exit", 8)],
}
BROKEN = "d"  # its probes cannot load: no tracefs
RECORDED = '{__name__=~"instance.*:kvmhole_.*"}'  # what the global Prometheus federates
RATE_WINDOW_S = 60  # the rules' and panels' rate() window ([1m], $__rate_interval)


@dataclass
class Host:
    address: str = ""  # the exporter's 127.0.0.1:PORT, its `instance` in Prometheus
    guests: dict[str, dict] = field(default_factory=dict)  # name -> `kvmhole run --json`


@dataclass
class Fleet:
    hosts: dict[str, Host]
    prometheus: Prometheus
    federated: Prometheus
    at: float  # a moment every guest's final counts were scraped, its run in rate()'s 1m

    def instance(self, host: str) -> str:
        return self.hosts[host].address

    def by_instance(self, expr: str, prometheus: Prometheus | None = None) -> dict[str, float]:
        result = (prometheus or self.prometheus).query(expr, at=self.at)
        instances = [r["metric"]["instance"] for r in result]
        assert len(instances) == len(set(instances)), f"not one series per host: {result}"
        host = {h.address: name for name, h in self.hosts.items()}
        return {host[r["metric"]["instance"]]: float(r["value"][1]) for r in result}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet")
    env = {**os.environ, "KVMHOLE_RUN_DIR": str(tmp / "run")}
    hosts = {name: Host() for name in HOSTS}
    guests: dict[tuple[str, str], subprocess.Popen] = {}
    exports: list[subprocess.Popen] = []
    prometheus = federated = None
    try:
        for host, specs in HOSTS.items():
            for name, strategy, passes in specs:
                guests[host, name] = start_stopped(
                    ["run", "ecam-scan", "--hole", strategy, "--passes", str(passes),
                     "--name", name, "--json"], env)
        for host in HOSTS:  # all three load their probes at once
            pids = [f"-p{guests[host, name].pid}" for name, *_ in HOSTS[host]]
            with (tmp / f"export-{host}.log").open("w") as log:
                exports.append(subprocess.Popen(
                    [*KVMHOLE, "export", "--listen", "127.0.0.1:0", "--interval", "0.2", *pids],
                    stdout=subprocess.DEVNULL, stderr=log, env=env))
        for host, export in zip(HOSTS, exports, strict=True):
            log = tmp / f"export-{host}.log"
            hosts[host].address = wait_for(f"host {host}'s exporter to serve",
                                           lambda e=export, log=log: serving(e, log), 300)

        # Bad input: an exporter on a port another one holds, and a host whose probes
        # fail to load. Both exit 1 with one line; the broken host stays a target.
        taken = subprocess.run([*KVMHOLE, "export", "--listen", hosts["a"].address],
                               capture_output=True, text=True, timeout=120, env=env)
        assert_one_line_error(taken, "in use")
        broken = Host(f"127.0.0.1:{free_port()}")
        assert in_namespace(NO_TRACEFS, *KVMHOLE, "export", "--listen",
                            broken.address).returncode == 1
        hosts[BROKEN] = broken

        prometheus = Prometheus(tmp / "prometheus", *(h.address for h in hosts.values()))
        federated = Prometheus(tmp / "global", rules=False, scrape_configs=[{
            "job_name": "federate", "honor_labels": True, "metrics_path": "/federate",
            "params": {"match[]": [RECORDED]},
            "static_configs": [{"targets": [prometheus.url.removeprefix("http://")]}]}])
        up = 'count_over_time(up{job="kvmhole"}[1m]) >= 2'
        wait_for("two scrapes of every host", lambda: len(prometheus.query(up)) == len(hosts))

        for guest in guests.values():
            guest.send_signal(signal.SIGCONT)
        for (host, name), guest in guests.items():
            out, _ = guest.communicate(timeout=300)
            hosts[host].guests[name] = json.loads(out)
            assert guest.returncode == 0 and hosts[host].guests[name]["status"] == "ok"

        # When each guest's final count was first scraped (KVM's exit count as its own
        # --json says; the exporter keeps serving an exited guest for a while).
        seen = {}
        for host, name in guests:
            selector = (f'kvmhole_kvm_stat_exits_total{{instance="{hosts[host].address}",'
                        f'guest="{name}",stat="exits"}}')
            final = str(hosts[host].guests[name]["kvm_stats"]["exits"])
            times = wait_for(f"{host}/{name}'s final counts in Prometheus",
                             lambda s=selector, f=final: [
                                 t for t, v in one_series(prometheus, s).items() if v == f])
            seen[host, name] = (min(times), sorted(one_series(prometheus, selector)))
        # The rules' first evaluation after the last of them: the exporter keeps serving
        # an exited guest (RETAIN_S), so every guest is still a series then, and the raw
        # series and the recorded ones hold every final count. Each guest's 1m rates
        # cover its growth if two earlier samples are in the window. (Guests start at
        # different speeds on a loaded host: no moment while all of them ran is sure.)
        last = max(final for final, _ in seen.values())
        evaluations = f'instance:kvmhole_probe_up:min{{instance="{hosts["a"].address}"}}'
        at = min(wait_for("an evaluation of the rules after the last final count", lambda: [
            t for t in one_series(prometheus, evaluations) if t > last]))
        for (host, name), (final, times) in seen.items():
            growing = [t for t in times if at - RATE_WINDOW_S < t < final]
            assert len(growing) >= 2, (host, name, times, at)
        yield Fleet(hosts, prometheus, federated, at)
    finally:
        for process in [*guests.values(), *exports]:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.terminate()
                process.wait(timeout=60)
        for server in (federated, prometheus):
            if server is not None:
                server.close()


def test_each_host_counts_exactly_its_own_guests(fleet):
    """Per host and guest, the last scraped counters equal the guest's own counts:
    the two web-1 guests stay apart, and a host's total is its guests' sum."""
    totals = fleet.prometheus.query(
        "sum by (instance, guest, served) (last_over_time(kvmhole_pci_hole_reads_total[15m]))")
    scraped = {(r["metric"]["instance"], r["metric"]["guest"], r["metric"]["served"]):
               float(r["value"][1]) for r in totals}
    expected = {}
    for host in HOSTS:
        for name, run in fleet.hosts[host].guests.items():
            instance = fleet.instance(host)
            expected[instance, name, "userspace"] = run["hole_read_exits"]
            expected[instance, name, "kernel"] = run["guest_hole_reads"] - run["hole_read_exits"]
    assert scraped == expected


def test_every_panel_and_rule_returns_one_series_per_host(fleet):
    """Once every guest ran, within the rates' window: the fleet row has one series per
    host (the broken one as down), per-guest panels one per host and guest, and
    values follow each host's ground truth."""
    live = list(HOSTS)
    panels = panel_exprs()
    down = fleet.by_instance(panels["Probe health per host"][0])
    assert down == {"a": 1.0, "b": 1.0, "c": 1.0, BROKEN: 0.0}

    userspace = fleet.by_instance(panels["Hosts by hole reads still reaching userspace"][0])
    assert set(userspace) == set(live) and userspace["a"] == 0 < userspace["b"]
    ranked = [float(r["value"][1]) for r in fleet.prometheus.query(
        panels["Hosts by hole reads still reaching userspace"][0], at=fleet.at)]
    assert ranked == sorted(ranked, reverse=True)  # most userspace reads first

    share = fleet.by_instance(panels["Share of hole reads served in the kernel, per host"][0])
    assert share["a"] == 1.0 and share["b"] == 0.0 and 0 < share["c"] < 1
    saved = fleet.by_instance(panels["Time saved by in-kernel handling, per host"][0])
    assert saved["a"] > 0 and saved["b"] == 0 and saved["c"] > 0
    for expr in (panels["Lost probe events"][0], panels["Probe path"][0]):
        assert set(fleet.by_instance(expr)) == set(live)

    every_guest = {(fleet.instance(h), name) for h in HOSTS for name, *_ in HOSTS[h]}
    for title, exprs in panels.items():
        if title.endswith(("per host", "reaching userspace")) or "probe" in title.lower():
            continue
        for expr in exprs:
            result = fleet.prometheus.query(expr, at=fleet.at)
            if "sum by (le)" in expr:  # the heatmap: one distribution over the selection
                assert result, expr
                continue
            keys = {(r["metric"]["instance"], r["metric"]["guest"]) for r in result}
            assert keys == every_guest, (title, expr, keys)
    share = {(r["metric"]["instance"], r["metric"]["guest"]): float(r["value"][1]) for r in
             fleet.prometheus.query(panels["Share of hole reads served in the kernel"][0],
                                    at=fleet.at)}
    for host in HOSTS:
        for name, run in fleet.hosts[host].guests.items():
            truth = 1 - run["hole_read_exits"] / run["guest_hole_reads"]
            assert share[fleet.instance(host), name] == truth

    rules = {rule["name"]: rule for rule in fleet.prometheus.rules()}
    to_vmm = fleet.prometheus.query(rules["KvmholeHoleReadsInUserspace"]["query"], at=fleet.at)
    assert {(r["metric"]["instance"], r["metric"]["guest"]) for r in to_vmm} == {
        (fleet.instance(h), name) for h in HOSTS for name, strategy, _ in HOSTS[h]
        if strategy == "exit"}
    assert set(fleet.by_instance(rules["KvmholeProbeDown"]["query"])) == {BROKEN}
    for rule in rules.values():
        if rule["type"] != "recording":
            continue
        result = fleet.prometheus.query(rule["name"], at=fleet.at)
        keys = [(r["metric"]["instance"], r["metric"].get("guest"), r["metric"].get("served"))
                for r in result]
        assert result and len(keys) == len(set(keys)), (rule["name"], result)


def test_the_fleet_view_survives_federation(fleet):
    """A global Prometheus federating only the recording rules holds the same samples,
    host by host, and the fleet row reads the same from it."""
    wait_for("the global Prometheus to hold every host's probe health", lambda: len(
        fleet.by_instance("instance:kvmhole_probe_up:min", fleet.federated)) == len(fleet.hosts))
    # The global Prometheus adds its own job label (the rules aggregate it away). Read
    # before the source: both keep evaluating and federating meanwhile.
    federated = {tuple(label for label in labels if label[0] != "job"): values
                 for labels, values in samples(fleet.federated, RECORDED).items()}
    source = samples(fleet.prometheus, RECORDED)
    assert federated and set(federated) <= set(source)
    for labels, values in federated.items():
        assert values.items() <= source[labels].items(), labels
    instances = {dict(labels)["instance"] for labels in federated}
    assert instances == {h.address for h in fleet.hosts.values()}
    # The fleet row on the global Prometheus: one series per host, as on the first.
    panels = panel_exprs()
    for title in ("Probe health per host", "Share of hole reads served in the kernel, per host",
                  "Time saved by in-kernel handling, per host",
                  "Hosts by hole reads still reaching userspace"):
        expr = panels[title][0]
        assert set(fleet.by_instance(expr, fleet.federated)) == set(fleet.by_instance(expr))
    assert fleet.by_instance(panels["Probe health per host"][0], fleet.federated)[BROKEN] == 0
