"""struct boot_params, the zero page (Documentation/arch/x86/zero-page.rst): the setup
header copied from the image with the loader's fields filled in, the e820 map, and
where the ACPI RSDP is."""

import ctypes

from kvmhole.vmm.boot.bzimage import LOADER_UNDEFINED, SETUP_HEADER_OFFSET, BzImage, SetupHeader
from kvmhole.vmm.boot.layout import E820Entry

ZERO_PAGE_SIZE = 4096
ACPI_RSDP_ADDR_OFFSET = 0x070  # u64, boot protocol 2.14+
E820_ENTRIES_OFFSET = 0x1E8  # u8
E820_TABLE_OFFSET = 0x2D0  # struct boot_e820_entry[E820_MAX_ENTRIES_ZEROPAGE]
E820_MAX_ENTRIES = 128


class BootE820Entry(ctypes.LittleEndianStructure):
    _pack_ = 1
    _fields_ = [("addr", ctypes.c_uint64), ("size", ctypes.c_uint64), ("type", ctypes.c_uint32)]


def zero_page(image: BzImage, cmdline_addr: int, initrd_addr: int, initrd_size: int,
              rsdp_addr: int, e820: list[E820Entry]) -> bytearray:
    page = bytearray(ZERO_PAGE_SIZE)
    header_bytes = image.header_bytes
    page[SETUP_HEADER_OFFSET:SETUP_HEADER_OFFSET + len(header_bytes)] = header_bytes
    header = SetupHeader.from_buffer(page, SETUP_HEADER_OFFSET)
    header.type_of_loader = LOADER_UNDEFINED
    header.cmd_line_ptr = cmdline_addr
    header.ramdisk_image, header.ramdisk_size = initrd_addr, initrd_size
    ctypes.c_uint64.from_buffer(page, ACPI_RSDP_ADDR_OFFSET).value = rsdp_addr
    if len(e820) > E820_MAX_ENTRIES:
        raise ValueError(f"{len(e820)} e820 entries; the zero page holds {E820_MAX_ENTRIES}")
    page[E820_ENTRIES_OFFSET] = len(e820)
    for i, entry in enumerate(e820):
        slot = BootE820Entry.from_buffer(page, E820_TABLE_OFFSET + i * ctypes.sizeof(BootE820Entry))
        slot.addr, slot.size, slot.type = entry.range.start, entry.range.size, entry.type
    return page
