"""Hole strategies: how the PCI hole is backed, and so where its reads are served.

Each strategy is one HoleStrategy object in STRATEGIES: its memslot plan, how it
installs them, and the properties every other place (views, bench, tests, README)
reads from it instead of comparing names. Writes to the hole always exit to the
VMM, which counts and discards them. Adding a strategy means adding one object here.
"""

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from kvmhole.errors import ConfigError
from kvmhole.kvm import MEM_READONLY, HltExit, KvmError, MmioExit, PortOut, System
from kvmhole.vmm import hostmem
from kvmhole.vmm.memmap import MemoryMap, Range
from kvmhole.vmm.slots import RAM_SLOT, Slot, alias_window_size, chunks

# The patch's memslot flag, per port (kernel/pci-hole/patches/<series>/0001): bit 2 in
# the 2020 series and the 6.1 port; bit 15 in the 6.12 port, since mainline took bit 2
# for KVM_MEM_GUEST_MEMFD (6.8). Mainline also reused the capability numbers
# (183/186/187), so support, and with it the bit, is learned by behaviour
# (native_flag()), never by KVM_CHECK_EXTENSION. Every other kernel refuses both bits
# in KVM_SET_USER_MEMORY_REGION, so trying one is harmless.
KVM_MEM_PCI_HOLE_BITS = (1 << 2, 1 << 15)


class HoleBacking:
    """Host memory a strategy keeps alive for as long as its slots exist."""

    def __init__(self):
        self.mappings: list[hostmem.Mapping] = []

    def close(self) -> None:
        for mapping in self.mappings:
            mapping.close()
        self.mappings.clear()


@dataclass(frozen=True)
class HoleStrategy:
    name: str
    served_in_kernel: bool  # hole reads are answered by KVM, without an exit to the VMM
    maps_memory: bool       # by mapped pages: on VMX/SVM only a page's first read faults
    needs_patch: bool       # only on a kernel with the 2020 KVM_MEM_PCI_HOLE patch
    memslots: str           # README: the memslots over the hole
    host_memory: str        # README: host memory for a 256 MiB hole
    hole_ranges: Callable[[MemoryMap], list[Range]]  # guest-physical ranges of its slots
    _install: Callable[..., None]  # (vm, slots, memory_map, backing)

    @property
    def served(self) -> str:
        """Where a hole read is served, in words."""
        if not self.served_in_kernel:
            return "by the VMM"
        return "in KVM" if self.maps_memory else "in KVM, emulated"

    def readme_row(self) -> str:
        """This strategy's row of README's strategy table (a test holds README to it)."""
        return f"| `{self.name}` | {self.memslots} | {self.served} | {self.host_memory} |"

    def install(self, vm, memory_map: MemoryMap, slots: list[Slot]) -> HoleBacking:
        """Create the hole's memslots (the RAM slot is the machine's)."""
        backing = HoleBacking()
        try:
            self._install(vm, [s for s in slots if s.kind == self.name], memory_map, backing)
        except BaseException:
            backing.close()
            raise
        return backing


def _install_alias(vm, slots, memory_map, backing) -> None:
    window = hostmem.AliasWindow(alias_window_size(memory_map))
    backing.mappings.append(window)
    for s in slots:
        vm.set_user_memory_region(s.slot, s.gpa.start, s.gpa.size, window.addr, MEM_READONLY)


def _install_dense(vm, slots, memory_map, backing) -> None:
    for s in slots:
        dense = hostmem.dense_all_ones(s.gpa.size)
        backing.mappings.append(dense)
        vm.set_user_memory_region(s.slot, s.gpa.start, s.gpa.size, dense.addr, MEM_READONLY)


def _install_native(vm, slots, memory_map, backing) -> None:
    flag = native_flag()
    for s in slots:
        vm.set_user_memory_region(s.slot, s.gpa.start, s.gpa.size, 0, flag)


def _alias_ranges(memory_map: MemoryMap) -> list[Range]:
    window = alias_window_size(memory_map)
    return [c for run in memory_map.hole_runs for c in chunks(run, window)]


def _install_nothing(vm, slots, memory_map, backing) -> None:
    pass  # every hole access exits to the VMM


