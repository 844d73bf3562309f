"""kvmhole export as a user runs it, scraped over HTTP while real guests come and go."""

import json
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor

import psutil

from tests.conftest import KVMHOLE
from tests.live import sample, scrape, scrape_until_final, start_export, start_idle_guest, stop


def test_a_guest_with_no_exit_yet_does_not_take_the_others_down(run_dir):
    idle = start_idle_guest("idle")
    export, base = start_export("--interval", "0.2")
    try:
        guest = subprocess.Popen([*KVMHOLE, "run", "ecam-scan", "--hole", "alias", "--json"],
                                 stdout=subprocess.PIPE, text=True)
        statuses = []
        while guest.poll() is None or not statuses:
            statuses.append(scrape(base)[0])
        run = json.loads(guest.communicate(timeout=60)[0])
        samples = scrape_until_final(base, run, statuses)
    finally:
        idle.kill()
        err = stop(export)
    assert set(statuses) == {200}, statuses
    reads = "kvmhole_pci_hole_reads_total"
    assert samples[sample(reads, guest=run["name"], mechanism="ecam", served="kernel")] == 8192
    assert samples[sample("kvmhole_guest_info", guest="idle", strategy="alias")] == 1
    assert samples[sample(reads, guest="idle", mechanism="ecam", served="kernel")] == 0
    assert "Traceback" not in err


def test_many_scrapers_and_idle_connections_cost_no_thread_each(run_dir):
    export, base = start_export("--interval", "0.5")
    port = base.rsplit(":", 1)[1]
    idle = []
    try:
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True,
                                   text=True, check=True).stdout.split()
        assert int(listening[2]) >= 128, listening  # the listen backlog (Send-Q)
        exporter = psutil.Process(export.pid)
        assert scrape(base)[0] == 200
        threads = exporter.num_threads()
        for _ in range(500):  # connected, and never a byte sent
            idle.append(socket.create_connection(("127.0.0.1", int(port))))
        assert scrape(base)[0] == 200  # answered while they wait
        assert exporter.num_threads() <= threads + 4
        with ThreadPoolExecutor(16) as pool:  # concurrent scrapers all get their page
            assert set(pool.map(lambda _: scrape(base)[0], range(64))) == {200}
    finally:
        for conn in idle:
            conn.close()
        err = stop(export)
    assert "Traceback" not in err
