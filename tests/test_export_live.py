"""kvmhole export as a user runs it, scraped over HTTP while real guests come and go."""

import json
import subprocess

from tests.conftest import KVMHOLE
from tests.live import scrape, start_export, start_idle_guest, stop


def test_a_guest_with_no_exit_yet_does_not_take_the_others_down(run_dir):
    idle = start_idle_guest("idle")
    export, base = start_export("--interval", "0.2")
    try:
        guest = subprocess.Popen([*KVMHOLE, "run", "ecam-scan", "--hole", "alias", "--json"],
                                 stdout=subprocess.PIPE, text=True)
        statuses, samples = [], {}
        while guest.poll() is None or not statuses:
            status, samples = scrape(base)
            statuses.append(status)
        run = json.loads(guest.communicate(timeout=60)[0])
        while ("kvmhole_pci_hole_reads_total", (("guest", run["name"]), ("served", "kernel"),
                                                ("vmm", "kvmhole"))) not in samples:
            status, samples = scrape(base)  # the exited guest's final counts come next
            statuses.append(status)
    finally:
        idle.kill()
        err = stop(export)
    assert set(statuses) == {200}, statuses
    assert samples[("kvmhole_pci_hole_reads_total", (("guest", run["name"]), ("served", "kernel"),
                                                    ("vmm", "kvmhole")))] == 8192
    assert samples[("kvmhole_guest_info", (("guest", "idle"), ("strategy", "alias"),
                                           ("vmm", "kvmhole")))] == 1
    assert "Traceback" not in err
