"""What the user sees when the host cannot run the probes: one line, exit code 1.

The broken hosts are real: a private mount namespace hides tracefs or the kernel
headers from kvmhole only, and setpriv drops root.
"""

import subprocess
import sys

from tests.conftest import KVMHOLE, kvmhole

TRACE = [*KVMHOLE, "trace", "--count", "1", "--interval", "0.1"]


def in_namespace(setup: str, *command: str) -> subprocess.CompletedProcess:
    """Run command in a private mount namespace after the shell commands in setup."""
    script = f"set -e; {setup}; exec \"$@\""
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           script, "sh", *command], capture_output=True, text=True,
                          timeout=120)


def assert_one_line_error(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 1, done
    lines = [line for line in done.stderr.splitlines() if "modprobe" not in line]
    assert len(lines) == 1 and lines[0].startswith("kvmhole: error: "), done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_doctor_reports_this_host():
    out = kvmhole("doctor").stdout
    for name in ("root", "kvm", "tracefs", "kernel headers", "bcc"):
        assert any(line.startswith("ok") and name in line for line in out.splitlines()), out
    # PLATFORM.md: guests are emulated here, so kvm_exit is silent and page walks fire
    assert "silent   kvm:kvm_exit" in out
    assert "fires    kvmmmu:kvm_mmu_pagetable_walk" in out
    assert "probe path      emulated" in out


def test_not_root():
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           *TRACE], capture_output=True, text=True, timeout=120)
    assert_one_line_error(done, "root")


def test_no_tracefs():
    # a read-only empty /sys/kernel: no tracefs and nowhere to mount one
    done = in_namespace("mount -t tmpfs -o ro tmpfs /sys/kernel", *TRACE)
    assert_one_line_error(done, "tracefs", "mount -t tracefs")


def test_tracefs_unmounted_is_mounted_by_kvmhole():
    done = in_namespace("umount /sys/kernel/debug/tracing 2>/dev/null || true; "
                        "umount /sys/kernel/tracing", sys.executable, "-c",
                        "import subprocess, sys; "
                        f"subprocess.run({TRACE!r}, check=True); "
                        "print(open('/proc/self/mounts').read())")
    assert done.returncode == 0, done.stderr
    assert "nodev /sys/kernel/tracing tracefs" in done.stdout


def test_no_kernel_headers():
    # hide /usr/src and kvmhole's cache (merged tree and probe plan)
    setup = "mount -t tmpfs tmpfs /usr/src; mkdir -p /var/cache/kvmhole; " \
            "mount -t tmpfs tmpfs /var/cache/kvmhole"
    assert_one_line_error(in_namespace(setup, *TRACE), "linux-headers-amd64")
    doctor = in_namespace(setup, *KVMHOLE, "doctor")
    assert doctor.returncode == 1
    assert any(line.startswith("MISSING  kernel headers") for line in doctor.stdout.splitlines())
