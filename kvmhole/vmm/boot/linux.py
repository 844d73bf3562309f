"""What a Linux boot needs, resolved and checked before any VM exists: the kernel
(default: the Debian image the SVM host boots), the initramfs (default: busybox and
init.sh) and the command line; then how it all goes into guest RAM."""

import stat
from dataclasses import dataclass
from pathlib import Path

from kvmhole.errors import ConfigError, KvmholeError
from kvmhole.svmhost import initramfs
from kvmhole.svmhost.kernel import BUSYBOX
from kvmhole.vmm import longmode, power
from kvmhole.vmm.boot import bzimage, layout
from kvmhole.vmm.boot.acpi import acpi_tables
from kvmhole.vmm.boot.zeropage import zero_page
from kvmhole.vmm.memmap import MemoryMap
from kvmhole.vmm.pci import PciShape

INIT = Path(__file__).with_name("init.sh")
# console on the 16550, no boot chatter, and a panic resets at once (the run ends)
BASE_CMDLINE = "console=ttyS0 quiet panic=-1"
# boot.rst's 64-bit protocol: flat code at __BOOT_CS (0x10), data at __BOOT_DS (0x18)
LINUX_LAYOUT = longmode.Layout(layout.GDT_ADDR, layout.PAGE_TABLES_ADDR, 0x10, 0x18)


def default_kernel() -> Path:
    from kvmhole.svmhost.kernel import kernel_image

    try:
        return kernel_image().vmlinuz
    except KvmholeError as error:
        raise ConfigError(f"no default kernel ({error}): give one with --kernel") from None


def default_initramfs() -> bytes:
    if not BUSYBOX.is_file():
        raise ConfigError(f"the default initramfs needs {BUSYBOX}: apt-get install "
                          "busybox-static, or give one with --initrd")
    executable = stat.S_IFREG | 0o755
    files = {"init": (executable, INIT.read_bytes()),
             "bin/busybox": (executable, BUSYBOX.read_bytes())}
    for directory in ("proc", "sys"):
        files[f"{directory}/.keep"] = (stat.S_IFREG | 0o644, b"")
    return initramfs.archive(files)


@dataclass(frozen=True)
class LinuxBoot:
    image: bzimage.BzImage
    initrd: bytes
    cmdline: str
    acpi: bytes  # every ACPI table, laid out for layout.ACPI_ADDR

    @property
    def load_addr(self) -> int:
        """Where the protected-mode kernel goes: where it prefers to run."""
        return self.image.header.pref_address

    @property
    def entry(self) -> int:
        return self.load_addr + bzimage.ENTRY_64_OFFSET


def resolve(kernel: str | None, initrd: str | None, append: str,
            memory_map: MemoryMap, pci: PciShape) -> LinuxBoot:
    image = bzimage.load(Path(kernel) if kernel else default_kernel())
    if initrd:
        try:
            initrd_data = Path(initrd).read_bytes()
        except OSError as error:
            raise ConfigError(f"cannot read the initrd {initrd}: {error.strerror}") from None
    else:
        initrd_data = default_initramfs()
    cmdline = f"{BASE_CMDLINE} {append}".strip()
    header = image.header
    if len(cmdline) >= header.cmdline_size:
        raise ConfigError(f"the kernel command line is {len(cmdline)} bytes; this kernel "
                          f"takes {header.cmdline_size - 1}")
    tables = acpi_tables(layout.ACPI_ADDR, pci)
    if layout.ACPI_ADDR + len(tables) > layout.FIRMWARE.end:
        raise ConfigError("the ACPI tables outgrew the firmware area")
    boot = LinuxBoot(image, initrd_data, cmdline, tables)
    kernel_end = boot.load_addr + max(header.init_size, len(image.kernel))
    initrd_at = layout.initrd_addr(memory_map.ram.end, len(initrd_data), header.initrd_addr_max)
    if boot.load_addr < layout.HIGH_RAM_START or kernel_end > initrd_at:
        raise ConfigError(f"{memory_map.ram.size >> 20} MiB of RAM is too little for this "
                          f"kernel ({kernel_end >> 20} MiB) and initrd "
                          f"({len(initrd_data) >> 20} MiB): give more with --ram")
    return boot


def load(ram, boot: LinuxBoot, memory_map: MemoryMap) -> None:
    """Kernel, initramfs, command line, ACPI tables, the reset vector's firmware, zero
    page and the entry's page tables into guest RAM (a buffer starting at GPA 0)."""
    kernel, header = boot.image.kernel, boot.image.header
    ram[boot.load_addr:boot.load_addr + len(kernel)] = kernel
    initrd_at = layout.initrd_addr(memory_map.ram.end, len(boot.initrd), header.initrd_addr_max)
    ram[initrd_at:initrd_at + len(boot.initrd)] = boot.initrd
    cmdline = boot.cmdline.encode() + b"\0"
    ram[layout.CMDLINE_ADDR:layout.CMDLINE_ADDR + len(cmdline)] = cmdline
    ram[layout.ACPI_ADDR:layout.ACPI_ADDR + len(boot.acpi)] = boot.acpi
    reset = power.RESET_FIRMWARE
    ram[layout.RESET_VECTOR:layout.RESET_VECTOR + len(reset)] = reset
    page = zero_page(boot.image, layout.CMDLINE_ADDR, initrd_at, len(boot.initrd),
                     layout.ACPI_ADDR, layout.e820(memory_map))
    ram[layout.ZERO_PAGE_ADDR:layout.ZERO_PAGE_ADDR + len(page)] = page
    longmode.write_boot_tables(ram, layout.IDENTITY_MAPPED, LINUX_LAYOUT)
