"""The package as a user installs it: a wheel built from the tree, installed in a fresh
venv outside it, runs `kvmhole doctor`, which loads the shipped BPF program."""

import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).parents[1]
BCC = Path("/usr/lib/python3/dist-packages/bcc")  # Debian's python3-bpfcc (see Makefile)


def run(*command, cwd: Path) -> str:
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


def test_wheel_in_a_fresh_venv_runs_doctor(tmp_path):
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", PROJECT, "-w", tmp_path,
        cwd=tmp_path)
    wheel = next(tmp_path.glob("kvmhole-*.whl"))
    venv = tmp_path / "venv"
    run(sys._base_executable, "-m", "venv", venv, cwd=tmp_path)
    run(venv / "bin" / "pip", "install", "-q", wheel, cwd=tmp_path)
    purelib = run(venv / "bin" / "python", "-c",
                  "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path)
    (Path(purelib.strip()) / "bcc").symlink_to(BCC)
    out = run(venv / "bin" / "kvmhole", "doctor", cwd=tmp_path)
    shipped = f"{purelib.strip()}/kvmhole/bpf/kvmhole.bpf.c loads"
    assert shipped in out, out
