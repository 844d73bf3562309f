"""Thin typed binding over <linux/kvm.h> (cffi, API mode). Knows nothing of PCI or holes."""

from kvmhole.kvm.exits import (
    KVM_EXIT_INTR,
    KVM_EXIT_MMIO,
    FailEntryExit,
    HltExit,
    InternalErrorExit,
    IntrExit,
    MmioExit,
    MmioRead,
    MmioWrite,
    OtherExit,
    PortIn,
    PortOut,
    ShutdownExit,
    VcpuExit,
    exit_name,
)
from kvmhole.kvm.ioctl import KvmError
from kvmhole.kvm.stats import StatsFd, sum_stats
from kvmhole.kvm.system import KvmUnavailable, System
from kvmhole.kvm.vcpu import Vcpu
from kvmhole.kvm.vm import MEM_READONLY, Vm

__all__ = [
    "KVM_EXIT_INTR",
    "KVM_EXIT_MMIO",
    "MEM_READONLY",
    "FailEntryExit",
    "HltExit",
    "InternalErrorExit",
    "IntrExit",
    "KvmError",
    "KvmUnavailable",
    "MmioExit",
    "MmioRead",
    "MmioWrite",
    "OtherExit",
    "PortIn",
    "PortOut",
    "ShutdownExit",
    "StatsFd",
    "System",
    "Vcpu",
    "VcpuExit",
    "Vm",
    "exit_name",
    "sum_stats",
]
