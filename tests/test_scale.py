"""A production-sized host: 500 idle guests and two busy ones under one monitor. The
busy guests are counted exactly against their own counts and KVM's stats, and every
idle guest is listed under its registry name."""

import json
import os
import subprocess

from kvmhole.bench.fleet import Fleet
from kvmhole.probes.monitor import Monitor
from tests.conftest import KVMHOLE, wait_for

IDLE = 500


def test_500_idle_guests_and_two_busy_ones(run_dir):
    with Monitor() as monitor, Fleet(IDLE, env=dict(os.environ)) as fleet:
        wait_for("every idle guest to reach the monitor",
                 lambda: set(fleet.pids) <= {g.pid for g in monitor.poll().guests if g.alive},
                 timeout=300, every=1)
        busy = [subprocess.Popen([*KVMHOLE, "run", "ecam-scan", "--hole", hole, "--pages",
                                  "4096", "--json"], stdout=subprocess.PIPE, text=True)
                for hole in ("exit", "alias")]
        runs = [json.loads(p.communicate(timeout=300)[0]) for p in busy]
        snapshot = monitor.poll()
    for run in runs:
        guest = snapshot.guest(run["pid"])
        assert guest is not None, f"busy guest {run['pid']} was not reported"
        served = {"exit": guest.hole_read_exits, "alias": guest.hole_reads_in_kernel}
        assert served[run["hole"]] == run["guest_hole_reads"] == 4096
        assert guest.userspace_exits.get("MMIO", 0) == run["kvm_stats"]["mmio_exits"]
    listed = {g.pid: g.name for g in snapshot.guests}
    assert {pid: listed.get(pid) for pid in fleet.pids} == fleet.pids
    assert snapshot.probe.lost_events == 0
