"""The VMM: guest memory, hole strategies, ECAM devices and the run loop."""

from kvmhole.vmm.machine import GuestTimeout, Machine, MachineConfig, RunResult

__all__ = ["GuestTimeout", "Machine", "MachineConfig", "RunResult"]
