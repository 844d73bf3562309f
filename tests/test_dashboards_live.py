"""End to end: a real Prometheus scrapes a real `kvmhole export` (real BPF probes)
while real guests run, started with the CLI as a user would.

Two `mixed` guests (alias: hole reads stay in the kernel; exit: every hole read
goes to the VMM) run for the whole module, so every rate() has samples. Two
ecam-scan guests (alias and exit) live for a fraction of a scrape interval: the
exporter serves each once more after it exits, so Prometheus still gets its
final count, which must equal the guest's own.
"""

import json
import os
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from kvmhole.probes.bpf import CONSTANTS, GROWING_MAPS
from tests.conftest import KVMHOLE, kvmhole
from tests.prometheus_harness import (
    Prometheus,
    dashboard_exprs,
    holds_final,
    panel_exprs,
    series,
    wait_for,
)


class Live:
    """What the fixture started: the exporter's address, Prometheus, the guests."""

    def __init__(self, address: str, prometheus: Prometheus, mixed: dict[str, str],
                 scans: dict[str, dict], export: subprocess.Popen, env: dict):
        self.address, self.prometheus, self.export, self.env = address, prometheus, export, env
        self.mixed = mixed  # strategy -> guest name
        self.scans = scans  # strategy -> `kvmhole run --json` result


def start_export(env: dict, log_path) -> tuple[subprocess.Popen, str]:
    """`kvmhole export` on a free port; returns it once it says where it serves."""
    log = log_path.open("w")
    export = subprocess.Popen([*KVMHOLE, "export", "--listen", "127.0.0.1:0",
                               "--interval", "0.2"], stdout=subprocess.DEVNULL,
                              stderr=log, env=env)
    log.close()

    def serving() -> str | None:
        text = log_path.read_text()
        assert export.poll() is None, f"kvmhole export exited {export.returncode}: {text}"
        match = re.search(r"serving http://(\S+)/metrics", text)
        return match and match[1]

    return export, wait_for("kvmhole export to serve", serving, timeout=120)


def scraped_at_least(prometheus: Prometheus, guest: str, samples: int) -> bool:
    expr = f'count_over_time(kvmhole_guest_info{{guest="{guest}"}}[1m]) >= {samples}'
    return bool(prometheus.query(expr))


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live")
    # A private registry: the exporter names exactly the guests this module starts.
    env = {**os.environ, "KVMHOLE_RUN_DIR": str(tmp / "run")}
    export, address = start_export(env, tmp / "export.log")
    started: list[subprocess.Popen] = []
    prometheus = None
    try:
        prometheus = Prometheus(tmp / "prometheus", address)
        mixed = {}
        for strategy in ("alias", "exit"):
            guest = subprocess.Popen([*KVMHOLE, "run", "mixed", "--hole", strategy],
                                     stdout=subprocess.DEVNULL, env=env)  # runs until stopped
            started.append(guest)
            mixed[strategy] = f"mixed-{guest.pid}"
        # Three scrapes of both long guests: every rate() window has two samples or more.
        for name in mixed.values():
            wait_for(f"three scrapes of {name}",
                     lambda name=name: scraped_at_least(prometheus, name, 3))
        scans = {}
        for strategy in ("alias", "exit"):
            run = json.loads(kvmhole("run", "ecam-scan", "--hole", strategy, "--json",
                                     env=env).stdout)
            scans[strategy] = run
        for run in scans.values():
            wait_for(f"{run['name']}'s final counts to reach Prometheus",
                     lambda run=run: holds_final(prometheus, run))
        yield Live(address, prometheus, mixed, scans, export, env)
    finally:
        for guest in started:
            guest.terminate()
        for guest in started:
            guest.wait(timeout=60)
        if prometheus is not None:
            prometheus.close()
        export.send_signal(signal.SIGTERM)
        try:
            code = export.wait(timeout=60)
        except subprocess.TimeoutExpired:
            export.kill()
            raise
    assert code == 0, f"kvmhole export exited {code} on SIGTERM: {(tmp / 'export.log').read_text()}"
    assert "Traceback" not in (tmp / "export.log").read_text()


