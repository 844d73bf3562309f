"""Put a vCPU straight into 64-bit long mode with identity-mapped 2 MiB pages.

The guest starts at its first instruction with paging on (2 MiB pages: KVM
hosts that emulate guests fault 1 GiB pages with a reserved-bit #PF), so guest
code needs no mode-switching trampoline.
No IDT is loaded: any guest exception becomes a triple fault, which the run
loop reports as a crash rather than letting a broken guest spin.
"""

import struct

from kvmhole.guests import protocol

PTE_PRESENT, PTE_WRITE, PTE_LARGE = 0x1, 0x2, 0x80
CR0_PE, CR0_ET, CR0_NE, CR0_WP, CR0_PG = 0x1, 0x10, 0x20, 0x10000, 0x80000000
CR4_PAE = 0x20
EFER_LME, EFER_LMA = 0x100, 0x400
GIB, TWO_MIB, PAGE = 1 << 30, 2 << 20, 4096

# null, 64-bit code (selector 0x08), flat data (selector 0x10)
GDT = struct.pack("<3Q", 0, 0x00AF9A000000FFFF, 0x00CF92000000FFFF)
CODE_SELECTOR, DATA_SELECTOR = 0x08, 0x10


def page_tables(map_end: int) -> bytes:
    """PML4 + one PDPT + one page directory per GiB, identity-mapping [0, map_end)."""
    gibs = max(1, -(-map_end // GIB))
    base = protocol.PAGE_TABLES_ADDR
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


def write_boot_tables(ram, map_end: int) -> None:
    """GDT and page tables into guest RAM (a writable buffer starting at GPA 0)."""
    tables = page_tables(map_end)
    start = protocol.PAGE_TABLES_ADDR
    ram[protocol.GDT_ADDR : protocol.GDT_ADDR + len(GDT)] = GDT
    ram[start : start + len(tables)] = tables


def enter_long_mode(vcpu, cpuid, entry: int, stack_top: int) -> None:
    vcpu.set_cpuid2(cpuid)
    sregs = vcpu.get_sregs()
    _segment(sregs.cs, CODE_SELECTOR, code=True)
    for seg in (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss):
        _segment(seg, DATA_SELECTOR, code=False)
    sregs.gdt.base, sregs.gdt.limit = protocol.GDT_ADDR, len(GDT) - 1
    sregs.idt.base, sregs.idt.limit = 0, 0
    sregs.cr3 = protocol.PAGE_TABLES_ADDR
    sregs.cr4 = CR4_PAE
    sregs.cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_WP | CR0_PG
    sregs.efer = EFER_LME | EFER_LMA
    vcpu.set_sregs(sregs)
    regs = vcpu.get_regs()
    regs.rip, regs.rsp, regs.rflags = entry, stack_top, 0x2
    vcpu.set_regs(regs)
