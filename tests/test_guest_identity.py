"""Guest identity as libvirt hosts have it: QEMU's -name parsed as QEMU parses it, its
-uuid, names capped with a mark, QEMU recognised under its other binary names; the
same name and uuid in every view."""

import json
import os
import shutil
import subprocess

import pytest

from kvmhole.cli.trace import _row
from kvmhole.exporter.server import listening
from kvmhole.exporter.store import LatestSnapshot
from kvmhole.guests import multiboot
from kvmhole.probes.discovery import qemu_options
from kvmhole.probes.monitor import Monitor
from kvmhole.text import CUT_MARK, MAX_NAME, guest_name
from kvmhole.tui.detail import title
from tests.conftest import start_guest, wait_registered
from tests.live import sample, scrape
from tests.prometheus_harness import wait_for

UUID = "c7a5fdbd-cdaf-9455-926a-d65c16db1809"


@pytest.mark.parametrize("value, options", [
    ("db", {"guest": "db"}),
    ("guest=db,,primary,debug-threads=on", {"guest": "db,primary", "debug-threads": "on"}),
    ("db,,primary,,,process=qemu-db", {"guest": "db,primary,", "process": "qemu-db"}),
    ("guest=a=b", {"guest": "a=b"}),
    ("guest=,debug-threads=on", {"guest": "", "debug-threads": "on"}),
])
def test_qemu_options_are_split_as_qemu_splits_them(value, options):
    assert qemu_options(value) == options


def test_names_are_capped_with_a_mark_and_escaped():
    assert guest_name("a" * MAX_NAME) == "a" * MAX_NAME
    long = guest_name("b" * 300)
    assert len(long) == MAX_NAME and long.endswith(CUT_MARK)
    assert guest_name("\x1b" * 40) == ("\\x1b" * 16)[:MAX_NAME - 1] + CUT_MARK


def test_a_qemu_started_as_libvirt_starts_it_is_named_alike_in_every_view(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("KVMHOLE_RUN_DIR", str(tmp_path / "run"))
    qemu_kvm = tmp_path / "qemu-kvm"  # RHEL's name for QEMU (/usr/libexec/qemu-kvm)
    os.symlink(shutil.which(multiboot.QEMU), qemu_kvm)
    debugcon = tmp_path / "debugcon.txt"
    command = multiboot.qemu_command(2000, f"file:{debugcon}",
                                     name="guest=db,,primary,debug-threads=on")
    command = [str(qemu_kvm), *command[1:], "-uuid", UUID]
    with Monitor() as monitor:
        qemu = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        while (seen := monitor.poll().guest(qemu.pid)) is None:  # named while it runs
            assert qemu.poll() is None, qemu.communicate()
        run = multiboot.finish(qemu, debugcon)
        final = monitor.poll()
    assert run.hole_reads == 2000
    guest = final.guest(qemu.pid)
    for g in (seen, guest):
        assert (g.name, g.vmm, g.uuid) == ("db,primary", "qemu", UUID)
    row = json.loads(json.dumps(_row(final.ts, guest)))  # trace --json
    assert (row["guest"], row["uuid"]) == ("db,primary", UUID)
    assert f"db,primary  pid {qemu.pid}  qemu/" in title(guest, "emulated").plain  # top
    assert f"uuid {UUID}" in title(guest, "emulated").plain
    store = LatestSnapshot()
    store.update(final)
    with listening("127.0.0.1:0", store) as address:
        _, samples = scrape(f"http://{address}")
    info = sample("kvmhole_guest_info", guest="db,primary", vmm="qemu", strategy="unknown",
                  uuid=UUID)
    assert samples[info] == 1


def test_guests_sharing_a_name_are_told_apart_alike_in_every_view(tmp_path, monkeypatch):
    monkeypatch.setenv("KVMHOLE_RUN_DIR", str(tmp_path / "run"))
    with Monitor() as monitor:
        first = start_guest("mixed", "--name", "twin")
        wait_registered(first)
        second = start_guest("mixed", "--name", "twin")
        wait_registered(second)
        try:
            wait_for("both guests", lambda: all(monitor.poll().guest(g.pid)
                                                for g in (first, second)))
            snapshot = monitor.poll()
        finally:
            for g in (first, second):
                g.terminate()
                g.communicate(timeout=60)
    names = {g.pid: g.name for g in snapshot.guests}
    assert names == {first.pid: "twin", second.pid: f"twin/{second.pid}"}
    store = LatestSnapshot()
    store.update(snapshot)
    with listening("127.0.0.1:0", store) as address:
        _, samples = scrape(f"http://{address}")
    for name in names.values():  # the exporter's labels are the monitor's names
        assert samples[sample("kvmhole_guest_info", guest=name, strategy="alias")] == 1
    assert {json.loads(json.dumps(_row(snapshot.ts, g)))["guest"]
            for g in snapshot.guests} == set(names.values())