def without_threshold(expr: str) -> str:
    """An alert's expression without its trailing comparison ('... > 0' -> '...')."""
    match = re.fullmatch(r"(?s)(.*?\S)\s*(?:==|!=|>=|<=|>|<)\s*[0-9.]+\s*", expr)
    assert match, f"alert expression without a threshold: {expr}"
    return match[1]


def test_every_dashboard_and_rule_expression_returns_data(live):
    prometheus = live.prometheus
    guests = prometheus.api("label/guest/values", **{"match[]": "kvmhole_guest_info"})
    assert set(live.mixed.values()) <= set(guests)  # the $guest picker
    assert {run["name"] for run in live.scans.values()} <= set(guests)

    rules = prometheus.rules()
    assert len(rules) == 11, "Prometheus did not load every rule in the file"
    for rule in rules:
        if rule["type"] == "recording":
            assert prometheus.query(rule["query"]), f"no data for {rule['query']}"
            wait_for(f"recorded series {rule['name']}",
                     lambda rule=rule: prometheus.query(rule["name"]))
        else:
            # A healthy probe must not fire the probe alerts: what they compare has
            # data, and the comparison holds only where it should.
            assert prometheus.query(without_threshold(rule["query"])), \
                f"no data for {rule['name']}: {rule['query']}"

    # The mixed exit guest sends every hole read to the VMM: its alert condition
    # holds (it fires after its `for:`); the alias guest's reads stay in the kernel.
    for expr in dashboard_exprs():  # after the rules: the fleet row reads recorded series
        assert prometheus.query(expr), f"no data for {expr}"
    alerting = {r["metric"]["guest"] for r in prometheus.query(
        next(r["query"] for r in rules if r["name"] == "KvmholeHoleReadsInUserspace"))}
    assert live.mixed["exit"] in alerting and live.mixed["alias"] not in alerting
    assert [float(r["value"][1]) for r in prometheus.query("kvmhole_probe_up")] == [1.0]
    assert prometheus.query('kvmhole_probe_info{path="emulated"}')  # PLATFORM.md
    share_expr = panel_exprs()["Share of hole reads served in the kernel"][0]
    share = {r["metric"]["guest"]: float(r["value"][1]) for r in prometheus.query(share_expr)}
    assert share[live.mixed["alias"]] == 1.0 and share[live.mixed["exit"]] == 0.0


@pytest.mark.parametrize(("strategy", "served"), [("alias", "kernel"), ("exit", "userspace")])
def test_hole_read_counter_grows_by_the_guests_own_count(live, strategy, served):
    run = live.scans[strategy]
    assert run["status"] == "ok" and run["guest_hole_reads"] == 8192
    other = "userspace" if served == "kernel" else "kernel"
    counter = f'kvmhole_pci_hole_reads_total{{guest="{run["name"]}",mechanism="ecam",served="%s"}}'
    samples = series(live.prometheus, counter % served)
    assert samples == sorted(samples), samples  # a counter: never goes down
    # The series is born with the guest (the exporter never saw this pid before it
    # entered KVM_RUN, and a guest starts with no reads), so over the guest's run the
    # counter grew from 0 to its last sample. Prometheus' increase() cannot see the
    # growth before a series' first sample, hence the explicit zero.
    assert samples[-1] - 0 == run["guest_hole_reads"]
    assert set(series(live.prometheus, counter % other)) == {0.0}
    if strategy == "exit":  # the VMM's own count of hole-read exits agrees too
        assert samples[-1] == run["hole_read_exits"]
    # KVM's mmio_exits, read by the exporter's monitor from the VMM's stats fds
    kvm = series(live.prometheus,
                 f'kvmhole_kvm_stat_exits_total{{guest="{run["name"]}",stat="mmio_exits"}}')
    assert kvm[-1] == run["kvm_stats"]["mmio_exits"]


def test_live_metrics_pass_promtool(live):
    with urllib.request.urlopen(f"http://{live.address}/metrics", timeout=10) as reply:
        text = reply.read()
    assert b"kvmhole_pci_hole_reads_total{" in text
    done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                          timeout=60)
    assert done.returncode == 0, (done.stdout + done.stderr).decode()


