"""kvmhole doctor on this host and on a broken one, and the tracefs mount kvmhole
does itself. What trace/export/top say on broken hosts is in test_no_bpf.py."""

import sys

from tests.broken_hosts import NO_HEADERS, in_namespace
from tests.conftest import KVMHOLE, kvmhole

TRACE = [*KVMHOLE, "trace", "--count", "1", "--interval", "0.1"]


def test_doctor_reports_this_host():
    out = kvmhole("doctor").stdout
    for name in ("root", "kvm", "tracefs", "kernel headers", "bcc"):
        assert any(line.startswith("ok") and name in line for line in out.splitlines()), out
    # this machine's KVM emulates guests (PVM): kvm_exit is silent and page walks fire
    assert "silent   kvm:kvm_exit" in out
    assert "fires    kvmmmu:kvm_mmu_pagetable_walk" in out
    assert "probe path      emulated" in out


def test_tracefs_unmounted_is_mounted_by_kvmhole():
    done = in_namespace("umount /sys/kernel/debug/tracing 2>/dev/null || true; "
                        "umount /sys/kernel/tracing", sys.executable, "-c",
                        "import subprocess, sys; "
                        f"subprocess.run({TRACE!r}, check=True); "
                        "print(open('/proc/self/mounts').read())")
    assert done.returncode == 0, done.stderr
    assert "nodev /sys/kernel/tracing tracefs" in done.stdout


def test_doctor_names_missing_kernel_headers():
    doctor = in_namespace(NO_HEADERS, *KVMHOLE, "doctor")
    assert doctor.returncode == 1
    assert any(line.startswith("MISSING  kernel headers") for line in doctor.stdout.splitlines())
