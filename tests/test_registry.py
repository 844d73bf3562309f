"""The guest registry against what a host throws at it: VMMs killed outright, pids
reused, garbage files, short guests, pid namespaces; monitors name every guest
right and go on."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter

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


NOBODY = 65534
# file name -> (contents, why it is not an entry: the kind of fault warnings name)
GARBAGE = {
    "101.json": ('{"pid": "abc"}', "pid is not an integer in [1, 4194304]"),
    "102.json": ("[1, 2]", "not a JSON object"),
    "103.json": ("\x00\xff\xfe", "not JSON"),
    "104.json": ('{"pid": PID, "start": 1, "holes": "all"}',  # PID: the file's own
                 "holes is not a list of at most 64 ranges"),
    "name.json": ("{}", "not named PID.json"),
    "\u00b23.json": ("{}", "not named PID.json"),  # a digit to isdigit(), not to int()
    "1\x1b]0;owned\x07.json": ("{}", "not named PID.json"),  # a name that is a terminal escape
    "105.json": (" " * (1 << 20), "larger than 65536 bytes"),
    "108.json": ("[" * 30000 + "]" * 30000, "JSON nested too deeply"),  # RecursionError
}
OTHER_FAULTS = {"106.json": "not a regular file",  # a FIFO: a reader that opens it blocks
                # a symbolic link to /dev/zero: a reader that follows it never ends
                "107.json": "cannot open it: Too many levels of symbolic links",
                "<a root process's pid>.json": "written by a user who is neither root nor "
                                               "the owner of the VMM process it names"}


def drop_garbage(run_dir, suffix: str = "", forged_pid: int | None = None) -> None:
    """Files no VMM wrote, under entry names."""
    run_dir.mkdir(exist_ok=True)
    for name, (text, _) in GARBAGE.items():
        tmp = run_dir / f".{len(name)}{suffix}.tmp"
        tmp.write_bytes(text.replace("PID", str(int(f"{suffix}104"))).encode("latin-1"))
        tmp.rename(run_dir / f"{suffix}{name}")
    fifo, link = run_dir / f".fifo{suffix}", run_dir / f".link{suffix}"
    os.mkfifo(fifo)
    fifo.rename(run_dir / f"{suffix}106.json")
    link.symlink_to("/dev/zero")
    link.rename(run_dir / f"{suffix}107.json")
    # a valid entry naming a root process (this one), written by another user
    forged, pid = run_dir / f".forged{suffix}", forged_pid or os.getpid()
    forged.write_text(json.dumps({"pid": pid, "start": registry.process_start(pid),
                                  "name": "forged"}))
    os.chown(forged, NOBODY, NOBODY)
    forged.rename(run_dir / f"{pid}.json")


def expected_faults(times: int) -> Counter:
    """Each kind of fault, `times` per drop_garbage."""
    kinds = Counter(why for _, why in GARBAGE.values()) + Counter(OTHER_FAULTS.values())
    return Counter({why: n * times for why, n in kinds.items()})


SUMMARY = re.compile(r"^kvmhole: warning: ignoring (\d+) files? in the guest registry "
                     r"(\S+): (.+) \((.+?)(, \.\.\.)?\)$", re.M)


def faults(stderr: str) -> Counter:
    """The registry faults that summary warnings count, by kind."""
    found = Counter()
    for count, _, why, _, _ in SUMMARY.findall(stderr):
        found[why] += int(count)
    return found


def test_garbage_in_the_registry_is_warned_about_and_monitors_go_on(run_dir, tmp_path):
    """trace reads the garbage at start and as it is written, `run`'s cleanup reads it
    once it is old, top at start: none stops, and each says one line per kind."""
    from tests.prometheus_harness import wait_for

    drop_garbage(run_dir)
    log = tmp_path / "trace.err"  # a file: the warnings come before "probes attached"
    trace = subprocess.Popen([*KVMHOLE, "trace", "--json", "--interval", "0.3"],
                             stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
    wait_for("trace to attach", lambda: trace.poll() is not None
             or "probes attached" in log.read_text(), timeout=240)
    drop_garbage(run_dir, suffix="09", forged_pid=1)  # the watcher reads these
    for path in run_dir.iterdir():  # old enough for the cleanup of `run` to read them
        then = time.time() - registry.GRACE_S - 5
        os.utime(path, (then, then), follow_symlinks=False)
    run = json.loads(subprocess.run([*KVMHOLE, "run", "ecam-scan", "--hole", "alias", "--json"],
                                    capture_output=True, text=True, check=True).stdout)
    top = subprocess.run([*KVMHOLE, "top", "--interval", "0.2"], capture_output=True,
                         text=True, timeout=300)
    # the watcher's files are summed up at the polls after it met them
    wait_for("trace to warn about every file", lambda: trace.poll() is not None
             or faults(log.read_text()) == expected_faults(2), timeout=60)
    trace.send_signal(signal.SIGINT)
    out, _ = trace.communicate(timeout=60)
    err = log.read_text()
    assert trace.returncode == 0 and "Traceback" not in err, err
    assert faults(err) == expected_faults(2), err
    rows = [json.loads(line) for line in out.splitlines()]
    final = [r for r in rows if r["pid"] == run["pid"]][-1]
    assert (final["guest"], final["hole_reads_in_kernel"], final["alive"]) == (
        run["name"], 8192, False)
    assert top.returncode == 0 and "Traceback" not in top.stderr, top.stderr
    # one line per kind of fault, with the count, not one per file
    assert faults(top.stderr) == expected_faults(2), top.stderr
    assert len(SUMMARY.findall(top.stderr)) == len(expected_faults(1)), top.stderr
    assert "\x1b" not in top.stderr + err  # the escape in a file name is escaped


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