def test_self_metrics_and_bpf_map_fill(live):
    """The exporter's own health, and each map's size as bpf/kvmhole.bpf.c declares it
    (a constant kvmhole/probes/bpf.py passes to the compile)."""
    source = (Path(__file__).resolve().parent.parent / "bpf" / "kvmhole.bpf.c").read_text()
    declared = {name: float(CONSTANTS[size]) for name, size in
                re.findall(r"BPF_HASH\((\w+),[^;]*?(\w+)\);", source) if name in GROWING_MAPS}
    prometheus = live.prometheus
    size = {r["metric"]["map"]: float(r["value"][1])
            for r in prometheus.query("kvmhole_probe_map_max_entries")}
    assert size == declared
    used = {r["metric"]["map"]: float(r["value"][1])
            for r in prometheus.query("kvmhole_probe_map_entries")}
    assert used["counts"] >= len(live.mixed) and used["holes"] >= len(live.mixed)
    assert float(prometheus.query("kvmhole_exporter_guests")[0]["value"][1]) >= len(live.mixed)
    for summary in ("poll", "scrape"):
        assert prometheus.query(f"rate(kvmhole_exporter_{summary}_duration_seconds_count[1m]) > 0")
        assert prometheus.query(f"kvmhole_exporter_{summary}_duration_seconds_sum > 0")


def inotify_inodes(pid: int) -> set[int]:
    """Inodes the process watches with inotify (from /proc/PID/fdinfo)."""
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        if os.readlink(fd) == "anon_inode:inotify":
            text = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
            found |= {int(ino, 16) for ino in re.findall(r"\bino:([0-9a-f]+)", text)}
    return found


def test_sighup_reloads_the_guest_list_while_prometheus_scrapes(live):
    """The registry directory is replaced (as a cleanup of /run might): only SIGHUP
    makes the exporter watch the new one. Probes, counts and the port stay: every
    scrape succeeds and no counter restarts."""
    run = Path(live.env["KVMHOLE_RUN_DIR"])
    old = run.rename(run.with_name("run-old"))
    # A reload that cannot watch the registry (a file where its directory should be)
    # says so and changes nothing.
    run.write_text("")
    live.export.send_signal(signal.SIGHUP)
    log = run.with_name("export.log")
    wait_for("the failed reload's warning",
             lambda: "reloading the guest list failed" in log.read_text())
    run.unlink()
    run.mkdir()
    for entry in old.glob("*.json"):  # the running guests' entries move to the new one
        entry.rename(run / entry.name)
    assert inotify_inodes(live.export.pid) == {old.stat().st_ino}
    scraped = len(series(live.prometheus, "kvmhole_probe_up"))
    for _ in range(5):
        live.export.send_signal(signal.SIGHUP)
    wait_for("the exporter to watch the new directory",
             lambda: inotify_inodes(live.export.pid) == {run.stat().st_ino})
    wait_for("scrapes after the reload",
             lambda: len(series(live.prometheus, "kvmhole_probe_up")) >= scraped + 3)

    after = json.loads(kvmhole("run", "ecam-scan", "--hole", "alias", "--name", "after-reload",
                               "--json", env=live.env).stdout)
    wait_for("after-reload's final counts to reach Prometheus",
             lambda: holds_final(live.prometheus, after))
    counted = series(live.prometheus,
                     'kvmhole_pci_hole_reads_total{guest="after-reload",mechanism="ecam",served="kernel"}')
    assert counted[-1] == after["guest_hole_reads"]
    prometheus = live.prometheus
    assert [float(r["value"][1]) for r in prometheus.query("min_over_time(up[15m])")] == [1.0]
    ours = "|".join([*live.mixed.values(), "after-reload"])  # other users' guests may come and go
    assert {float(r["value"][1]) for r in prometheus.query(
        f'resets(kvmhole_pci_hole_reads_total{{guest=~"{ours}"}}[15m])')} == {0.0}
    assert live.export.poll() is None
