"""Build the VM a Blueprint describes: guest RAM with the guest loaded, the hole's
memslots, one vCPU in long mode, and the binary stats fds that monitors copy. A Linux
guest also gets KVM's irqchip and PIT, and CPUID with the TSC-deadline timer.

A BuiltVm owns every fd and mapping it made and closes all of them when its `with`
block ends, whichever way it ends; a build that fails halfway closes what it had made.
"""

import contextlib

from kvmhole import guests
from kvmhole.guests import protocol
from kvmhole.kvm import System, sum_stats
from kvmhole.vmm import hostmem, longmode, strategies
from kvmhole.vmm.blueprint import Blueprint
from kvmhole.vmm.boot import layout, linux
from kvmhole.vmm.devices import ALL_ONES
from kvmhole.vmm.memmap import PAGE

# KVM_SET_TSS_ADDR: three pages below 4 GiB that Intel's real-mode emulation uses; the
# last ones before the BIOS area, Firecracker's choice, above RAM and the q35 window.
TSS_ADDR = 0xFFFB_D000


class BuiltVm:
    def __init__(self, blueprint: Blueprint):
        self.blueprint = blueprint
        self._resources = contextlib.ExitStack()

    def __enter__(self):
        with self._resources as resources:
            self._build(resources)
            self._resources = resources.pop_all()  # built: kept until __exit__
        return self

    def __exit__(self, *exc):
        self._resources.close()

    def _build(self, resources: contextlib.ExitStack) -> None:
        plan, memory_map = self.blueprint, self.blueprint.map
        system = resources.enter_context(System())
        self.slots = strategies.plan_slots(memory_map, plan.strategy,
                                           system.check_extension("KVM_CAP_NR_MEMSLOTS"))
        ram_mapping = hostmem.anonymous(memory_map.ram.size, "guest RAM")
        resources.callback(ram_mapping.close)
        self.ram = memoryview(ram_mapping.buffer())
        _load(self.ram, plan)
        vm = system.create_vm()
        resources.callback(vm.close)
        vm.set_tss_addr(TSS_ADDR)
        if plan.linux is not None:
            vm.create_irqchip()
            vm.create_pit2()
        self.vm = vm
        vm.set_user_memory_region(0, 0, memory_map.ram.size, ram_mapping.addr)
        backing = strategies.STRATEGIES[plan.strategy].install(vm, memory_map, self.slots)
        resources.callback(backing.close)
        resources.callback(vm.close)  # again, so the VM goes before the memory behind it
        self.vcpu = vm.create_vcpu(0)
        if plan.linux is None:
            longmode.enter_long_mode(self.vcpu, system.supported_cpuid(), protocol.LOAD_ADDR,
                                     protocol.STACK_TOP)
        else:  # boot.rst's 64-bit entry: %rsi is the zero page
            longmode.enter_long_mode(self.vcpu, _linux_cpuid(system), plan.linux.entry,
                                     layout.STACK_TOP, linux.LINUX_LAYOUT,
                                     rsi=layout.ZERO_PAGE_ADDR)
        # open while the guest runs: monitors copy the vCPU's out of this process
        self._stats = [resources.enter_context(self.vcpu.stats()),
                       resources.enter_context(vm.stats())]

    def read_stats(self) -> dict[str, int]:
        """KVM's counters for this VM and its vCPU, summed by name."""
        return sum_stats([stats.read() for stats in self._stats])

    def guest_result(self) -> dict:
        """The guest's own report (struct kh_result in its RAM)."""
        return protocol.result_dict(protocol.result_view(
            self.ram[protocol.RESULT_ADDR : protocol.RESULT_ADDR + protocol.RESULT_SIZE]))


CPUID_FEATURES, ECX_TSC_DEADLINE, ECX_HYPERVISOR = 1, 1 << 24, 1 << 31


def _linux_cpuid(system):
    """KVM's supported CPUID, plus two bits a VMM sets itself: "running under a
    hypervisor" (without it Linux never looks at KVM's leaves, so no kvmclock: no TSC
    frequency on a machine with no PIT or HPET to calibrate against), and the
    TSC-deadline timer KVM emulates (KVM_CAP_TSC_DEADLINE_TIMER), so the local APIC's
    timer needs no calibration either."""
    cpuid = system.supported_cpuid()
    bits = ECX_HYPERVISOR
    if system.check_extension("KVM_CAP_TSC_DEADLINE_TIMER"):
        bits |= ECX_TSC_DEADLINE
    for i in range(cpuid.nent):
        if cpuid.entries[i].function == CPUID_FEATURES:
            cpuid.entries[i].ecx |= bits
    return cpuid


def _load(ram, plan: Blueprint) -> None:
    """Guest RAM before the first instruction: image, boot tables, parameters."""
    if plan.linux is not None:
        linux.load(ram, plan.linux, plan.map)
        return
    image = guests.image(plan.guest.name)
    ram[protocol.LOAD_ADDR : protocol.LOAD_ADDR + len(image)] = image
    longmode.write_boot_tables(ram, max(plan.map.ram.end, plan.map.ecam.end))
    params = protocol.params_view(ram[protocol.PARAMS_ADDR :
                                      protocol.PARAMS_ADDR + protocol.PARAMS_SIZE])
    for key, value in plan.params.items():
        setattr(params, key, value)
    if plan.scans_ram:
        # Make every scanned RAM page read all-ones, so the baseline guest runs
        # exactly the loop (and counts) the hole scan does.
        for page in range(plan.pages):
            offset = protocol.SCRATCH_ADDR + page * PAGE
            ram[offset : offset + 4] = ALL_ONES[:4]
