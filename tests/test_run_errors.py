"""Bad input to `kvmhole run`: one clear line on stderr, a non-zero exit, no
traceback, and no live registry entry left behind."""

import json
import os
import signal
import subprocess
import sys

import pytest

from kvmhole.probes import kvmstats
from tests.conftest import (
    KVMHOLE,
    assert_one_line_error,
    kvmhole,
    wait_for,
    wait_registered,
)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["nope"], "unknown guest"),
        (["--hole-size", "0"], "greater than zero"),
        (["--hole-base", "0xb0000010"], "aligned"),
        (["--hole-base", "0x100000"], "overlaps guest RAM"),
        (["--hole", "native"], "KVM_MEM_PCI_HOLE"),
        (["--pages", "70000"], "--pages"),
        (["--device", "00:00.0"], "twice"),
        (["--device", "zz"], "bad PCI address"),
        (["triple-fault"], "triple-fault"),
        (["mixed", "--timeout", "0.5"], "did not finish within 0.5 s"),
    ],
)
def test_bad_input_fails_cleanly(args, fragment, run_dir):
    done = kvmhole("run", *args, check=False)
    assert_one_line_error(done, fragment)
    assert_no_live_entry(run_dir)


def assert_no_live_entry(run_dir) -> None:
    """Nothing left that names a running guest: at most the exited VMM's entry, marked so."""
    for path in run_dir.glob("*"):
        assert path.suffix == ".json" and "exited" in json.loads(path.read_text()), path


def test_hole_size_needs_a_size():
    done = kvmhole("run", "--hole-size", "lots", check=False)
    assert done.returncode == 2
    assert "is not a size" in done.stderr
    assert "Traceback" not in done.stderr


def test_no_permission_on_dev_kvm_is_one_line(tmp_path):
    env = {**os.environ, "KVMHOLE_RUN_DIR": str(tmp_path), "HOME": str(tmp_path),
           "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *KVMHOLE,
         "run", "--hole", "exit"],
        capture_output=True, text=True, env=env, cwd=os.getcwd(), timeout=60,
    )
    assert_one_line_error(done, "no permission to open /dev/kvm")


def test_registry_names_a_running_guest_and_is_removed_on_sigterm(run_dir):
    vmm = subprocess.Popen([*KVMHOLE, "run", "mixed", "--hole", "exit", "--name", "watched"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path = run_dir / f"{vmm.pid}.json"
    try:
        wait_registered(vmm)
        entry = json.loads(path.read_text())
        assert entry["name"] == "watched"
        assert entry["pid"] == vmm.pid
        assert entry["tids"] == [vmm.pid]  # the vCPU runs on the main thread
        assert entry["strategy"] == "exit"
        assert entry["holes"] == [[0xB000_1000, 0xC000_0000]]
        # KVM's own count, from the VMM's stats fds: an MMIO exit has happened
        stats = wait_for("the VMM's stats fds", lambda: kvmstats.attach(vmm.pid))
        try:
            wait_for("the guest's first MMIO exit", lambda: stats.read()["mmio_exits"] > 0)
        finally:
            stats.close()
    finally:
        vmm.send_signal(signal.SIGTERM)
        vmm.wait(timeout=30)
    final = json.loads(path.read_text())
    assert final["exited"] >= final["started"]
    assert final["kvm_stats"]["mmio_exits"] > 0  # the last reading, for monitors late to it
    assert_no_live_entry(run_dir)


def test_module_entry_point_matches_console_script():
    done = subprocess.run([sys.executable, "-m", "kvmhole", "--help"], capture_output=True,
                          text=True, check=True)
    assert "run" in done.stdout


@pytest.mark.parametrize("value", ["", "relative/run"])
def test_run_dir_must_be_absolute_or_unset(value, tmp_path):
    env = {**os.environ, "KVMHOLE_RUN_DIR": value}
    done = subprocess.run([*KVMHOLE, "run", "--pages", "10"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    if value:
        assert_one_line_error(done, "KVMHOLE_RUN_DIR must be an absolute path")
    else:  # empty: the default, /run/kvmhole, never the cwd
        assert done.returncode == 0, done.stderr
    assert not list(tmp_path.iterdir())


def test_run_dir_is_readable_by_monitors_whatever_the_umask(tmp_path):
    run_dir = tmp_path / "new" / "run"
    env = {**os.environ, "KVMHOLE_RUN_DIR": str(run_dir)}
    subprocess.run(["sh", "-c", 'umask 077 && exec "$@"', "sh", *KVMHOLE, "run", "--pages",
                    "10"], env=env, check=True, capture_output=True, timeout=120)
    assert run_dir.stat().st_mode & 0o777 == 0o755
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in run_dir.iterdir())


def test_bench_out_is_checked_before_the_run(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    done = kvmhole("bench", "--quick", "--out", str(blocked / "out"), check=False, timeout=60)
    assert done.returncode == 2 and "cannot write into" in done.stderr, done.stderr
