"""What a user who is not root can run: doctor's report and top --replay (no root,
KVM or BPF needed), from the project's venv."""

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import KVMHOLE
from tests.tui_synthetic import SyntheticSource

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def shared_dir():
    """A directory nobody can read (pytest's tmp_path is root's alone)."""
    with tempfile.TemporaryDirectory() as path:
        os.chmod(path, 0o755)
        yield Path(path)


def as_nobody(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([*NOBODY, *KVMHOLE, *args], capture_output=True, text=True,
                          env=env, cwd=home, timeout=120)


def test_doctor_reports_instead_of_a_traceback(shared_dir):
    done = as_nobody("doctor", home=shared_dir)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    report = done.stdout.splitlines()
    assert any(line.startswith("MISSING  root") for line in report), done.stdout
    assert any(line.startswith("MISSING  tracefs") and "run as root" in line for line in report)
    assert done.stderr.strip().startswith("kvmhole: error: the probes cannot run here")


def test_replay_runs_without_root(shared_dir):
    source = SyntheticSource()
    recording = shared_dir / "session.ndjson"
    recording.write_text("".join(source().to_json() + "\n" for _ in range(3)))
    recording.chmod(0o644)
    done = as_nobody("top", "--replay", str(recording), home=shared_dir)
    assert done.returncode == 0, done.stderr
    assert "demo-alias" in done.stdout
