"""ACPI tables for a hardware-reduced x86 machine, built from its PCI shape: RSDP ->
XSDT -> FADT (-> DSDT, compiled from dsdt.asl by iasl), MADT, MCFG.

Each table is a ctypes structure named field by field after the ACPI 6 spec, so the
bytes say what they are; acpi_tables() lays them out at a guest-physical address and
fills in lengths, pointers and checksums.
"""

import ctypes

from kvmhole.vmm import power
from kvmhole.vmm.boot.dsdt import compile_dsdt
from kvmhole.vmm.pci import PciShape

OEM_ID, OEM_TABLE_ID, CREATOR_ID = b"KVMHOL", b"KVMHOLE ", b"KVMH"
# KVM's in-kernel irqchip puts these where a PC has them.
LOCAL_APIC_ADDR, IOAPIC_ADDR, IOAPIC_ID = 0xFEE0_0000, 0xFEC0_0000, 0
RSDP_REVISION = 2  # ACPI 2.0+: the RSDP points at an XSDT
FADT_REVISION, FADT_MINOR = 6, 5  # ACPI 6.5
FADT_HW_REDUCED_ACPI, FADT_RESET_REG_SUP = 1 << 20, 1 << 10
# IA-PC boot architecture flags: no VGA, no CMOS RTC; no 8042 (bit 1 clear)
BOOT_ARCH_VGA_NOT_PRESENT, BOOT_ARCH_CMOS_RTC_NOT_PRESENT = 1 << 2, 1 << 5
SYSTEM_IO = 1  # generic address space ID
ACCESS_BYTE = 1
MADT_LOCAL_APIC, MADT_IOAPIC = 0, 1
LOCAL_APIC_ENABLED = 1
HYPERVISOR_ID = int.from_bytes(b"KVMHOLE\0", "little")


class Header(ctypes.LittleEndianStructure):
    _pack_ = 1
    _fields_ = [("signature", ctypes.c_char * 4), ("length", ctypes.c_uint32),
                ("revision", ctypes.c_uint8), ("checksum", ctypes.c_uint8),
                ("oem_id", ctypes.c_char * 6), ("oem_table_id", ctypes.c_char * 8),
                ("oem_revision", ctypes.c_uint32), ("creator_id", ctypes.c_char * 4),
                ("creator_revision", ctypes.c_uint32)]


class Gas(ctypes.LittleEndianStructure):
    """Generic Address Structure."""

    _pack_ = 1
    _fields_ = [("space_id", ctypes.c_uint8), ("bit_width", ctypes.c_uint8),
                ("bit_offset", ctypes.c_uint8), ("access_size", ctypes.c_uint8),
                ("address", ctypes.c_uint64)]


def io_byte(port: int) -> Gas:
    return Gas(space_id=SYSTEM_IO, bit_width=8, access_size=ACCESS_BYTE, address=port)


class Rsdp(ctypes.LittleEndianStructure):
    _pack_ = 1
    _fields_ = [("signature", ctypes.c_char * 8), ("checksum", ctypes.c_uint8),
                ("oem_id", ctypes.c_char * 6), ("revision", ctypes.c_uint8),
                ("rsdt_address", ctypes.c_uint32), ("length", ctypes.c_uint32),
                ("xsdt_address", ctypes.c_uint64), ("extended_checksum", ctypes.c_uint8),
                ("reserved", ctypes.c_uint8 * 3)]


