"""A Linux machine's firmware, parsed back without KVM: the ACPI tables (checksums,
the RSDP -> XSDT -> FADT/MADT/MCFG chain, the DSDT through iasl's disassembler), the
zero page and its e820 map, and the 16550 as Linux's 8250 driver probes it."""

import ctypes
import subprocess

import pytest

from kvmhole.errors import ConfigError
from kvmhole.vmm import power
from kvmhole.vmm.blueprint import Blueprint, MachineConfig
from kvmhole.vmm.boot import acpi, bzimage, layout
from kvmhole.vmm.boot.linux import LINUX_LAYOUT
from kvmhole.vmm.boot.zeropage import (
    ACPI_RSDP_ADDR_OFFSET,
    E820_ENTRIES_OFFSET,
    E820_TABLE_OFFSET,
    BootE820Entry,
    zero_page,
)
from kvmhole.vmm.pci import PciShape
from kvmhole.vmm.uart import IER, IIR, LSR, MCR, MSR, THR, Uart16550

pytestmark = pytest.mark.pure

BASE = layout.ACPI_ADDR


def _tables(blob: bytes) -> dict[bytes, bytes]:
    """Walk the tables from the RSDP, as a kernel does: signature -> table bytes."""
    rsdp = acpi.Rsdp.from_buffer_copy(blob)
    assert rsdp.signature == b"RSD PTR " and rsdp.revision == 2
    assert sum(blob[:20]) % 256 == 0 and sum(blob[:ctypes.sizeof(acpi.Rsdp)]) % 256 == 0
    found = {}

    def table(addr: int) -> bytes:
        header = acpi.Header.from_buffer_copy(blob, addr - BASE)
        data = blob[addr - BASE:addr - BASE + header.length]
        assert sum(data) % 256 == 0, f"{header.signature} checksum"
        found[header.signature] = data
        return data

    xsdt = table(rsdp.xsdt_address)
    for at in range(ctypes.sizeof(acpi.Header), len(xsdt), 8):
        table(int.from_bytes(xsdt[at:at + 8], "little"))
    table(acpi.Fadt.from_buffer_copy(found[b"FACP"]).x_dsdt)
    return found


@pytest.mark.parametrize("buses", [1, 256])
def test_the_tables_describe_the_pci_shape(buses):
    shape = PciShape(0xB000_0000, buses, type1=False)
    found = _tables(acpi.acpi_tables(BASE, shape))
    assert set(found) == {b"XSDT", b"FACP", b"APIC", b"MCFG", b"DSDT"}
    fadt = acpi.Fadt.from_buffer_copy(found[b"FACP"])
    assert fadt.flags & acpi.FADT_HW_REDUCED_ACPI
    assert fadt.sleep_control_reg.address == power.SLEEP_CONTROL_PORT
    assert fadt.reset_reg.address == power.RESET_PORT
    window = acpi.McfgAllocation.from_buffer_copy(found[b"MCFG"], ctypes.sizeof(acpi.McfgFixed))
    assert (window.base_address, window.start_bus, window.end_bus) == (0xB000_0000, 0, buses - 1)


def test_iasl_reads_back_the_dsdt(tmp_path):
    shape = PciShape(0xB000_0000, 256, type1=False)
    (tmp_path / "dsdt.dat").write_bytes(_tables(acpi.acpi_tables(BASE, shape))[b"DSDT"])
    subprocess.run(["iasl", "-d", "dsdt.dat"], cwd=tmp_path, check=True, capture_output=True)
    source = (tmp_path / "dsdt.dsl").read_text()
    for expected in ('EisaId ("PNP0A08")', "Name (_CBA, 0xB0000000)",
                     'EisaId ("PNP0C02")', "0xB0000000,         // Address Base",
                     "0x10000000,         // Address Length",
                     "0x00FF,             // Range Maximum",
                     'EisaId ("PNP0501")', "Name (_S5, Package"):
        assert expected in source, expected


def test_the_zero_page_carries_the_e820_map_and_the_loader_fields():
    plan = Blueprint(MachineConfig(guest="linux", hole="exit", buses=256))
    boot = plan.linux
    page = zero_page(boot.image, layout.CMDLINE_ADDR, 0x0F00_0000, 4096, BASE,
                     layout.e820(plan.map))
    header = bzimage.SetupHeader.from_buffer_copy(page, bzimage.SETUP_HEADER_OFFSET)
    assert header.boot_flag == bzimage.BOOT_FLAG and header.type_of_loader == 0xFF
    assert (header.cmd_line_ptr, header.ramdisk_image, header.ramdisk_size) == \
        (layout.CMDLINE_ADDR, 0x0F00_0000, 4096)
    assert int.from_bytes(page[ACPI_RSDP_ADDR_OFFSET:ACPI_RSDP_ADDR_OFFSET + 8], "little") == BASE
    entries = [BootE820Entry.from_buffer_copy(page, E820_TABLE_OFFSET + i * 20)
               for i in range(page[E820_ENTRIES_OFFSET])]
    spans = [(e.addr, e.addr + e.size, e.type) for e in entries]
    assert (0x10_0000, 256 << 20, layout.E820_RAM) in spans
    assert (0xB000_0000, 0xC000_0000, layout.E820_RESERVED) in spans  # the ECAM window
    assert boot.cmdline.startswith("console=ttyS0 quiet")
    assert LINUX_LAYOUT.gdt[0x10:0x20] != bytes(16)  # __BOOT_CS and __BOOT_DS are there


def test_a_file_that_is_no_kernel_is_one_config_error(tmp_path):
    (tmp_path / "vmlinuz").write_bytes(b"\0" * 8192)
    with pytest.raises(ConfigError, match="not an x86 Linux kernel image"):
        Blueprint(MachineConfig(guest="linux", hole="exit", kernel=str(tmp_path / "vmlinuz")))


def test_the_uart_passes_the_8250_probes_and_interrupts_when_empty():
    sent, levels = bytearray(), []

    class Sink:
        write, flush = sent.extend, staticmethod(lambda: None)

    uart = Uart16550(Sink())
    uart.set_irq = levels.append

    def reg(offset, value=None):
        if value is None:
            return uart.read(uart.base + offset, 1)[0]
        uart.write(uart.base + offset, bytes([value]))

    reg(MCR, 0x10 | 0x0A)  # loopback with RTS and OUT2: CTS and DCD come back
    assert reg(MSR) & 0xF0 == 0x90
    reg(MCR, 0)
    assert reg(LSR) & 0x60 == 0x60
    reg(IER, 0x02)  # THRI enabled while the transmitter is empty
    assert levels == [True] and reg(IIR) & 0x0F == 0x02 and levels == [True, False]
    reg(THR, ord("k"))
    assert sent == b"k" and levels[-1] is True
