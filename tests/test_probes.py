"""The probes on real KVM: the monitor's counts against the guest's own count and
KVM's binary stats, for each hole strategy, several guests at once and QEMU."""

import json
import signal
import subprocess
import time

import pytest

from kvmhole.guests import multiboot
from kvmhole.probes.monitor import Monitor
from tests.conftest import (
    KVMHOLE,
    assert_one_line_error,
    kvmhole,
    result,
    start_guest,
    wait_registered,
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A private registry: the monitor sees only the guests these tests start."""
    path = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KVMHOLE_RUN_DIR", str(path))
        yield path


@pytest.fixture(scope="module")
def monitor(registry):
    with Monitor() as m:
        yield m




def assert_counted(guest, run: dict, named: bool = True) -> None:
    """The monitor's view of one finished kvmhole guest equals the ground truth."""
    assert guest is not None, f"guest {run['pid']} was not reported"
    if named:
        assert (guest.name, guest.vmm, guest.strategy) == (run["name"], "kvmhole", run["hole"])
    reads = run["guest_hole_reads"]
    if run["hole"] == "exit":
        assert (guest.hole_reads_in_kernel, guest.hole_read_exits) == (0, reads)
    else:
        assert (guest.hole_reads_in_kernel, guest.hole_read_exits) == (reads, 0)
    assert guest.hole_write_exits == 0
    stats = run["kvm_stats"]
    assert guest.userspace_exits.get("MMIO", 0) == stats["mmio_exits"]
    if named:  # the monitor read KVM's stats itself, from the registry's first sight on
        assert guest.kvm_stats is not None, "the monitor did not reach the VMM's stats fds"
        assert guest.kvm_stats["mmio_exits"] == stats["mmio_exits"]
        assert guest.kvm_stats["exits"] == stats["exits"]
    # KVM's io_exits stays 0 for emulated port I/O here: the VMM's own count instead
    assert guest.userspace_exits.get("IO", 0) == run["userspace_exits"]["IO"]
    # one round trip per exit but the last (the guest's "done" never re-enters)
    assert guest.roundtrip.count == sum(guest.userspace_exits.values()) - 1
    assert not guest.alive


@pytest.mark.parametrize("hole", ["alias", "dense", "exit"])
def test_counts_equal_the_guests_own_count(monitor, hole):
    monitor.poll()
    run = result(start_guest("ecam-scan", "--hole", hole))
    assert run["guest_hole_reads"] == 8192
    snapshot = monitor.poll()
    assert_counted(snapshot.guest(run["pid"]), run)
    # an exited guest is reported once, then dropped: never counted twice
    assert monitor.poll().guest(run["pid"]) is None


def test_two_guests_with_different_strategies_are_kept_apart(monitor):
    monitor.poll()
    alias = start_guest("ecam-scan", "--hole", "alias", "--pages", "3000")
    exit_ = start_guest("ecam-scan", "--hole", "exit", "--pages", "5000")
    runs = [result(alias), result(exit_)]
    snapshot = monitor.poll()
    for run in runs:
        assert_counted(snapshot.guest(run["pid"]), run)


def test_sixteen_guests_at_once(monitor):
    monitor.poll()
    processes = [start_guest("ecam-scan", "--hole", ("alias", "exit")[i % 2],
                             "--pages", str(100 + i)) for i in range(16)]
    snapshots = []
    while any(p.poll() is None for p in processes):  # polls while guests come and go
        snapshots.append(monitor.poll())
        time.sleep(0.2)
    runs = [result(p) for p in processes]
    snapshots.append(monitor.poll())
    for run in runs:
        reports = [g for s in snapshots for g in s.guests if g.pid == run["pid"]]
        assert [g.alive for g in reports].count(False) == 1  # reported exited exactly once
        # a guest of a few ms may be gone before the monitor first polls it: its
        # exited registry entry still names it and holds its final KVM stats
        assert_counted(reports[-1], run)
    # each was reported exited once, then forgotten (other VMMs on the host may show)
    assert not {g.pid for g in monitor.poll().guests} & {run["pid"] for run in runs}


def test_the_empty_twin_traces_what_the_probes_trace(monitor):
    """`kvmhole bench` measures the floor under the probes' overhead with it."""
    probes = monitor.program.bpf
    with monitor.program.empty_twin() as twin:
        assert set(twin.tracepoint_fds) == set(probes.tracepoint_fds)
        assert set(twin.raw_tracepoint_fds) == set(probes.raw_tracepoint_fds)
        assert twin.tracepoint_fds or twin.raw_tracepoint_fds


def test_no_syscall_is_traced(monitor):
    """An enabled syscall tracepoint sends every syscall on the host down the kernel's
    slow path; the probes see KVM_RUN through KVM's own tracepoints instead."""
    attached = [*monitor.program.bpf.tracepoint_fds, *monitor.program.bpf.raw_tracepoint_fds]
    assert b"kvm:kvm_fpu" in attached
    assert not [tp for tp in attached if b"sys_" in tp or b"syscalls" in tp]


def test_a_guest_that_exits_during_a_poll_is_reported_with_its_last_counts(monitor,
                                                                          monkeypatch):
    """The maps are read while the guest runs, and it exits before the poll asks whether
    it is alive: its one report as exited, after which it is forgotten, still has its
    last counts (the soak caught an exporter serving 2747 of 3000 reads for good)."""
    monitor.poll()
    guest = start_guest("ecam-scan", "--hole", "alias")
    wait_registered(guest)
    runs, read = [], monitor.program.read

    def read_then_let_the_guest_finish(*pids):
        counts = read(*pids)
        if not runs:
            runs.append(result(guest))
        return counts
    monkeypatch.setattr(monitor.program, "read", read_then_let_the_guest_finish)
    snapshot = monitor.poll()
    assert_counted(snapshot.guest(runs[0]["pid"]), runs[0])


@pytest.mark.parametrize("hole", ["exit", "alias"])
def test_a_guest_whose_registry_entry_is_unread_is_counted_whole(monitor, tmp_path, hole):
    """The monitor's registry watcher can fall behind a short guest (under load); here
    it never sees the entry at all. hole-rw reads hole pages at offsets past the
    identity registers (5000, 8184) before any identity read of their function: each
    is still a hole read, counted the moment it happens."""
    monitor.poll()
    run = result(start_guest("hole-rw", "--hole", hole, "--name", "unread",
                             env={"KVMHOLE_RUN_DIR": str(tmp_path)}))
    guest = monitor.poll().guest(run["pid"])
    assert guest is not None and guest.name != "unread"  # named by its process instead
    assert guest.hole_reads_in_kernel + guest.hole_read_exits == run["guest_hole_reads"] > 0
    assert guest.hole_write_exits == run["hole_write_exits"] > 0


def test_monitor_started_after_the_guest(registry):
    guest = subprocess.Popen([*KVMHOLE, "run", "mixed", "--hole", "alias", "--pages", "32"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_registered(guest)
        with Monitor(pids={guest.pid}) as late:
            first = late.poll().guest(guest.pid)
            assert (first.name, first.strategy) == (f"mixed-{guest.pid}", "alias")
            while late.poll().guest(guest.pid).hole_reads_in_kernel < 64:
                time.sleep(0.1)
            live = late.poll().guest(guest.pid)
            assert live.alive and live.hole_read_exits == 0
            guest.send_signal(signal.SIGTERM)
            guest.communicate(timeout=60)
            final = late.poll().guest(guest.pid)
            assert not final.alive
            assert final.hole_reads_in_kernel >= live.hole_reads_in_kernel
            # each batch: 32 hole reads, one device read (an MMIO exit), two port writes
            assert final.userspace_exits["MMIO"] <= final.hole_reads_in_kernel // 32 + 1
            assert late.poll().guests == []
    finally:
        if guest.poll() is None:
            guest.kill()
            guest.wait()


def test_qemu_guest_is_counted_exactly(registry, tmp_path):
    debugcon = tmp_path / "debugcon.txt"
    with Monitor() as monitor:
        qemu = multiboot.start_qemu(3000, debugcon, name="mb-scan")
        seen = monitor.poll().guest(qemu.pid)  # named while it runs
        run = multiboot.finish(qemu, debugcon)
        guest = monitor.poll().guest(qemu.pid)
    assert run.hole_reads == 3000
    assert guest.vmm == "qemu" and not guest.alive
    if seen is not None:
        assert guest.name == "mb-scan"
    # QEMU answers absent functions in userspace with all-ones: each is a hole exit
    # (SeaBIOS's own type-1 reads are tests/test_config_mechanisms.py's)
    assert guest.config["ecam"].read_exits == run.hole_reads
    assert guest.hole_reads_in_kernel == 0


def test_a_hole_cut_into_many_runs_is_counted_whole(monitor):
    # 20 present functions, one per device number: the hole is 21 runs
    devices = [arg for d in range(1, 21) for arg in ("--device", f"00:{d:02x}.0")]
    monitor.poll()
    run = result(start_guest("ecam-scan", "--hole", "exit", *devices))
    assert run["guest_hole_reads"] == 8192 and run["guest_result"]["present_reads"] == 21
    guest = monitor.poll().guest(run["pid"])
    assert len(guest.holes) == 21
    assert_counted(guest, run)


def test_more_hole_runs_than_the_probes_take_is_refused(run_dir):
    devices = [arg for d in range(1, 32, 2) for f in (0, 2, 4, 6)
               for arg in ("--device", f"00:{d:02x}.{f}")]  # 64 functions, 65 runs
    done = kvmhole("run", "ecam-scan", *devices, check=False)
    assert_one_line_error(done, "65 runs", "at most 64")


def test_guests_past_a_full_map_are_counted_and_warned_about(registry, capfd):
    """Maps shrunk to two guests, four guests run one after the other (no poll in
    between drops the first ones): two are counted exactly, the other two are counted
    once each as refused (not once per KVM_RUN), and the monitor warns once."""
    limit, started = 2, 4
    with Monitor(sizes={"MAX_GUESTS": limit}) as monitor:
        runs = [result(start_guest("ecam-scan", "--hole", "exit", "--pages", "10"))
                for _ in range(started)]
        first, second = monitor.poll(), monitor.poll()
    for run in runs[:limit]:
        assert_counted(first.guest(run["pid"]), run)
    assert [g.pid for g in first.guests] == [run["pid"] for run in runs[:limit]]
    assert first.probe.map_full == second.probe.map_full == {
        "holes": started - limit, "counts": 0, "vcpus": 0}
    err = capfd.readouterr().err
    assert err.count("warning: the BPF map holes is full (2 entries)") == 1, err


def test_monitors_attached_at_any_point_of_a_guests_life_invent_no_in_kernel_reads(registry):
    """bcc attaches the probes one by one while guests run; a port read completed
    before all were attached, or the first after an exit they missed, must not look
    served in the kernel. With --hole exit every read exits, so any in-kernel read
    of either mechanism is invented. Monitors attach one after another from before
    the guest starts until after it has exited, each through whatever the guest is
    doing at that moment."""
    guest = subprocess.Popen([*KVMHOLE, "run", "ecam-scan", "--hole", "exit", "--pages", "2000",
                              "--type1-pages", "65000", "--json"], stdout=subprocess.PIPE,
                             text=True)
    seen, attaches = [], 0
    while True:
        running = guest.poll() is None
        with Monitor() as late:  # no pid filter: BPF adopts the guest itself, as trace does
            attaches += 1
            for _ in range(2):
                report = late.poll().guest(guest.pid)
                if report is not None:
                    seen.append(report)
        if not running:
            break
    run = json.loads(guest.communicate()[0])
    assert run["type1_hole_read_exits"] == 65000 and attaches >= 3, attaches
    assert seen, "no monitor saw the guest run"
    for report in seen:
        assert report.hole_reads_in_kernel == 0, report.config
        assert report.config["type1"].read_exits <= 65000
