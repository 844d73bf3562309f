"""The guest registry against what a host throws at it: VMMs killed outright, pids
reused, garbage files, short guests, pid namespaces; monitors name every guest
right and go on."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from kvmhole.probes.monitor import Monitor
from kvmhole.vmm import registry
from tests.conftest import KVMHOLE


def start_mixed(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*KVMHOLE, "run", "mixed", "--hole", "alias", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_registered(run_dir, process: subprocess.Popen) -> dict:
    path = run_dir / f"{process.pid}.json"
    while not path.exists():
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    return json.loads(path.read_text())


def age(path, seconds: float) -> None:
    """Make a registry file look `seconds` old."""
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGQUIT])
def test_a_vmm_stopped_by_a_signal_marks_its_entry_exited(signum, run_dir):
    vmm = start_mixed()
    wait_registered(run_dir, vmm)
    vmm.send_signal(signum)
    vmm.communicate(timeout=60)
    assert vmm.returncode == 128 + signum
    assert "exited" in json.loads((run_dir / f"{vmm.pid}.json").read_text())
    assert registry.entries() == {}


def test_entries_of_killed_vmms_are_cleaned_and_never_name_a_reused_pid(run_dir):
    vmm = start_mixed("--name", "killed")
    entry = wait_registered(run_dir, vmm)
    vmm.kill()
    vmm.communicate(timeout=60)
    # its pid reused: an unrelated process now has a pid with the dead VMM's entry
    other = subprocess.Popen(["sleep", "600"])
    try:
        reused = run_dir / f"{other.pid}.json"
        reused.write_text(json.dumps({**entry, "pid": other.pid}))
        assert registry.entries() == {}  # a dead VMM's entry names no running guest
        with Monitor(pids={other.pid}) as monitor:
            seen = monitor.poll().guest(other.pid)
            assert seen is None or seen.name != "killed"
        for path in (run_dir / f"{vmm.pid}.json", reused):
            assert path.exists()  # kept for a while: a monitor may still have to name it
            age(path, registry.GRACE_S + 1)
        # no monitor running: the next VMM to start cleans up
        run = json.loads(subprocess.run([*KVMHOLE, "run", "--pages", "10", "--json"],
                                        capture_output=True, text=True, check=True).stdout)
        assert list(run_dir.iterdir()) == [run_dir / f"{run['pid']}.json"]
    finally:
        other.kill()
        other.wait()


GARBAGE = {"101.json": '{"pid": "abc"}', "102.json": "[1, 2]", "103.json": "\x00\xff\xfe",
           "104.json": '{"pid": 104, "start": 1, "holes": "all"}', "name.json": "{}",
           "105.json": " " * (1 << 20)}


def drop_garbage(run_dir, suffix: str = "") -> list[str]:
    """Files no VMM wrote, under entry names; the names of those that are not entries."""
    run_dir.mkdir(exist_ok=True)
    for name, text in GARBAGE.items():
        tmp = run_dir / f".{name}{suffix}.tmp"
        tmp.write_bytes(text.encode("latin-1"))
        tmp.rename(run_dir / f"{suffix}{name}")
    fifo, link = run_dir / f".fifo{suffix}", run_dir / f".link{suffix}"
    os.mkfifo(fifo)
    fifo.rename(run_dir / f"{suffix}106.json")  # a reader that opens it blocks
    link.symlink_to("/dev/zero")
    link.rename(run_dir / f"{suffix}107.json")  # a reader that follows it never ends
    return [f"{suffix}{name}" for name in (*GARBAGE, "106.json", "107.json")]


def test_garbage_in_the_registry_is_warned_about_and_monitors_go_on(run_dir):
    from tests.test_trace import start_trace

    bad = drop_garbage(run_dir)
    trace = start_trace("--json", "--interval", "0.3")
    later = drop_garbage(run_dir, suffix="09")  # the watcher reads these; 09: no real pid
    run = json.loads(subprocess.run([*KVMHOLE, "run", "ecam-scan", "--hole", "alias", "--json"],
                                    capture_output=True, text=True, check=True).stdout)
    top = subprocess.run([*KVMHOLE, "top", "--interval", "0.2"], capture_output=True,
                         text=True, timeout=300)
    seen = []  # trace's stderr: wait until the watcher has met the last file
    while not any(f"ignoring {run_dir / later[-1]}" in line for line in seen):
        seen.append(trace.stderr.readline())
        assert seen[-1], f"trace stopped: {seen}"
    trace.send_signal(signal.SIGINT)
    out, err = trace.communicate(timeout=60)
    assert trace.returncode == 0 and "Traceback" not in "".join(seen) + err, err
    rows = [json.loads(line) for line in out.splitlines()]
    final = [r for r in rows if r["pid"] == run["pid"]][-1]
    assert (final["guest"], final["hole_reads_in_kernel"], final["alive"]) == (
        run["name"], 8192, False)
    assert top.returncode == 0 and "Traceback" not in top.stderr, top.stderr
    for name in bad + later:
        assert f"ignoring {run_dir / name}" in top.stderr


def test_short_guests_under_load_are_all_named_with_their_kvm_stats(run_dir):
    """hole-rw guests last milliseconds: most have exited when the monitor first polls
    them; each must still carry its name, strategy and KVM's stats."""
    with Monitor() as monitor:
        runs, reports = [], {}
        for batch in range(8):
            guests = [subprocess.Popen(
                [*KVMHOLE, "run", "hole-rw", "--hole", hole, "--name", f"short-{batch}-{i}",
                 "--json"], stdout=subprocess.PIPE, text=True)
                for i, hole in enumerate(("alias", "exit", "dense", "alias"))]
            while any(g.poll() is None for g in guests):
                reports.update((g.pid, g) for g in monitor.poll().guests)
            runs += [json.loads(g.communicate()[0]) for g in guests]
        reports.update((g.pid, g) for g in monitor.poll().guests)
    for run in runs:
        guest = reports[run["pid"]]
        assert (guest.name, guest.strategy) == (run["name"], run["hole"])
        assert guest.kvm_stats is not None, run["name"]
        for stat in ("exits", "mmio_exits"):
            assert guest.kvm_stats[stat] == run["kvm_stats"][stat], (run["name"], stat)
        assert guest.hole_write_exits == 5


def test_a_stats_fd_number_reused_by_something_else_is_not_read_as_stats(monkeypatch):
    """pidfd_getfd copies whatever the VMM holds at that number by then."""
    from kvmhole.probes import kvmstats

    holder = subprocess.Popen([sys.executable, "-c", "import os, sys, time\n"
                               "fd = os.open('/dev/urandom', os.O_RDONLY)\n"
                               "print(fd, flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        fd = int(holder.stdout.readline())
        monkeypatch.setattr(kvmstats, "_vcpu_stats_fds", lambda pid: [fd])
        assert kvmstats.attach(holder.pid) is None
    finally:
        holder.kill()
        holder.wait()


def test_a_vmm_in_a_pid_namespace_is_named_by_its_host_pid(run_dir):
    with Monitor() as monitor:
        done = subprocess.run(["unshare", "--pid", "--fork", *KVMHOLE, "run", "ecam-scan",
                               "--hole", "exit", "--pages", "100", "--name", "in-ns", "--json"],
                              capture_output=True, text=True, check=True)
        run = json.loads(done.stdout)
        snapshot = monitor.poll()
    assert run["pid"] != 1  # the host's pid, not the namespace's
    assert snapshot.guest(1) is None
    guest = snapshot.guest(run["pid"])
    assert (guest.name, guest.hole_read_exits) == ("in-ns", 100)
