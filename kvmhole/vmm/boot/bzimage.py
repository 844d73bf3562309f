"""A bzImage and its setup header (Documentation/arch/x86/boot.rst), checked for what
the 64-bit boot protocol needs. A file that is no such kernel is one ConfigError."""

import ctypes
from dataclasses import dataclass
from pathlib import Path

from kvmhole.errors import ConfigError

SETUP_HEADER_OFFSET = 0x1F1
BOOT_FLAG, HDRS = 0xAA55, int.from_bytes(b"HdrS", "little")
MIN_VERSION = 0x020C  # 2.12: xloadflags says whether the 64-bit entry exists
LOADED_HIGH = 0x01  # loadflags: the protected-mode kernel runs at 1 MiB or above
XLF_KERNEL_64 = 0x01  # xloadflags: startup_64 at the load address + 0x200
ENTRY_64_OFFSET = 0x200
LOADER_UNDEFINED = 0xFF  # type_of_loader: a boot loader without an assigned ID


class SetupHeader(ctypes.LittleEndianStructure):
    """struct setup_header, at 0x1f1 in the image and in the zero page alike."""

    _pack_ = 1
    _fields_ = [
        ("setup_sects", ctypes.c_uint8), ("root_flags", ctypes.c_uint16),
        ("syssize", ctypes.c_uint32), ("ram_size", ctypes.c_uint16),
        ("vid_mode", ctypes.c_uint16), ("root_dev", ctypes.c_uint16),
        ("boot_flag", ctypes.c_uint16), ("jump", ctypes.c_uint16),
        ("header", ctypes.c_uint32), ("version", ctypes.c_uint16),
        ("realmode_swtch", ctypes.c_uint32), ("start_sys_seg", ctypes.c_uint16),
        ("kernel_version", ctypes.c_uint16), ("type_of_loader", ctypes.c_uint8),
        ("loadflags", ctypes.c_uint8), ("setup_move_size", ctypes.c_uint16),
        ("code32_start", ctypes.c_uint32), ("ramdisk_image", ctypes.c_uint32),
        ("ramdisk_size", ctypes.c_uint32), ("bootsect_kludge", ctypes.c_uint32),
        ("heap_end_ptr", ctypes.c_uint16), ("ext_loader_ver", ctypes.c_uint8),
        ("ext_loader_type", ctypes.c_uint8), ("cmd_line_ptr", ctypes.c_uint32),
        ("initrd_addr_max", ctypes.c_uint32), ("kernel_alignment", ctypes.c_uint32),
        ("relocatable_kernel", ctypes.c_uint8), ("min_alignment", ctypes.c_uint8),
        ("xloadflags", ctypes.c_uint16), ("cmdline_size", ctypes.c_uint32),
        ("hardware_subarch", ctypes.c_uint32), ("hardware_subarch_data", ctypes.c_uint64),
        ("payload_offset", ctypes.c_uint32), ("payload_length", ctypes.c_uint32),
        ("setup_data", ctypes.c_uint64), ("pref_address", ctypes.c_uint64),
        ("init_size", ctypes.c_uint32), ("handover_offset", ctypes.c_uint32),
        ("kernel_info_offset", ctypes.c_uint32),
    ]


@dataclass(frozen=True)
class BzImage:
    path: Path
    data: bytes

    @property
    def header(self) -> SetupHeader:
        return SetupHeader.from_buffer_copy(self.data, SETUP_HEADER_OFFSET)

    @property
    def header_bytes(self) -> bytes:
        """The setup header as the image has it: 0x1f1 up to the end the jump at 0x200
        gives (what a boot loader copies into the zero page)."""
        end = 0x202 + self.data[0x201]
        return self.data[SETUP_HEADER_OFFSET:end]

    @property
    def kernel(self) -> bytes:
        """The protected-mode kernel: everything after the real-mode setup sectors."""
        sects = self.header.setup_sects or 4  # 0 means 4, for ancient images
        return self.data[(sects + 1) * 512:]


def load(path: Path) -> BzImage:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read the kernel {path}: {error.strerror}") from None
    if len(data) < 0x1000 or SetupHeader.from_buffer_copy(
            data, SETUP_HEADER_OFFSET).boot_flag != BOOT_FLAG:
        raise ConfigError(f"{path} is not an x86 Linux kernel image (bzImage)")
    header = SetupHeader.from_buffer_copy(data, SETUP_HEADER_OFFSET)
    if header.header != HDRS or header.version < MIN_VERSION:
        raise ConfigError(f"{path}: boot protocol {header.version >> 8}.{header.version & 0xFF}"
                          " is too old: kvmhole needs 2.12 or later (Linux 3.8+)")
    if not header.loadflags & LOADED_HIGH or not header.xloadflags & XLF_KERNEL_64:
        raise ConfigError(f"{path} has no 64-bit entry point: kvmhole boots x86-64 kernels")
    return BzImage(Path(path), data)
