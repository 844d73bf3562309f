"""A 32-bit multiboot ECAM scanner for QEMU (a peer VMM to compare kvmhole with).

Built from multiboot/ with gcc/ld like kvmhole's own guests and cached by source
hash; run_qemu() boots it on Debian's qemu-system-x86_64 (q35, -accel kvm) and
returns the counts the guest printed on debugcon: the ground truth for monitors.
"""

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kvmhole.errors import KvmholeError
from kvmhole.guests.toolchain import flat_binary

SRC = Path(__file__).parent / "multiboot"
QEMU = "qemu-system-x86_64"
CFLAGS = ["-m32", "-O2", "-std=gnu11", "-Wall", "-Werror", "-ffreestanding", "-fno-pic",
          "-fno-pie", "-no-pie", "-fno-stack-protector", "-fno-asynchronous-unwind-tables",
          "-nostdlib", "-static", "-Wl,--build-id=none", "-Wl,-T," + str(SRC / "link.ld")]
# QEMU's isa-debug-exit turns the guest's status byte into exit code (status << 1) | 1.
EXIT_OK = 1
_REPORT = re.compile(rb"kvmhole-multiboot: hole_reads=(\d+) present_reads=(\d+)")


@dataclass
class QemuResult:
    pid: int
    returncode: int
    hole_reads: int | None  # None: the guest printed no report
    present_reads: int | None
    debugcon: str

    @property
    def ok(self) -> bool:
        return self.returncode == EXIT_OK and self.hole_reads is not None


def image() -> Path:
    """The flat multiboot image, built now if the cache has no copy of these sources."""
    return flat_binary("the multiboot guest", "multiboot/ecam-scan.bin", SRC, CFLAGS,
                       [str(SRC / "boot.S"), str(SRC / "ecam_scan.c")])


def qemu_command(pages: int, debugcon: str, name: str = "kvmhole-multiboot",
                 ram: bool = False) -> list[str]:
    """QEMU's command line; debugcon is a chardev ("file:PATH", "stdio"); ram=True scans
    RAM instead of the hole (the per-access baseline)."""
    if shutil.which(QEMU) is None:
        raise KvmholeError(f"{QEMU} is missing: apt-get install qemu-system-x86")
    return [QEMU, "-name", name, "-M", "q35", "-accel", "kvm", "-m", "64", "-display", "none",
            "-serial", "none", "-monitor", "none", "-no-reboot", "-kernel", str(image()),
            "-append", f"pages={pages} ram={int(ram)}", "-debugcon", debugcon,
            "-device", "isa-debug-exit,iobase=0xf4,iosize=1"]


def start_qemu(pages: int, debugcon: Path, name: str = "kvmhole-multiboot") -> subprocess.Popen:
    """Start QEMU on the scanner; the Popen's pid is the VMM's (for -p and --hole-range)."""
    return subprocess.Popen(qemu_command(pages, f"file:{debugcon}", name), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen, debugcon: Path, timeout: float = 120) -> QemuResult:
    _, err = process.communicate(timeout=timeout)
    text = debugcon.read_bytes() if debugcon.exists() else b""
    report = _REPORT.search(text)
    result = QemuResult(process.pid, process.returncode,
                        int(report[1]) if report else None, int(report[2]) if report else None,
                        text.decode(errors="replace"))
    if not result.ok:
        raise KvmholeError(f"QEMU multiboot guest failed (exit {process.returncode}): "
                           f"{err.decode(errors='replace').strip()[-500:]} {result.debugcon!r}")
    return result


def run_qemu(pages: int = 8192, name: str = "kvmhole-multiboot",
             timeout: float = 120) -> QemuResult:
    """Boot the scanner on QEMU q35 and return its own counts."""
    with tempfile.TemporaryDirectory() as tmp:
        debugcon = Path(tmp) / "debugcon.txt"
        return finish(start_qemu(pages, debugcon, name), debugcon, timeout)
