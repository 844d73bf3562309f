"""The SVM host (kvmhole svmhost): Debian's kernel with kvm_amd under QEMU TCG.

It boots once per supported kernel series for the hardware-path tests in tests/svm,
which run there under pytest; each of them is reported here as its own test. Its own
behaviour (output, exit code, files back) and its failures (missing pieces, no SVM, a
hung job) are tested with short boots of their own.
"""

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kvmhole import svmhost
from kvmhole.kernel import release
from tests.broken_hosts import in_namespace
from tests.conftest import IN_SVMHOST, KVMHOLE, assert_one_line_error, kernel_series
from tests.svm_boot import boot

INSIDE = Path(__file__).parent / "svm"
PROJECT = Path(__file__).parents[1]
# The boot with all of tests/svm took 192 s on a quiet 2-CPU host (its slowest test
# 38 s); these leave room for a loaded one.
INSIDE_TEST_TIMEOUT_S = 180
INSIDE_RUN_TIMEOUT_S = 700


# Debian's default series runs all of tests/svm; the other series the hardware path's
# checks (doctor, every BPF build, exact counts of kvmhole and QEMU guests, trace, export
# and top), without the Linux-guest boot, to keep the suite's time.
DEFAULT_SERIES = release.default_series()
OTHER_SERIES_FILES = ("test_hardware_path.py",)


def inside_tests(series: str) -> list[str]:
    """The test functions in tests/svm that run on `series`, read from their source
    (nothing imported here)."""
    names = []
    for path in sorted(INSIDE.glob("test_*.py")):
        if series != DEFAULT_SERIES and path.name not in OTHER_SERIES_FILES:
            continue
        tree = ast.parse(path.read_text())
        names += [f"{path.stem}.{node.name}" for node in tree.body
                  if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]
    return names


def _inside_run(series: str):
    """One SVM host boot of `series` running pytest on its tests/svm files; junit XML
    comes back as a file."""
    # -v and a per-test timeout well under the boot's: a test that hangs fails alone
    # (with its stack), and if the whole job hangs the error names the test it was in.
    files = [str(INSIDE)] if series == DEFAULT_SERIES else \
        [str(INSIDE / name) for name in OTHER_SERIES_FILES]
    script = shlex.join([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
                         "-o", f"timeout={INSIDE_TEST_TIMEOUT_S}", *files]) + \
        ' --junitxml="$KVMHOLE_SVMHOST_OUT/junit.xml"'
    result = boot(svmhost.run, ["sh", "-c", script], cwd=PROJECT, timeout=INSIDE_RUN_TIMEOUT_S,
                  env={**os.environ, IN_SVMHOST: "1"}, series=series)
    assert "junit.xml" in result.files, f"{result.stdout}\n{result.stderr}"
    cases = {}
    for case in ET.fromstring(result.files["junit.xml"]).iter("testcase"):
        module = case.get("classname").rsplit(".", 1)[-1]
        cases[f"{module}.{case.get('name')}"] = case
    return result, cases


@pytest.fixture(scope="session")
def inside_runs():
    """inside_runs(series): that series' boot, made once for all its tests (a boot that
    failed fails them all, as a session fixture's error would, without booting again)."""
    runs = {}

    def run(series: str):
        if series not in runs:
            try:
                runs[series] = _inside_run(series)
            except Exception as error:  # re-raised for every test of the series
                runs[series] = error
        if isinstance(runs[series], Exception):
            raise runs[series]
        return runs[series]
    return run


# The first test of a series boots the SVM host for all of them (twice if the first
# boot hangs), longer than the suite's default per-test timeout.
@pytest.mark.timeout(2 * INSIDE_RUN_TIMEOUT_S + 100)
@pytest.mark.parametrize(("series", "name"), [
    pytest.param(series.values[0], name, marks=series.marks)
    for series in kernel_series() for name in inside_tests(series.values[0])])
def test_inside_the_svm_host(inside_runs, series, name):
    result, cases = inside_runs(series)
    ran = {key: case for key, case in cases.items()
           if key == name or key.startswith(name + "[")}
    assert ran, f"{name} did not run in the SVM host:\n{result.stdout[-3000:]}"
    for key, case in ran.items():
        problems = [child for child in case if child.tag in ("failure", "error", "skipped")]
        assert not problems, f"{key}: {problems[0].get('message')}\n{problems[0].text}"