class Fadt(ctypes.LittleEndianStructure):
    """Fixed ACPI Description Table, revision 6. A hardware-reduced machine leaves every
    fixed-hardware block (PM1, PM timer, GPE, SMI) zero."""

    _pack_ = 1
    _fields_ = [
        ("header", Header), ("firmware_ctrl", ctypes.c_uint32), ("dsdt", ctypes.c_uint32),
        ("reserved0", ctypes.c_uint8), ("preferred_pm_profile", ctypes.c_uint8),
        ("sci_int", ctypes.c_uint16), ("smi_cmd", ctypes.c_uint32),
        ("acpi_enable", ctypes.c_uint8), ("acpi_disable", ctypes.c_uint8),
        ("s4bios_req", ctypes.c_uint8), ("pstate_cnt", ctypes.c_uint8),
        ("pm1a_evt_blk", ctypes.c_uint32), ("pm1b_evt_blk", ctypes.c_uint32),
        ("pm1a_cnt_blk", ctypes.c_uint32), ("pm1b_cnt_blk", ctypes.c_uint32),
        ("pm2_cnt_blk", ctypes.c_uint32), ("pm_tmr_blk", ctypes.c_uint32),
        ("gpe0_blk", ctypes.c_uint32), ("gpe1_blk", ctypes.c_uint32),
        ("pm1_evt_len", ctypes.c_uint8), ("pm1_cnt_len", ctypes.c_uint8),
        ("pm2_cnt_len", ctypes.c_uint8), ("pm_tmr_len", ctypes.c_uint8),
        ("gpe0_blk_len", ctypes.c_uint8), ("gpe1_blk_len", ctypes.c_uint8),
        ("gpe1_base", ctypes.c_uint8), ("cst_cnt", ctypes.c_uint8),
        ("p_lvl2_lat", ctypes.c_uint16), ("p_lvl3_lat", ctypes.c_uint16),
        ("flush_size", ctypes.c_uint16), ("flush_stride", ctypes.c_uint16),
        ("duty_offset", ctypes.c_uint8), ("duty_width", ctypes.c_uint8),
        ("day_alrm", ctypes.c_uint8), ("mon_alrm", ctypes.c_uint8),
        ("century", ctypes.c_uint8), ("iapc_boot_arch", ctypes.c_uint16),
        ("reserved1", ctypes.c_uint8), ("flags", ctypes.c_uint32),
        ("reset_reg", Gas), ("reset_value", ctypes.c_uint8),
        ("arm_boot_arch", ctypes.c_uint16), ("minor_version", ctypes.c_uint8),
        ("x_firmware_ctrl", ctypes.c_uint64), ("x_dsdt", ctypes.c_uint64),
        ("x_pm1a_evt_blk", Gas), ("x_pm1b_evt_blk", Gas), ("x_pm1a_cnt_blk", Gas),
        ("x_pm1b_cnt_blk", Gas), ("x_pm2_cnt_blk", Gas), ("x_pm_tmr_blk", Gas),
        ("x_gpe0_blk", Gas), ("x_gpe1_blk", Gas),
        ("sleep_control_reg", Gas), ("sleep_status_reg", Gas),
        ("hypervisor_vendor_id", ctypes.c_uint64),
    ]


class MadtFixed(ctypes.LittleEndianStructure):
    _pack_ = 1
    _fields_ = [("header", Header), ("local_apic_address", ctypes.c_uint32),
                ("flags", ctypes.c_uint32)]


class MadtLocalApic(ctypes.LittleEndianStructure):
    _pack_ = 1
    _fields_ = [("type", ctypes.c_uint8), ("length", ctypes.c_uint8),
                ("processor_uid", ctypes.c_uint8), ("apic_id", ctypes.c_uint8),
                ("flags", ctypes.c_uint32)]


class MadtIoApic(ctypes.LittleEndianStructure):
    _pack_ = 1
    _fields_ = [("type", ctypes.c_uint8), ("length", ctypes.c_uint8),
                ("ioapic_id", ctypes.c_uint8), ("reserved", ctypes.c_uint8),
                ("address", ctypes.c_uint32), ("gsi_base", ctypes.c_uint32)]


class McfgFixed(ctypes.LittleEndianStructure):
    _pack_ = 1
    _fields_ = [("header", Header), ("reserved", ctypes.c_uint64)]


class McfgAllocation(ctypes.LittleEndianStructure):
    """One ECAM window: config space of buses start_bus..end_bus of a segment."""

    _pack_ = 1
    _fields_ = [("base_address", ctypes.c_uint64), ("segment", ctypes.c_uint16),
                ("start_bus", ctypes.c_uint8), ("end_bus", ctypes.c_uint8),
                ("reserved", ctypes.c_uint32)]


def checksum(data: bytes) -> int:
    """The byte that makes `data` (with it in place of a zero) sum to 0 mod 256."""
    return -sum(data) & 0xFF


