"""Facts about the machine a benchmark ran on, recorded beside the numbers."""

import os
import platform
from pathlib import Path

from kvmhole.kvm import System
from kvmhole.vmm.strategies import native_support


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _virtualization() -> str:
    """vmx/svm when the CPU has hardware virtualization, else which KVM flavour is there."""
    flags = _read("/proc/cpuinfo")
    for flag in ("vmx", "svm"):
        if f" {flag}" in flags:
            return flag
    if os.path.isdir("/sys/module/kvm_pvm"):
        return "pvm (guests are emulated)"
    return "none detected"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def facts() -> dict:
    with System() as system:
        api = system.api_version
        memslots = system.check_extension("KVM_CAP_NR_MEMSLOTS")
    native_ok, native_why = native_support()
    return {
        "kernel": platform.release(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "virtualization": _virtualization(),
        "kvm_api": api,
        "kvm_max_memslots": memslots,
        "native_hole": native_ok,
        "native_hole_reason": native_why,
        "python": platform.python_version(),
    }
