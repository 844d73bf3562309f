"""The VMM: guest memory, hole strategies, ECAM devices and the run loop."""

from kvmhole.vmm.blueprint import MachineConfig
from kvmhole.vmm.deadline import GuestTimeout
from kvmhole.vmm.machine import Machine, RunResult

__all__ = ["GuestTimeout", "Machine", "MachineConfig", "RunResult"]
