"""The VMM: guest memory, hole strategies, ECAM devices and the run loop."""

from kvmhole.vmm.blueprint import MachineConfig
from kvmhole.vmm.deadline import GuestStopped, GuestTimeout
from kvmhole.vmm.machine import Machine, RunResult

__all__ = ["GuestStopped", "GuestTimeout", "Machine", "MachineConfig", "RunResult"]
