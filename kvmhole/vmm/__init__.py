"""The VMM: guest memory, hole strategies, ECAM devices and the run loop."""

from kvmhole.vmm.deadline import GuestTimeout
from kvmhole.vmm.machine import Machine, MachineConfig, RunResult

__all__ = ["GuestTimeout", "Machine", "MachineConfig", "RunResult"]
