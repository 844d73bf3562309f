"""Guest programs: readable sources in src/, built with gcc/as/ld on first use and cached."""

from dataclasses import dataclass
from pathlib import Path

from kvmhole.errors import ConfigError
from kvmhole.guests import protocol
from kvmhole.guests.toolchain import flat_binary

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
    boots_linux: bool = False  # a Linux kernel (the boot protocol), not a flat binary


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
        Guest("linux", "", "a stock x86-64 Linux kernel booted into a busybox initramfs "
              "that reports and powers off", boots_linux=True),
    )
}


def get(name: str) -> Guest:
    try:
        return GUESTS[name]
    except KeyError:
        raise ConfigError(f"unknown guest {name!r}; choose one of: {', '.join(GUESTS)}") from None


def image(name: str) -> bytes:
    """The flat binary of guest `name`, built now if the cache has no copy of these sources."""
    guest = get(name)
    return flat_binary(f"guest {guest.name}", f"guests/{guest.name}.bin", SRC, CFLAGS,
                       ["-I", str(SRC), str(SRC / "start.S"), str(SRC / guest.source)]
                       ).read_bytes()
