"""Boot the SVM host, run one job in it, power it off: `run()`.

The SVM host is a QEMU TCG guest whose emulated AMD vCPU has SVM with nested paging,
running Debian's own kernel, so KVM inside it is kvm_amd and the hardware
tracepoints (kvm_exit, kvm_page_fault, kvm_entry) fire as on a real AMD host. Its
root is this machine's `/`, read-only over virtio-9p under a tmpfs overlay, so the
job sees the same files, venv and project; a second, writable 9p share (mounted at
the same path inside) carries the job script in and its output and status out.
"""

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from kvmhole.svmhost import hang, initramfs
from kvmhole.svmhost.errors import SvmHostError, SvmHostTimeout
from kvmhole.svmhost.kernel import kernel_image

QEMU = os.environ.get("KVMHOLE_QEMU", "qemu-system-x86_64")
# An AMD model with SVM and nested paging; the features TCG cannot emulate are
# dropped so that QEMU does not warn about each of them.
CPU = ("EPYC,+svm,+npt,-fxsr-opt,-sha-ni,-xsavec,-misalignsse,-3dnowprefetch,"
       "-osvw,-topoext,-perfctr-core,-clzero,-xsaveerptr,-fma,-avx,-avx2,-f16c")
# Run inside: returns once an idle VM is held open for the rest of the job (keeper.py),
# and returns once it is let go (before unloading KVM's modules).
HOLD_VM = f"{shlex.quote(sys.executable)} -m kvmhole.svmhost.keeper"
KEEPER_PID_FILE = Path("/run/kvmhole-keeper.pid")  # the holder's pid; gone once it let go
RELEASE_VM = (f"kill $(cat {KEEPER_PID_FILE}) && "
              f"while [ -e {KEEPER_PID_FILE} ]; do sleep 0.1; done")
# Environment variables of the caller that mean nothing inside the SVM host.
_HOST_ONLY_ENV = {"PWD", "OLDPWD", "SHLVL", "_", "TMPDIR", "DISPLAY", "TERM",
                  "SSH_AUTH_SOCK", "SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY"}


@dataclass
class SvmResult:
    returncode: int
    stdout: str
    stderr: str
    console: str    # the SVM host kernel's serial console
    seconds: float  # from starting QEMU to its exit
    files: dict[str, bytes]  # what the job wrote into $KVMHOLE_SVMHOST_OUT


def _job_script(command: list[str], cwd: Path, env: dict[str, str], out: Path,
                setup: str, hold_vm: bool) -> str:
    env = {**env, "KVMHOLE_SVMHOST_OUT": str(out / "files")}
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items())
                      if k.isidentifier() and k not in _HOST_ONLY_ENV)
    return (f"{exports}export TERM=dumb\ncd {shlex.quote(str(cwd))} || exit 125\n"
            + (f"{setup}\n" if setup else "")
            # after the setup: the symbols of the KVM modules the job runs with
            + f"{hang.save_symbols(out / 'kallsyms')}\n"
            + (f"{HOLD_VM} || exit 125\n" if hold_vm else "")
            + f"exec {shlex.join(command)}\n")


def qemu_command(vmlinuz: Path, initrd: Path, out: Path, image_root: Path, *,
                 memory: str, cpus: int, cpu: str, kvm: str, monitor: Path) -> list[str]:
    append = (f"console=ttyS0 panic=-1 loglevel=4 nokaslr kvmhole.out={out} "
              f"kvmhole.image={image_root} kvmhole.kvm={kvm}")
    return [QEMU, "-accel", "tcg,thread=multi", "-smp", str(cpus), "-m", memory, "-cpu", cpu,
            "-kernel", str(vmlinuz), "-initrd", str(initrd), "-append", append,
            "-display", "none", "-monitor", f"unix:{monitor},server=on,wait=off",
            "-no-reboot", "-nodefaults",
            "-serial", f"file:{out.parent / 'console.log'}",
            "-fsdev", "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=root,mount_tag=hostroot",
            "-fsdev", f"local,id=out,path={out},security_model=none",
            "-device", "virtio-9p-pci,fsdev=out,mount_tag=out"]


class _Follower:
    """Copies what the job writes to its stdout/stderr files, as it appears."""

    def __init__(self, out: Path, stream: bool):
        self.out, self.stream = out, stream
        self.offsets = {"stdout": 0, "stderr": 0}

    def follow(self) -> None:
        if not self.stream:
            return
        for name, sink in (("stdout", sys.stdout), ("stderr", sys.stderr)):
            try:
                with open(self.out / name, "rb") as f:
                    f.seek(self.offsets[name])
                    data = f.read()
            except OSError:
                continue
            if data:
                self.offsets[name] += len(data)
                sink.buffer.write(data)
                sink.flush()


