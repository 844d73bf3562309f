"""Shared helpers: run the real CLI as a user would, and parse its JSON."""

import functools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from kvmhole.kernel import release
from kvmhole.vmm import registry
from kvmhole.vmm.registry import process_state

KVMHOLE = [sys.executable, "-m", "kvmhole"]

# tests/svm run inside the SVM host, booted by tests/test_svm_host.py, which sets this.
IN_SVMHOST = "KVMHOLE_IN_SVMHOST"
collect_ignore = [] if os.environ.get(IN_SVMHOST) else ["svm"]

# Property tests check values, never time: a host busy with the suite's guests must not
# fail an example for being slow.
settings.register_profile("kvmhole", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("kvmhole")


def kvmhole(*args: str, timeout: float = 120, check: bool = True,
            **kwargs) -> subprocess.CompletedProcess:
    """Run `kvmhole ARGS...` in a subprocess; check=True demands exit code 0."""
    done = subprocess.run([*KVMHOLE, *args], capture_output=True, text=True, timeout=timeout,
                          **kwargs)
    if check and done.returncode != 0:
        raise AssertionError(f"kvmhole {' '.join(args)} exited {done.returncode}:\n"
                             f"{done.stdout}\n{done.stderr}")
    return done


def assert_one_line_error(done: subprocess.CompletedProcess, *words: str) -> None:
    """What every failure looks like to a user: a non-zero exit code and one line on
    stderr, `kvmhole: error: ...`, holding `words` (bcc's modprobe noise aside)."""
    assert done.returncode != 0, done
    lines = [line for line in done.stderr.splitlines() if "modprobe" not in line]
    assert len(lines) == 1 and lines[0].startswith("kvmhole: error: "), done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0], lines[0]


def start_guest(*args: str, env: dict | None = None) -> subprocess.Popen:
    """`kvmhole run ARGS... --json` started in the background (with `env` added to ours);
    finish it with result()."""
    return subprocess.Popen([*KVMHOLE, "run", *args, "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def result(process: subprocess.Popen, timeout: float = 240) -> dict:
    """The JSON a guest started with start_guest() printed; it must have succeeded."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return json.loads(out)


def wait_for(what: str, check, timeout: float = 60.0, every: float = 0.25):
    """Poll `check()` until it returns something truthy, and return that; fail naming
    `what` after `timeout` seconds. Tests wait for states this way, never for time."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def wait_registered(guest: subprocess.Popen, timeout: float = 60) -> None:
    """Until the kvmhole VMM `guest` has written its registry entry (it runs then)."""
    entry = registry.entry_path(guest.pid)

    def registered() -> bool:
        assert guest.poll() is None, f"the guest exited before it registered: {guest.returncode}"
        return entry.exists()
    wait_for(f"guest {guest.pid} to register", registered, timeout, every=0.05)


def start_stopped(args: list[str], env: dict) -> subprocess.Popen:
    """`kvmhole ARGS`, stopped (SIGSTOP) before it starts: its pid is known and nothing
    has run yet, so a monitor started now with -p PID sees all it does (SIGCONT)."""
    process = subprocess.Popen(["sh", "-c", 'kill -STOP $$; exec "$@"', "sh", *KVMHOLE, *args],
                               stdout=subprocess.PIPE, text=True, env=env)
    wait_for(f"pid {process.pid} to stop", lambda: process_state(process.pid) == "T",
             every=0.05)
    return process


def serving(export: subprocess.Popen, log: Path) -> str | None:
    """The address `kvmhole export` says it serves on (from its stderr log), once it does."""
    text = log.read_text()
    assert export.poll() is None, f"kvmhole export exited {export.returncode}: {text}"
    match = re.search(r"serving http://(\S+)/metrics", text)
    return match and match[1]


def run_json(*args: str, timeout: float = 120) -> dict:
    """`kvmhole run ARGS... --json` -> the JSON object it printed."""
    return json.loads(kvmhole("run", *args, "--json", timeout=timeout).stdout)


def pytest_configure(config):
    config.addinivalue_line("markers", "pure: plain data, no KVM: runs as any user, anywhere")
    config.addinivalue_line("markers", "other_series: the hardware path on the kernel series "
                            "that is not Debian's default (`make test-all` runs it too)")


def kernel_series() -> list:
    """Each supported kernel series as a pytest param, for one SVM host boot per series:
    Debian's default series is marked nothing, the other other_series."""
    default = release.default_series()
    return [pytest.param(series, id=series,
                         marks=() if series == default else pytest.mark.other_series)
            for series in release.SERIES]


@functools.cache
def _kvm_and_root() -> None:
    assert os.path.exists("/dev/kvm"), "/dev/kvm is missing: these tests need real KVM"
    assert os.geteuid() == 0, "the tests run as root (KVM, BPF, tracefs)"


@pytest.fixture(autouse=True)
def _requirements(request):
    """On a machine that has KVM these tests must run: missing pieces fail, never skip.
    A module marked `pure` needs neither KVM nor root, so it is held to neither."""
    if request.node.get_closest_marker("pure") is None:
        _kvm_and_root()


@pytest.fixture
def run_dir(tmp_path, monkeypatch) -> Path:
    """A private registry directory, so parallel VMMs on the machine do not interfere."""
    path = tmp_path / "run"
    monkeypatch.setenv("KVMHOLE_RUN_DIR", str(path))
    return path
