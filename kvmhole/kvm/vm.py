"""A VM file descriptor: memory slots, vCPUs, stats."""

import os

from kvmhole.kvm._kvm_cffi import ffi, lib
from kvmhole.kvm.ioctl import ioctl, ioctl_val
from kvmhole.kvm.stats import StatsFd, open_stats

MEM_READONLY = lib.KVM_MEM_READONLY


class Vm:
    def __init__(self, system, fd: int):
        self.system = system
        self.fd = fd
        self.vcpus = []

    def set_user_memory_region(
        self, slot: int, guest_phys_addr: int, size: int, userspace_addr: int, flags: int = 0
    ) -> None:
        """Create, change or (size 0) delete one memory slot."""
        region = ffi.new(
            "struct kvm_userspace_memory_region *",
            {
                "slot": slot,
                "flags": flags,
                "guest_phys_addr": guest_phys_addr,
                "memory_size": size,
                "userspace_addr": userspace_addr,
            },
        )
        detail = f"slot {slot} gpa {guest_phys_addr:#x} size {size:#x} flags {flags:#x}"
        ioctl(self.fd, "KVM_SET_USER_MEMORY_REGION", region, detail=detail)

    def set_tss_addr(self, addr: int) -> None:
        ioctl_val(self.fd, "KVM_SET_TSS_ADDR", addr)

    def create_irqchip(self) -> None:
        """KVM's own PIC, IOAPIC and local APICs (before any vCPU exists): interrupts are
        delivered, and a halted vCPU waits, inside KVM."""
        ioctl_val(self.fd, "KVM_CREATE_IRQCHIP", 0)

    def create_pit2(self) -> None:
        """KVM's own i8254 timer (after the irqchip), its speaker port a dummy."""
        config = ffi.new("struct kvm_pit_config *", {"flags": lib.KVM_PIT_SPEAKER_DUMMY})
        ioctl(self.fd, "KVM_CREATE_PIT2", config)

    def irq_line(self, irq: int, level: bool) -> None:
        """Drive interrupt line `irq` (a GSI of the in-kernel irqchip) high or low."""
        ioctl(self.fd, "KVM_IRQ_LINE", ffi.new("struct kvm_irq_level *",
                                                {"irq": irq, "level": int(level)}))

    def stats(self) -> StatsFd:
        return open_stats(ioctl_val(self.fd, "KVM_GET_STATS_FD"))

    def create_vcpu(self, index: int = 0):
        from kvmhole.kvm.vcpu import Vcpu

        vcpu = Vcpu(self, ioctl_val(self.fd, "KVM_CREATE_VCPU", index), index)
        self.vcpus.append(vcpu)
        return vcpu

    def close(self) -> None:
        for vcpu in self.vcpus:
            vcpu.close()
        self.vcpus.clear()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
