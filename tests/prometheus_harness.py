"""A real Prometheus for the tests: Debian's /usr/bin/prometheus in a temporary
directory, scraping exporters every second and evaluating the example rules;
plus the dashboard's and rules' PromQL, and promtool.

Shared by the synthetic dashboard tests (test_dashboards.py), the end-to-end
test against a real `kvmhole export` and real guests (test_dashboards_live.py)
and the fleet of three exporters (test_dashboards_fleet.py).
"""

import importlib.util
import json
import re
import socket
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

from tests.conftest import wait_for

DASHBOARDS = Path(__file__).resolve().parent.parent / "dashboards"
DASHBOARD = DASHBOARDS / "kvmhole.json"
RULES = DASHBOARDS / "kvmhole-rules.yml"

# What Grafana puts in place of the dashboard's variables when every host and guest
# is selected; the windows cover a whole test run at a 1 s scrape interval.
GRAFANA_VARIABLES = {"$instance": ".*", "$guest": ".*", "$__rate_interval": "1m",
                     "$__range": "1m"}


def dashboard_code():
    """dashboards/kvmhole_dashboard.py, the dashboard as code (not a package module)."""
    spec = importlib.util.spec_from_file_location("kvmhole_dashboard",
                                                  DASHBOARDS / "kvmhole_dashboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """/usr/bin/prometheus in a temporary directory, scraping `targets` (one
    exporter per host) every second as job kvmhole and evaluating the example
    rules, or running the scrape jobs given; queried over its HTTP API on loopback."""

    def __init__(self, directory: Path, *targets: str, scrape_configs: list | None = None,
                 rules: bool = True):
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)] if rules else [],
            "scrape_configs": scrape_configs or [
                {"job_name": "kvmhole", "static_configs": [{"targets": list(targets)}]}],
        }
        # JSON is YAML, so the config needs no YAML library.
        (directory / "prometheus.yml").write_text(json.dumps(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = (directory / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            ["/usr/bin/prometheus", f"--config.file={directory / 'prometheus.yml'}",
             f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address={self.url.removeprefix('http://')}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for("prometheus to be ready", self._ready)

    def _ready(self) -> bool:
        assert self.process.poll() is None, "prometheus exited; see prometheus.log"
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as reply:
                return reply.status == 200
        except OSError:
            return False

    def api(self, path: str, **params) -> dict | list:
        query = urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as reply:
            body = json.load(reply)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        """Instant query at now (or at Unix time `at`) -> the result vector."""
        data = self.api("query", query=expr, **({} if at is None else {"time": at}))
        assert data["resultType"] == "vector", (expr, data)
        return data["result"]

    def rules(self) -> list[dict]:
        """The rules Prometheus loaded from the rule file (name, query, type)."""
        return [r for g in self.api("rules")["groups"] for r in g["rules"]]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def series(prometheus: Prometheus, selector: str) -> list[float]:
    """Every sample Prometheus stored for one series over the test."""
    data = prometheus.api("query", query=f"{selector}[15m]")
    assert len(data["result"]) == 1, (selector, data)
    return [float(value) for _, value in data["result"][0]["values"]]


def samples(prometheus: Prometheus, selector: str) -> dict[tuple, dict[float, str]]:
    """Every stored sample of the matching series: labels -> {time: value as Prometheus
    wrote it} (text, so NaN equals NaN)."""
    data = prometheus.api("query", query=f"{selector}[15m]")
    return {tuple(sorted(r["metric"].items())): {float(t): v for t, v in r["values"]}
            for r in data["result"]}


def one_series(prometheus: Prometheus, selector: str) -> dict[float, str]:
    """The samples of the one series `selector` matches ({} before it has any)."""
    found = samples(prometheus, selector)
    assert len(found) <= 1, found
    return next(iter(found.values()), {})


def holds_final(prometheus: Prometheus, run: dict) -> bool:
    """Prometheus has scraped an exited kvmhole guest's final counts: KVM's exit count
    as the guest's own `kvmhole run --json` reported it (the exporter keeps an exited
    guest for minutes, so waiting for its series to end would take that long)."""
    exits = prometheus.query(f'kvmhole_kvm_stat_exits_total{{guest="{run["name"]}",'
                             'stat="exits"}')
    return bool(exits) and float(exits[0]["value"][1]) == run["kvm_stats"]["exits"]


def ended(prometheus: Prometheus, guest: str) -> bool:
    """Prometheus saw the guest, and the exporter has since dropped it (stale)."""
    selector = f'kvmhole_guest_info{{guest="{guest}"}}'
    return bool(prometheus.query(f"last_over_time({selector}[15m])")) \
        and not prometheus.query(selector)


def panel_exprs() -> dict[str, list[str]]:
    """Every panel's PromQL targets by panel title, variables filled in as Grafana would."""
    dashboard = json.loads(DASHBOARD.read_text())
    return {p["title"]: [re.sub(r"\$\w+", lambda m: GRAFANA_VARIABLES[m.group(0)], t["expr"])
                         for t in p["targets"]]
            for p in dashboard["panels"] if p.get("targets")}


def dashboard_exprs() -> list[str]:
    """Every PromQL target in the dashboard, variables filled in as Grafana would."""
    return [expr for exprs in panel_exprs().values() for expr in exprs]


def promtool(*args: str) -> str:
    done = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout
