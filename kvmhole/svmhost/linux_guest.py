"""A real Linux guest for the SVM host: QEMU q35 with KVM booting the SVM host's own
Debian kernel straight into a busybox initramfs that powers off at once.

Its PCI traffic is stock Linux's: type-1 port I/O below offset 256 (every absent
function by 0xCF8/0xCFC) and ECAM above it, so it is what kvmhole's mechanism
counts are tested against. The CPU vendor changes the counts (an AMD-branded vCPU
adds a northbridge scan), so it is always given. The serial console goes to a
file on the SVM host's own tmpfs: over 9p every character costs milliseconds.
"""

import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kvmhole.svmhost import initramfs
from kvmhole.svmhost.kernel import BUSYBOX, kernel_image

QEMU = "qemu-system-x86_64"
INTEL_CPU = "qemu64,vendor=GenuineIntel"
POWEROFF = b"#!/bin/busybox sh\necho kvmhole-linux-guest: init\n/bin/busybox poweroff -f\n"


@dataclass(frozen=True)
class Boot:
    """One way to boot the guest (SeaBIOS, QEMU's default firmware): extra kernel
    parameters and the vCPU model."""

    append: str = ""  # e.g. "pci=lastbus=0"
    cpu: str = INTEL_CPU


def write_initramfs(dest: Path) -> Path:
    executable = stat.S_IFREG | 0o755
    dest.write_bytes(initramfs.archive({"init": (executable, POWEROFF),
                                        "bin/busybox": (executable, BUSYBOX.read_bytes())}))
    return dest


def command(boot: Boot, initrd: Path, serial: Path, name: str = "linux-guest") -> list[str]:
    argv = [QEMU, "-name", name, "-M", "q35", "-cpu", boot.cpu, "-m", "256",
            "-kernel", str(kernel_image().vmlinuz), "-initrd", str(initrd),
            "-append", f"console=ttyS0 panic=-1 {boot.append}".strip(),
            "-display", "none", "-serial", f"file:{serial}", "-no-reboot", "-accel", "kvm"]
    return argv


def start(boot: Boot, workdir: Path, name: str = "linux-guest") -> subprocess.Popen:
    """QEMU booting the guest; its serial console is workdir/serial.txt."""
    initrd = write_initramfs(workdir / "poweroff.cpio")
    return subprocess.Popen(command(boot, initrd, workdir / "serial.txt", name),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def powered_off(workdir: Path) -> bool:
    """The guest reached its /init (and so powered itself off)."""
    serial = workdir / "serial.txt"
    return serial.exists() and "kvmhole-linux-guest: init" in serial.read_text(errors="replace")