def _stop(qemu: subprocess.Popen) -> None:
    if qemu.poll() is None:
        os.killpg(qemu.pid, signal.SIGKILL)
    qemu.wait()


def _console_tail(console: str) -> str:
    lines = [line for line in console.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "nothing on its console"


def _job_tail(out: Path, lines: int = 3) -> str:
    """The job's last lines of output: where a job that never finished stopped."""
    tails = []
    for name in ("stdout", "stderr"):
        try:
            text = (out / name).read_text(errors="replace")
        except OSError:
            continue
        kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        if kept:
            tails.append(f"{name}: " + " | ".join(kept))
    return "; ".join(tails) or "the job printed nothing"


def run(command: list[str], *, timeout: float = 600, cwd: Path | None = None,
        env: dict[str, str] | None = None, kvm: str = "stock", memory: str = "4G",
        cpus: int = 2, cpu: str = CPU, stream: bool = False, setup: str = "",
        series: str | None = None, progress=lambda message: None) -> SvmResult:
    """Boot the SVM host, run `command` in it (in `cwd`, with `env`), power it off.

    kvm="stock" loads Debian's kvm_amd before the job (and fails if /dev/kvm does not
    appear); any other value leaves loading KVM to the job (e.g. rebuilt modules).
    series: the kernel series to boot ("6.1", "6.12"; default: Debian's default), its
    installed headers release (kernel/release.py).
    setup: shell commands run inside before the job, in `cwd` (e.g. replacing the
    stock KVM modules); the job does not run if they fail, and their exit code is the
    result's. With kvm="stock", an idle VM is then held open for the whole job
    (keeper.py: without it the SVM host could hang).
    With stream=True the job's output is copied to ours as it is written. Files the
    job writes into the directory $KVMHOLE_SVMHOST_OUT come back in SvmResult.files.
    """
    if not command:
        raise SvmHostError("no command to run in the SVM host")
    if shutil.which(QEMU) is None:
        raise SvmHostError(f"{QEMU} not found: apt-get install qemu-system-x86")
    image = kernel_image(series, progress)
    with ExitStack() as cleanup:  # in reverse: QEMU stopped, then its files removed
        work = Path(cleanup.enter_context(tempfile.TemporaryDirectory(
            prefix="kvmhole-svmhost-", ignore_cleanup_errors=True)))
        out = work / "out"
        (out / "files").mkdir(parents=True)
        (out / "job.sh").write_text(_job_script(command, cwd or Path.cwd(),
                                                dict(os.environ if env is None else env),
                                                out, setup, hold_vm=kvm == "stock"))
        initrd = initramfs.build(image, work / "initramfs.cpio")
        argv = qemu_command(image.vmlinuz, initrd, out, image.root, memory=memory, cpus=cpus,
                            cpu=cpu, kvm=kvm, monitor=work / "monitor")
        progress(f"booting the SVM host ({image.version}, QEMU TCG, {cpus} vCPUs)")
        started = time.monotonic()
        qemu = cleanup.enter_context(subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True))
        cleanup.callback(_stop, qemu)  # runs before Popen's exit closes its stderr
        follower = _Follower(out, stream)
        while qemu.poll() is None and time.monotonic() - started < timeout:
            time.sleep(0.2)
            follower.follow()
        follower.follow()
        seconds = time.monotonic() - started
        timed_out = qemu.poll() is None
        stuck = hang.where(work / "monitor", out / "kallsyms") if timed_out else ""
        _stop(qemu)
        console = (work / "console.log").read_text(errors="replace") \
            if (work / "console.log").exists() else ""
        if timed_out:
            raise SvmHostTimeout(f"the SVM host did not power off within {timeout:g} s "
                               f"(console: {_console_tail(console)}; {_job_tail(out)}; {stuck})")
        if (out / "setup-error").exists():
            raise SvmHostError(f"SVM host: {(out / 'setup-error').read_text().strip()}")
        if not (out / "status").exists():
            qemu_err = qemu.stderr.read().decode(errors="replace").strip()
            why = qemu_err.splitlines()[-1] if qemu_err else _console_tail(console)
            raise SvmHostError(f"the SVM host stopped before its job finished: {why}")
        return SvmResult(int((out / "status").read_text().strip() or 255),
                         (out / "stdout").read_text(errors="replace"),
                         (out / "stderr").read_text(errors="replace"), console, seconds,
                         {p.name: p.read_bytes() for p in (out / "files").iterdir()
                          if p.is_file()})
