"""Guest programs: readable sources in src/, built with gcc/as/ld on first use and cached."""

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kvmhole.errors import ConfigError, KvmholeError
from kvmhole.guests import protocol

SRC = Path(__file__).parent / "src"

CFLAGS = [
    "-m64", "-O2", "-std=gnu11", "-Wall", "-Werror", "-ffreestanding", "-fno-pic", "-fno-pie",
    "-no-pie", "-fno-stack-protector", "-mno-red-zone", "-mgeneral-regs-only",
    "-fno-asynchronous-unwind-tables", "-nostdlib", "-static", "-Wl,--build-id=none",
    f"-Wl,--defsym=KH_LOAD_ADDR={protocol.LOAD_ADDR:#x}", "-Wl,-T," + str(SRC / "guest.ld"),
]


@dataclass(frozen=True)
class Guest:
    name: str
    source: str
    summary: str
    finishes: bool = True


GUESTS = {
    g.name: g
    for g in (
        Guest("ecam-scan", "ecam_scan.c",
              "read the vendor ID of every bus/device/function until N hole reads"),
        Guest("hole-rw", "hole_rw.c",
              "the KVM_MEM_PCI_HOLE selftest: reads of every width, writes, RAM, devices"),
        Guest("mixed", "mixed.c",
              "hole reads, device MMIO and port I/O at a steady rate until stopped",
              finishes=False),
        Guest("triple-fault", "triple_fault.c",
              "crashes on purpose (#UD without an IDT) to show how failures are reported"),
    )
}


def get(name: str) -> Guest:
    try:
        return GUESTS[name]
    except KeyError:
        raise ConfigError(f"unknown guest {name!r}; choose one of: {', '.join(GUESTS)}") from None


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(os.environ.get("KVMHOLE_CACHE", Path(base) / "kvmhole"))


def _sources_digest() -> str:
    digest = hashlib.sha256(" ".join(CFLAGS).encode())
    for path in sorted(SRC.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def image(name: str) -> bytes:
    """The flat binary of guest `name`, built now if the cache has no copy of these sources."""
    guest = get(name)
    target = cache_dir() / "guests" / _sources_digest() / f"{guest.name}.bin"
    if not target.exists():
        _build(guest, target)
    return target.read_bytes()


def _build(guest: Guest, target: Path) -> None:
    for tool in ("gcc", "objcopy"):
        if shutil.which(tool) is None:
            raise KvmholeError(f"building guests needs {tool}: apt-get install gcc binutils")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        elf = Path(tmp) / "guest.elf"
        flat = Path(tmp) / "guest.bin"
        steps = (
            ["gcc", *CFLAGS, "-I", str(SRC), "-o", str(elf), str(SRC / "start.S"),
             str(SRC / guest.source)],
            ["objcopy", "-O", "binary", str(elf), str(flat)],
        )
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode != 0:
                raise KvmholeError(
                    f"building guest {guest.name} failed: {done.stderr.strip()[-2000:]}"
                )
        os.replace(flat, target)  # atomic: a concurrent build never sees half a file
