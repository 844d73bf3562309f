"""Helpers for tests that run the monitors as a user does, beside real guests."""

import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import KVMHOLE

# A process that registers as a kvmhole guest and never runs one: a guest with no exit yet.
IDLE_GUEST = """
import sys, time
from kvmhole.vmm.registry import Registration
with Registration({"name": sys.argv[1], "guest": "mixed", "vmm": "kvmhole",
                   "strategy": "alias", "holes": [[0xB0001000, 0xC0000000]]}):
    print("registered", flush=True)
    time.sleep(600)
"""


def start_idle_guest(name: str) -> subprocess.Popen:
    idle = subprocess.Popen([sys.executable, "-c", IDLE_GUEST, name], stdout=subprocess.PIPE,
                            text=True)
    assert idle.stdout.readline() == "registered\n"
    return idle


def start_export(*args: str) -> tuple[subprocess.Popen, str]:
    """`kvmhole export --listen 127.0.0.1:0 ARGS`, once it serves; (process, base URL)."""
    export = subprocess.Popen([*KVMHOLE, "export", "--listen", "127.0.0.1:0", *args],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in export.stderr:
        if match := re.search(r"serving (https?://\S+)/metrics", line):
            return export, match[1]
    raise AssertionError(f"kvmhole export never served: {export.communicate()}")


def scrape(base: str) -> tuple[int, dict[tuple[str, tuple], float]]:
    """(HTTP status, {(sample name, sorted labels): value}) of one scrape of /metrics."""
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=30) as reply:
            text = reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, {}
    return 200, {(s.name, tuple(sorted(s.labels.items()))): s.value
                 for family in text_string_to_metric_families(text) for s in family.samples}


def sample(name: str, **labels: str) -> tuple[str, tuple]:
    """The scrape() key of one sample; per-guest samples default to vmm="kvmhole"."""
    if "guest" in labels:
        labels.setdefault("vmm", "kvmhole")
    return name, tuple(sorted(labels.items()))


# The exporter's count of its polls, as scrape() keys it.
POLLS = sample("kvmhole_exporter_poll_duration_seconds_count")


def scrape_until_final(base: str, run: dict, statuses: list[int]) -> dict:
    """Scrape until the exporter serves an exited guest's final KVM stats (ground truth:
    `run`, its `kvm_stats`); every status goes into `statuses`. Bounded, not timed."""
    final = sample("kvmhole_kvm_stat_exits_total", guest=run["name"], stat="exits")
    for _ in range(600):
        status, samples = scrape(base)
        statuses.append(status)
        if samples.get(final) == run["kvm_stats"]["exits"]:
            return samples
        time.sleep(0.1)
    raise AssertionError(f"the exporter never served {run['name']}'s final counts")


def stop(process: subprocess.Popen) -> str:
    """Stop a monitor as Ctrl-C does; its stderr."""
    process.send_signal(2)
    _, err = process.communicate(timeout=60)
    return err
