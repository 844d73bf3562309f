"""Put a vCPU straight into 64-bit long mode with identity-mapped 2 MiB pages.

The guest starts at its first instruction with paging on (2 MiB pages: KVM
hosts that emulate guests fault 1 GiB pages with a reserved-bit #PF), so guest
code needs no mode-switching trampoline.
No IDT is loaded: any guest exception becomes a triple fault, which the run
loop reports as a crash rather than letting a broken guest spin.
"""

import struct
from dataclasses import dataclass

from kvmhole.guests import protocol

PTE_PRESENT, PTE_WRITE, PTE_LARGE = 0x1, 0x2, 0x80
CR0_PE, CR0_ET, CR0_NE, CR0_WP, CR0_PG = 0x1, 0x10, 0x20, 0x10000, 0x80000000
CR4_PAE = 0x20
EFER_LME, EFER_LMA = 0x100, 0x400
GIB, TWO_MIB, PAGE = 1 << 30, 2 << 20, 4096

CODE_64, DATA_FLAT = 0x00AF9A000000FFFF, 0x00CF92000000FFFF


@dataclass(frozen=True)
class Layout:
    """Where the GDT and page tables go, and the selectors of the code and data segments."""

    gdt_addr: int
    page_tables_addr: int
    code_selector: int
    data_selector: int

    @property
    def gdt(self) -> bytes:
        entries = [0] * (max(self.code_selector, self.data_selector) // 8 + 1)
        entries[self.code_selector // 8] = CODE_64
        entries[self.data_selector // 8] = DATA_FLAT
        return struct.pack(f"<{len(entries)}Q", *entries)


# kvmhole's own guests: null, 64-bit code (selector 0x08), flat data (selector 0x10)
GUEST_LAYOUT = Layout(protocol.GDT_ADDR, protocol.PAGE_TABLES_ADDR, 0x08, 0x10)


def page_tables(map_end: int, base: int = protocol.PAGE_TABLES_ADDR) -> bytes:
    """PML4 + one PDPT + one page directory per GiB, identity-mapping [0, map_end)."""
    gibs = max(1, -(-map_end // GIB))
    pml4 = struct.pack("<Q", (base + PAGE) | PTE_PRESENT | PTE_WRITE).ljust(PAGE, b"\0")
    pdpt = b"".join(
        struct.pack("<Q", (base + (2 + i) * PAGE) | PTE_PRESENT | PTE_WRITE) for i in range(gibs)
    ).ljust(PAGE, b"\0")
    directories = b"".join(
        struct.pack("<Q", (i * GIB + j * TWO_MIB) | PTE_PRESENT | PTE_WRITE | PTE_LARGE)
        for i in range(gibs)
        for j in range(512)
    )
    return pml4 + pdpt + directories


def _segment(seg, selector: int, code: bool) -> None:
    seg.base, seg.limit, seg.selector = 0, 0xFFFFFFFF, selector
    seg.present, seg.dpl, seg.s, seg.g = 1, 0, 1, 1
    seg.type = 0xB if code else 0x3  # execute/read accessed : read/write accessed
    seg.l, seg.db = (1, 0) if code else (0, 1)


def write_boot_tables(ram, map_end: int, layout: Layout = GUEST_LAYOUT) -> None:
    """GDT and page tables into guest RAM (a writable buffer starting at GPA 0)."""
    tables, gdt = page_tables(map_end, layout.page_tables_addr), layout.gdt
    start = layout.page_tables_addr
    ram[layout.gdt_addr : layout.gdt_addr + len(gdt)] = gdt
    ram[start : start + len(tables)] = tables


def enter_long_mode(vcpu, cpuid, entry: int, stack_top: int, layout: Layout = GUEST_LAYOUT,
                    rsi: int = 0) -> None:
    """Long mode at `entry` with interrupts off; rsi: the Linux zero page's address."""
    vcpu.set_cpuid2(cpuid)
    sregs = vcpu.get_sregs()
    _segment(sregs.cs, layout.code_selector, code=True)
    for seg in (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss):
        _segment(seg, layout.data_selector, code=False)
    sregs.gdt.base, sregs.gdt.limit = layout.gdt_addr, len(layout.gdt) - 1
    sregs.idt.base, sregs.idt.limit = 0, 0
    sregs.cr3 = layout.page_tables_addr
    sregs.cr4 = CR4_PAE
    sregs.cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_WP | CR0_PG
    sregs.efer = EFER_LME | EFER_LMA
    vcpu.set_sregs(sregs)
    regs = vcpu.get_regs()
    regs.rip, regs.rsp, regs.rflags, regs.rsi = entry, stack_top, 0x2, rsi
    vcpu.set_regs(regs)
