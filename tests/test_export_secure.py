"""A real `kvmhole export` as an operator runs it on a hostile host: TLS and basic auth
from a web configuration file, scraped by a real Prometheus; a registry holding a
file that crashed every monitor (nested JSON) at start and at SIGHUP; a guest whose
name is a terminal escape; `run --json` stopped by a signal."""

import json
import re
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from kvmhole.text import printable
from tests.conftest import KVMHOLE, start_guest, wait_registered
from tests.pki import PASSWORD, make_pki, web_config
from tests.prometheus_harness import Prometheus, wait_for

KEPT = 1 << 39 | 1 << 19  # CAP_BPF, CAP_SYS_PTRACE
NESTED = "[" * 30000 + "]" * 30000  # 60 KB: under the size limit, RecursionError in json
HOSTILE = "x\x1b]0;owned\x07\x1b[31mRED"


def test_prometheus_scrapes_over_tls_with_basic_auth_through_hostile_files(run_dir, tmp_path):
    pki = make_pki(tmp_path)
    run_dir.mkdir()
    (run_dir / "999999.json").write_text(NESTED)
    log = tmp_path / "export.err"
    export = subprocess.Popen([*KVMHOLE, "export", "--listen", "127.0.0.1:0", "--interval",
                               "0.5", "--web.config.file", str(web_config(pki))],
                              stdout=subprocess.DEVNULL, stderr=log.open("w"))
    prometheus = None
    try:
        def serving() -> str | None:
            assert export.poll() is None, log.read_text()
            match = re.search(r"serving https://(\S+)/metrics", log.read_text())
            return match and match[1]

        address = wait_for("kvmhole export to serve", serving, timeout=240)
        status = Path(f"/proc/{export.pid}/status").read_text()
        for field in ("CapBnd", "CapPrm", "CapEff"):  # attached: all but two dropped
            assert int(re.search(rf"{field}:\s+(\w+)", status)[1], 16) == KEPT, field
        run = json.loads(subprocess.run([*KVMHOLE, "run", "ecam-scan", "--hole", "exit",
                                         "--name", HOSTILE, "--json"], capture_output=True,
                                        text=True, check=True).stdout)
        (run_dir / "999998.json").write_text(NESTED)
        export.send_signal(signal.SIGHUP)  # reads the registry again
        wait_for("the reload", lambda: log.read_text().count("JSON nested too deeply") == 2)

        target = {"static_configs": [{"targets": [address]}]}
        tls = {"scheme": "https", "tls_config": {"ca_file": str(pki / "ca.crt")}}
        prometheus = Prometheus(tmp_path / "prometheus", rules=False, scrape_configs=[
            {"job_name": "secure", **target, **tls,
             "basic_auth": {"username": "prometheus", "password": PASSWORD}},
            {"job_name": "wrong-password", **target, **tls,
             "basic_auth": {"username": "prometheus", "password": "guess"}},
            {"job_name": "no-auth", **target, **tls},
            {"job_name": "plain", **target}])

        def guest_reads() -> float | None:
            found = prometheus.query('sum by (guest) (kvmhole_pci_hole_reads_total'
                                     '{job="secure"})')
            return found and float(found[0]["value"][1]) == run["guest_hole_reads"] and found

        found = wait_for("Prometheus to store the guest's reads", guest_reads)
        # a guest that started after the drop: its KVM stats were still copied
        wait_for("the guest's KVM stats", lambda: prometheus.query(
            'kvmhole_kvm_stat_exits_total{job="secure",stat="exits"} == '
            f'{run["kvm_stats"]["exits"]}'))
        assert found[0]["metric"]["guest"] == printable(HOSTILE)  # escaped, whole
        for job, up in (("secure", 1), ("wrong-password", 0), ("no-auth", 0), ("plain", 0)):
            wait_for(f"up of {job}", lambda job=job, up=up: prometheus.query(
                f'up{{job="{job}"}} == {up}'))
        build = prometheus.query('kvmhole_build_info{job="secure"}')
        assert build and build[0]["metric"]["version"] and build[0]["value"][1] == "1"
        assert float(prometheus.query('process_resident_memory_bytes{job="secure"}')[0]
                     ["value"][1]) > 0
        assert export.poll() is None
    finally:
        if prometheus is not None:
            prometheus.close()
        export.send_signal(signal.SIGINT)
        export.wait(timeout=60)
    err = log.read_text()
    assert export.returncode == 0 and "Traceback" not in err, err
    assert "\x1b" not in err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_json_stopped_by_a_signal_prints_the_counts_so_far(signum, run_dir):
    vmm = start_guest("mixed", "--hole", "exit")
    wait_registered(vmm)
    process = psutil.Process(vmm.pid)  # has run its guest a while: hole reads counted
    wait_for("the guest to run", lambda: sum(process.cpu_times()[:2]) > 0.5)
    vmm.send_signal(signum)
    out, err = vmm.communicate(timeout=60)
    assert vmm.returncode == 128 + signum, err
    result = json.loads(out)  # one JSON object
    assert (result["status"], result["error"]) == ("stopped",
                                                   f"stopped by {signal.Signals(signum).name}")
    # the counts so far, as the VMM's own KVM stats saw them
    assert result["guest_hole_reads"] > 0
    assert result["kvm_stats"]["mmio_exits"] >= result["hole_read_exits"] > 0
    assert err.strip() == f"kvmhole: error: stopped by {signal.Signals(signum).name}"
