"""Hole strategies: how the PCI hole is backed, and so where its reads are served.

| strategy | hole memslots                         | a hole read is served   | host memory |
| native   | KVM_MEM_PCI_HOLE (the 2020 patch)     | in KVM (emulated)       | none        |
| alias    | read-only, all aliasing one 0xff page | in KVM (mapped)         | one page    |
| dense    | read-only, real 0xff memory           | in KVM (mapped)         | whole hole  |
| exit     | none                                  | by this VMM, per access | none        |
Writes to the hole always exit to the VMM, which counts and discards them.
"""

from functools import cache

from kvmhole.errors import ConfigError
from kvmhole.kvm import MEM_READONLY, HltExit, IoExit, KvmError, MmioExit, System
from kvmhole.vmm import hostmem
from kvmhole.vmm.memmap import MemoryMap
from kvmhole.vmm.slots import Slot, alias_window_size

STRATEGIES = ("native", "alias", "dense", "exit")
CHOICES = ("auto", *STRATEGIES)

# The patch's memslot flag. Mainline has since reused bit 2 for
# KVM_MEM_GUEST_MEMFD and the patch's capability numbers (183/186/187) for other
# features, so support is detected by behaviour, never by KVM_CHECK_EXTENSION.
KVM_MEM_PCI_HOLE = 1 << 2


class HoleBacking:
    """Host memory a strategy keeps alive for as long as its slots exist."""

    def __init__(self):
        self.mappings: list[hostmem.Mapping] = []

    def close(self) -> None:
        for mapping in self.mappings:
            mapping.close()
        self.mappings.clear()


def install(strategy: str, vm, memory_map: MemoryMap, slots: list[Slot]) -> HoleBacking:
    """Create the hole's memslots for `strategy` (the RAM slot is the machine's)."""
    backing = HoleBacking()
    hole_slots = [s for s in slots if s.kind == strategy]
    try:
        if strategy == "alias":
            window = hostmem.AliasWindow(alias_window_size(memory_map))
            backing.mappings.append(window)
            for s in hole_slots:
                vm.set_user_memory_region(s.slot, s.gpa.start, s.gpa.size, window.addr,
                                          MEM_READONLY)
        elif strategy == "dense":
            for s in hole_slots:
                dense = hostmem.dense_all_ones(s.gpa.size)
                backing.mappings.append(dense)
                vm.set_user_memory_region(s.slot, s.gpa.start, s.gpa.size, dense.addr,
                                          MEM_READONLY)
        elif strategy == "native":
            for s in hole_slots:
                vm.set_user_memory_region(s.slot, s.gpa.start, s.gpa.size, 0, KVM_MEM_PCI_HOLE)
    except BaseException:
        backing.close()
        raise
    return backing


# A real-mode probe: mov ax,0x1000; mov ds,ax; mov eax,[0]; out 0x10,eax; hlt
# It reads GPA 0x10000, where the probe puts a 4 KiB slot with the patch's flag.
_NATIVE_PROBE_CODE = bytes.fromhex("b800108ed866a1000066e710f4")
_NATIVE_PROBE_GPA = 0x10000


@cache
def native_support() -> tuple[bool, str]:
    """(supported, why not): does this kernel accept and serve KVM_MEM_PCI_HOLE slots?"""
    with System() as system:
        vm = system.create_vm()
        ram = hostmem.anonymous(0x1000, "the native probe's RAM")
        try:
            try:
                vm.set_user_memory_region(1, _NATIVE_PROBE_GPA, 0x1000, 0, KVM_MEM_PCI_HOLE)
            except KvmError as error:
                return False, (
                    "this kernel does not support KVM_MEM_PCI_HOLE (the 2020 patch never "
                    f"reached mainline): a memslot with flag {KVM_MEM_PCI_HOLE:#x} and no "
                    f"backing was refused with {error.strerror_name}"
                )
            ram.buffer(0, len(_NATIVE_PROBE_CODE))[:] = _NATIVE_PROBE_CODE
            vm.set_user_memory_region(0, 0, 0x1000, ram.addr)
            vcpu = vm.create_vcpu()
            sregs = vcpu.get_sregs()
            sregs.cs.base, sregs.cs.selector = 0, 0
            vcpu.set_sregs(sregs)
            regs = vcpu.get_regs()
            regs.rip, regs.rflags = 0, 2
            vcpu.set_regs(regs)
            first = vcpu.run()
            if isinstance(first, MmioExit):
                return False, "a KVM_MEM_PCI_HOLE slot was accepted, but its read exited"
            if not (isinstance(first, IoExit) and first.value == 0xFFFFFFFF):
                return False, f"a KVM_MEM_PCI_HOLE read did not return all-ones ({first})"
            if not isinstance(vcpu.run(), HltExit):
                return False, "the KVM_MEM_PCI_HOLE probe guest did not halt"
            return True, ""
        finally:
            vm.close()
            ram.close()


def resolve(choice: str) -> str:
    """'auto' -> the best strategy this host supports; otherwise check the one asked for."""
    if choice not in CHOICES:
        raise ConfigError(f"unknown hole strategy {choice!r}; choose one of {', '.join(CHOICES)}")
    if choice == "auto":
        return "native" if native_support()[0] else "alias"
    if choice == "native":
        supported, why = native_support()
        if not supported:
            raise ConfigError(f"--hole native: {why}; use --hole alias for the same reads "
                              "served in the kernel without it")
    return choice
