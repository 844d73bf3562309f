"""Host checks for `kvmhole doctor`: what BPF and KVM tracing need, what is missing, the fix."""

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from kvmhole.errors import KvmholeError
from kvmhole.kernel import release
from kvmhole.probes import ProbeUnavailable, host

LOCKDOWN = Path("/sys/kernel/security/lockdown")
BTF = Path("/sys/kernel/btf/vmlinux")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True  # a failed optional check only limits what can be seen


def _attempt(name: str, action, detail) -> Check:
    try:
        return Check(name, True, detail(action()))
    except ProbeUnavailable as error:
        return Check(name, False, str(error))
    except OSError as error:  # not root: /sys/kernel/tracing is root's alone
        return Check(name, False, f"{error.filename}: {error.strerror} (run as root)")


def _lockdown() -> Check:
    try:
        mode = LOCKDOWN.read_text().split("[")[1].split("]")[0]
    except (OSError, IndexError):
        return Check("lockdown", True, "unknown (securityfs not mounted: mount -t securityfs "
                     "nodev /sys/kernel/security); BPF loads if the other checks pass",
                     required=False)
    if mode == "confidentiality":
        return Check("lockdown", False, "lockdown=confidentiality forbids reading kernel "
                     "memory from BPF: boot with lockdown=integrity or none")
    return Check("lockdown", True, f"{mode} (kprobes may be off; kvmhole uses tracepoints only)")


def _bcc() -> Check:
    if importlib.util.find_spec("bcc") is None:
        return Check("bcc", False, "the bcc Python module is missing: apt-get install "
                     "python3-bpfcc, then `make setup` links it into the venv")
    return Check("bcc", True, "python3-bpfcc found")


def _kvm() -> Check:
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError as error:
        return Check("kvm", False, f"/dev/kvm: {error.strerror}: load kvm and kvm_intel/kvm_amd "
                     "and run as root")
    return Check("kvm", True, "/dev/kvm opens")


def _debian_kernels() -> Check:
    """Which Debian kernel releases the module build and the SVM host would use
    (kernel/release.py); the probes on this host do not need one."""
    try:
        default = release.resolve()
    except KvmholeError as error:
        return Check("debian kernel", False, str(error), required=False)
    others = [r.abi for r in release.installed() if r.series != default.series]
    return Check("debian kernel", True, f"{default.abi} ({default.package_version}, "
                 f"the default {default.series} series)"
                 + (f"; also installed: {', '.join(others)}" if others else ""),
                 required=False)


def host_checks() -> list[Check]:
    """The static checks; the probe plan (which needs all of them) comes after."""
    return [
        _attempt("root", host.require_root, lambda _: "running as root"),
        _kvm(),
        _attempt("tracefs", host.ensure_tracefs, lambda path: f"mounted at {path}"),
        _attempt("kernel headers", host.kernel_source, lambda path: f"{path}"),
        _debian_kernels(),
        _bcc(),
        _lockdown(),
        Check("btf", BTF.exists(), f"{BTF} present" if BTF.exists() else
              f"{BTF} missing (not needed by kvmhole's tracepoint programs)", required=False),
    ]
