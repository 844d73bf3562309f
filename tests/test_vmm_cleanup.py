"""A machine that fails, at any point, gives back every fd and mapping it made: KVM's
(the VM, the vCPU and its kvm_run, the binary stats), the alias window's memfd and
guest RAM. Run in this process, where a leak would stay."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from kvmhole.errors import ConfigError, KvmholeError
from kvmhole.kvm import Vm
from kvmhole.vmm import Machine, MachineConfig
from kvmhole.vmm.registry import host_pid

RAM = 1 << 30  # large enough that leaked guest RAM shows in VmSize


def kvm_fds() -> list[str]:
    """What this process's fds that KVM or the VMM made point at."""
    fds = Path("/proc/self/fd")
    targets = []
    for fd in fds.iterdir():
        try:
            targets.append(os.readlink(fd))
        except OSError:
            continue  # listdir's own fd, closed meanwhile
    return sorted(t for t in targets if "kvm" in t)


def kvm_mappings() -> list[str]:
    """kvm_run and the alias window's pages."""
    return [line for line in Path("/proc/self/maps").read_text().splitlines() if "kvm" in line]


def vm_size() -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmSize:")[1].split()[0]) << 10


@pytest.fixture
def nothing_left():
    """Fails the test if it leaves a KVM fd, a KVM mapping or guest RAM behind."""
    before = kvm_fds(), kvm_mappings(), vm_size()
    yield
    assert kvm_fds() == before[0]
    assert kvm_mappings() == before[1]
    assert vm_size() - before[2] < RAM // 2


def machine(guest: str = "ecam-scan") -> Machine:
    # the timeout ends a guest that no SIGTERM reached
    return Machine(MachineConfig(guest=guest, hole="alias", ram_size=RAM,
                                 timeout=60))


def test_a_registry_that_cannot_be_written(tmp_path, monkeypatch, nothing_left):
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("KVMHOLE_RUN_DIR", str(blocked / "run"))
    with pytest.raises(ConfigError, match="cannot write the guest registry"):
        machine().run()


def test_a_build_that_fails_after_the_vcpu_stats_are_open(run_dir, monkeypatch, nothing_left):
    def refused(vm):
        raise KvmholeError("KVM_GET_STATS_FD refused (by this test)")

    monkeypatch.setattr(Vm, "stats", refused)
    with pytest.raises(KvmholeError, match="by this test"):
        machine().run()


def test_sigterm_while_the_guest_runs(run_dir, nothing_left):
    """SIGTERM ends the run loop (deadline.py), mid-guest, with the counts so far."""
    def terminate_once_registered():
        entry = run_dir / f"{host_pid()}.json"
        deadline = time.monotonic() + 30
        while not entry.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        if entry.exists():  # the machine's handler is in place: it is written inside it
            os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_once_registered)
    killer.start()
    try:
        result = machine("mixed").run()
    finally:
        killer.join()
    assert (result.status, result.error) == ("stopped", "stopped by SIGTERM")


def test_a_guest_that_crashes(run_dir, nothing_left):
    result = machine("triple-fault").run()
    assert result.status == "crashed"
