"""Where a Linux boot puts things in guest-physical memory, and the e820 map that tells
the kernel which memory is RAM: all of it below 1 MiB is the VMM's choice; the kernel
goes where it prefers (its pref_address), the initramfs at the top of RAM."""

from dataclasses import dataclass

from kvmhole.vmm.memmap import PAGE, MemoryMap, Range

GDT_ADDR = 0x500
ZERO_PAGE_ADDR = 0x7000  # struct boot_params, %rsi at the 64-bit entry
STACK_TOP = 0x8FF0  # the decompressor sets its own stack at once; this one is for its call
PAGE_TABLES_ADDR = 0x9000  # identity map of the first 4 GiB: PML4, PDPT, 4 directories
CMDLINE_ADDR = 0x20000
LOW_RAM_END = 0x9F000  # above it, the classic EBDA, VGA and BIOS areas: reserved
ACPI_ADDR = 0xE0000  # RSDP first: where a BIOS leaves it, found by scanning too
FIRMWARE = Range(LOW_RAM_END, 0x10_0000)
RESET_VECTOR = 0xF_FFF0  # F000:FFF0, where a CPU reset (or Linux's BIOS reboot) starts
HIGH_RAM_START = 0x10_0000
IDENTITY_MAPPED = 4 << 30  # the entry's page tables cover the kernel, initrd and tables

E820_RAM, E820_RESERVED = 1, 2


@dataclass(frozen=True)
class E820Entry:
    range: Range
    type: int


def e820(memory_map: MemoryMap) -> list[E820Entry]:
    """The kernel's view of the map: RAM below the firmware area and from 1 MiB up,
    the firmware area (ACPI tables) and the ECAM window reserved."""
    return [
        E820Entry(Range(0, LOW_RAM_END), E820_RAM),
        E820Entry(FIRMWARE, E820_RESERVED),
        E820Entry(Range(HIGH_RAM_START, memory_map.ram.end), E820_RAM),
        E820Entry(memory_map.ecam, E820_RESERVED),
    ]


def initrd_addr(ram_end: int, size: int, addr_max: int) -> int:
    """The initramfs at the top of RAM (below what the kernel can reach), page aligned."""
    return (min(ram_end, addr_max + 1) - size) & -PAGE