def _header(signature: bytes, revision: int) -> Header:
    return Header(signature=signature, revision=revision, oem_id=OEM_ID,
                  oem_table_id=OEM_TABLE_ID, oem_revision=1, creator_id=CREATOR_ID,
                  creator_revision=1)


def _sealed(table: bytearray) -> bytes:
    """Length and checksum filled in (a header at offset 0)."""
    header = Header.from_buffer(table)
    header.length, header.checksum = len(table), 0
    header.checksum = checksum(table)
    return bytes(table)


def fadt(dsdt_addr: int) -> bytes:
    table = Fadt(header=_header(b"FACP", FADT_REVISION), minor_version=FADT_MINOR,
                 dsdt=dsdt_addr, x_dsdt=dsdt_addr,
                 flags=FADT_HW_REDUCED_ACPI | FADT_RESET_REG_SUP,
                 iapc_boot_arch=BOOT_ARCH_VGA_NOT_PRESENT | BOOT_ARCH_CMOS_RTC_NOT_PRESENT,
                 reset_reg=io_byte(power.RESET_PORT), reset_value=power.RESET_VALUE,
                 sleep_control_reg=io_byte(power.SLEEP_CONTROL_PORT),
                 sleep_status_reg=io_byte(power.SLEEP_STATUS_PORT),
                 hypervisor_vendor_id=HYPERVISOR_ID)
    return _sealed(bytearray(table))


def madt(vcpus: int = 1) -> bytes:
    """The local APIC of each vCPU and KVM's IOAPIC (GSIs 0-23). No interrupt source
    overrides: KVM routes ISA IRQ n to IOAPIC pin n, as ACPI assumes without them."""
    entries = b"".join(bytes(MadtLocalApic(type=MADT_LOCAL_APIC, length=8, processor_uid=i,
                                           apic_id=i, flags=LOCAL_APIC_ENABLED))
                       for i in range(vcpus))
    entries += bytes(MadtIoApic(type=MADT_IOAPIC, length=12, ioapic_id=IOAPIC_ID,
                                address=IOAPIC_ADDR, gsi_base=0))
    fixed = MadtFixed(header=_header(b"APIC", 5), local_apic_address=LOCAL_APIC_ADDR)
    return _sealed(bytearray(bytes(fixed) + entries))


def mcfg(shape: PciShape) -> bytes:
    window = McfgAllocation(base_address=shape.ecam_base, segment=0, start_bus=0,
                            end_bus=shape.buses - 1)
    return _sealed(bytearray(bytes(McfgFixed(header=_header(b"MCFG", 1))) + bytes(window)))


def xsdt(tables: list[int]) -> bytes:
    pointers = b"".join(addr.to_bytes(8, "little") for addr in tables)
    return _sealed(bytearray(bytes(_header(b"XSDT", 1)) + pointers))


def rsdp(xsdt_addr: int) -> bytes:
    table = Rsdp(signature=b"RSD PTR ", oem_id=OEM_ID, revision=RSDP_REVISION,
                 length=ctypes.sizeof(Rsdp), xsdt_address=xsdt_addr)
    raw = bytearray(table)
    raw[8] = checksum(raw[:20])  # ACPI 1.0 checksum: the first 20 bytes
    raw[32] = checksum(raw)  # extended checksum: the whole structure
    return bytes(raw)


def _align(addr: int, to: int = 16) -> int:
    return -(-addr // to) * to


def acpi_tables(base: int, shape: PciShape) -> bytes:
    """Every table, laid out from guest-physical `base` (the RSDP first, at `base`)."""
    blob = bytearray(ctypes.sizeof(Rsdp))

    def place(table: bytes) -> int:
        blob.extend(bytes(_align(len(blob)) - len(blob)))
        addr = base + len(blob)
        blob.extend(table)
        return addr

    dsdt_addr = place(compile_dsdt(shape))
    pointers = [place(fadt(dsdt_addr)), place(madt()), place(mcfg(shape))]
    blob[:ctypes.sizeof(Rsdp)] = rsdp(place(xsdt(pointers)))
    return bytes(blob)