STRATEGIES: dict[str, HoleStrategy] = {s.name: s for s in (
    HoleStrategy("native", served_in_kernel=True, maps_memory=False, needs_patch=True,
                 memslots="one `KVM_MEM_PCI_HOLE` slot per run (the 2020 patch)",
                 host_memory="none", hole_ranges=lambda m: list(m.hole_runs),
                 _install=_install_native),
    HoleStrategy("alias", served_in_kernel=True, maps_memory=True, needs_patch=False,
                 memslots="read-only slots aliasing a 1 MiB window where one 0xff page is "
                          "mapped 256 times",
                 host_memory="one page (RSS +1 MiB: RSS counts each mapping)",
                 hole_ranges=_alias_ranges, _install=_install_alias),
    HoleStrategy("dense", served_in_kernel=True, maps_memory=True, needs_patch=False,
                 memslots="read-only slots over real 0xff memory", host_memory="256 MiB",
                 hole_ranges=lambda m: list(m.hole_runs), _install=_install_dense),
    HoleStrategy("exit", served_in_kernel=False, maps_memory=False, needs_patch=False,
                 memslots="none: every access exits", host_memory="none",
                 hole_ranges=lambda m: [], _install=_install_nothing),
)}
CHOICES = ("auto", *STRATEGIES)


def strategy_of(name: str) -> HoleStrategy | None:
    """The strategy called `name`; None for a VMM kvmhole did not start ("unknown")."""
    return STRATEGIES.get(name)


def plan_slots(memory_map: MemoryMap, strategy: str, max_slots: int) -> list[Slot]:
    """RAM slot first, then the hole's slots; ConfigError if KVM's slot limit is exceeded."""
    hole = STRATEGIES[strategy].hole_ranges(memory_map)
    slots = [Slot(RAM_SLOT, memory_map.ram, "ram")]
    slots += [Slot(RAM_SLOT + 1 + i, gpa, strategy) for i, gpa in enumerate(hole)]
    if len(slots) > max_slots:
        raise ConfigError(
            f"the {strategy} strategy needs {len(slots)} memory slots for this hole, "
            f"but KVM allows {max_slots}: use fewer present devices or a smaller hole"
        )
    return slots


# A real-mode probe: mov ax,0x1000; mov ds,ax; mov eax,[0]; out 0x10,eax; hlt
# It reads GPA 0x10000, where the probe puts a 4 KiB slot with the patch's flag.
_NATIVE_PROBE_CODE = bytes.fromhex("b800108ed866a1000066e710f4")
_NATIVE_PROBE_GPA = 0x10000


def native_support() -> tuple[bool, str]:
    """(supported, why not): does this kernel accept and serve KVM_MEM_PCI_HOLE slots?"""
    flag, why = _native_probe()
    return flag is not None, why


def native_flag() -> int:
    """The KVM_MEM_PCI_HOLE bit this kernel's port uses (ConfigError if none)."""
    flag, why = _native_probe()
    if flag is None:
        raise ConfigError(f"--hole native: {why}")
    return flag


def _accepted_flag(vm) -> tuple[int | None, str]:
    """The first of the ports' bits that a slot with no backing is created with."""
    refused = []
    for flag in KVM_MEM_PCI_HOLE_BITS:
        try:
            vm.set_user_memory_region(1, _NATIVE_PROBE_GPA, 0x1000, 0, flag)
            return flag, ""
        except KvmError as error:
            refused.append(f"{flag:#x} {error.strerror_name}")
    return None, ("this kernel does not support KVM_MEM_PCI_HOLE (the 2020 patch never "
                  "reached mainline): a memslot with no backing and the flag of any of "
                  f"its ports was refused ({', '.join(refused)})")


@cache
def _native_probe() -> tuple[int | None, str]:
    """(the flag, why not): which KVM_MEM_PCI_HOLE bit this kernel accepts and serves."""
    with System() as system, contextlib.ExitStack() as resources:
        ram = hostmem.anonymous(0x1000, "the native probe's RAM")
        resources.callback(ram.close)
        vm = system.create_vm()
        resources.callback(vm.close)  # first: the VM goes before the memory behind it
        flag, why = _accepted_flag(vm)
        if flag is None:
            return None, why
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
            return None, f"a KVM_MEM_PCI_HOLE slot ({flag:#x}) was accepted, but its read exited"
        if not (isinstance(first, PortOut) and first.value == 0xFFFFFFFF):
            return None, f"a KVM_MEM_PCI_HOLE read did not return all-ones ({first})"
        if not isinstance(vcpu.run(), HltExit):
            return None, "the KVM_MEM_PCI_HOLE probe guest did not halt"
        return flag, ""


def resolve(choice: str) -> str:
    """'auto' -> the best strategy this host supports; otherwise check the one asked for."""
    if choice not in CHOICES:
        raise ConfigError(f"unknown hole strategy {choice!r}; choose one of {', '.join(CHOICES)}")
    if choice == "auto":
        return "native" if native_support()[0] else "alias"
    if STRATEGIES[choice].needs_patch:
        supported, why = native_support()
        if not supported:
            raise ConfigError(f"--hole native: {why}; use --hole alias for the same reads "
                              "served in the kernel without it")
    return choice