def test_runs_a_command_and_returns_output_exit_code_and_files():
    result = svmhost.run(["sh", "-c",
                          "uname -r; cat /sys/module/kvm_amd/parameters/npt; test -c /dev/kvm"
                          " && echo kvm; echo to-stderr >&2; echo x > $KVMHOLE_SVMHOST_OUT/f;"
                          " pwd; exit 7"], cwd=PROJECT, timeout=300)
    kernel, npt, kvm, cwd = result.stdout.split()
    assert kernel == release.resolve().abi  # Debian's default release, as installed
    assert (npt, kvm, cwd) == ("Y", "kvm", str(PROJECT))
    assert result.returncode == 7 and result.stderr == "to-stderr\n"
    assert result.files == {"f": b"x\n"}


def test_runs_in_any_directory_even_under_tmp_with_a_space():
    """The job's directory is the caller's, wherever it is: the SVM host's /tmp is this
    machine's (a clone under /tmp was invisible there when /tmp was a fresh tmpfs)."""
    where = Path(tempfile.mkdtemp(prefix="kvmhole svmhost cwd ", dir="/tmp"))
    try:
        (where / "marker").write_text("seen\n")
        result = svmhost.run(["sh", "-c", "pwd; cat marker"], cwd=where, timeout=300)
    finally:
        shutil.rmtree(where)
    assert (result.returncode, result.stdout) == (0, f"{where}\nseen\n"), result.stderr


def svmhost_cli(*args: str, env: dict | None = None, tmp: Path) -> subprocess.CompletedProcess:
    """`kvmhole svmhost ...` with a private TMPDIR, so what it leaves behind is visible."""
    return subprocess.run([*KVMHOLE, "svmhost", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TMPDIR": str(tmp), **(env or {})})


def assert_left_nothing(tmp: Path) -> None:
    assert not list(tmp.iterdir()), "the SVM host left its temporary files behind"
    qemus = subprocess.run(["pgrep", "-f", f"qemu-system-x86_64.*{tmp}"], capture_output=True)
    assert qemus.returncode == 1, "a QEMU of the SVM host is still running"


def test_missing_qemu_is_one_line(tmp_path):
    done = svmhost_cli("--", "true", env={"KVMHOLE_QEMU": "qemu-nowhere"}, tmp=tmp_path)
    assert_one_line_error(done, "qemu-nowhere not found", "apt-get install qemu-system-x86")
    assert_left_nothing(tmp_path)


def test_missing_headers_is_one_line():
    done = in_namespace("mount -t tmpfs tmpfs /usr/src", *KVMHOLE, "svmhost", "--", "true")
    assert_one_line_error(done, "headers", "is missing", "apt-get install")


def test_kernel_image_that_cannot_be_fetched_is_one_line(monkeypatch, tmp_path):
    # a release Debian never built: its image cannot be downloaded
    example = release.Release("6.1", "0.0.0-0-amd64", "0.0.0-0")
    monkeypatch.setattr(release, "resolve", lambda series=None: example)
    monkeypatch.setattr(svmhost.kernel, "CACHE", tmp_path)
    with pytest.raises(svmhost.SvmHostError,
                       match=r"apt-get download linux-image-0\.0\.0-0-amd64=0\.0\.0-0"):
        svmhost.kernel.kernel_image()


def test_no_svm_in_the_vcpu_is_one_line(tmp_path):
    done = svmhost_cli("--cpu", "qemu64,-svm", "--", "true", tmp=tmp_path)
    assert_one_line_error(done, "kvm_amd would not load")
    assert_left_nothing(tmp_path)


def test_a_job_that_does_not_finish_is_stopped(tmp_path):
    # 60 s: the host boots in about 10 (the timeout counts from QEMU's start)
    done = svmhost_cli("--timeout", "60", "--", "sleep", "600", tmp=tmp_path)
    assert_one_line_error(done, "did not power off within 60 s")
    # where each vCPU was, named from System.map: both idle in the kernel while it sleeps
    assert re.search(r"vCPU 0 at \w+\+0x[0-9a-f]+, vCPU 1 at \w+\+0x[0-9a-f]+", done.stderr), \
        done.stderr
    assert_left_nothing(tmp_path)
