"""A machine: build the VM a Blueprint describes, publish it, run its guest to the end
and give the verdict (RunResult)."""

import contextlib
import sys
import threading
import time
from dataclasses import asdict, dataclass
from functools import partial

import psutil

from kvmhole.errors import GuestError, KvmholeError
from kvmhole.guests import protocol
from kvmhole.vmm.blueprint import Blueprint, MachineConfig
from kvmhole.vmm.builder import BuiltVm
from kvmhole.vmm.deadline import Deadline, GuestStopped, GuestTimeout
from kvmhole.vmm.devices import Devices
from kvmhole.vmm.power import PowerControl
from kvmhole.vmm.registry import Registration, host_pid
from kvmhole.vmm.run_loop import run_until_done
from kvmhole.vmm.uart import COM1_IRQ, Uart16550


@dataclass
class RunResult:
    guest: str
    name: str
    pid: int
    hole: str
    hole_base: int
    hole_size: int
    hole_pages: int
    buses: int  # the ECAM window (the MCFG's bus range for Linux)
    type1: bool  # type-1 config ports answer
    memslots: int
    status: str  # ok | failed (the guest's checks) | crashed | timeout | stopped (a signal)
    error: str | None  # what ended a crashed or timed-out guest
    guest_result: dict
    guest_hole_reads: int | None  # the guest's own count (kvmhole's guests; not Linux)
    userspace_exits: dict
    hole_read_exits: int
    type1_hole_read_exits: int
    hole_functions: int  # distinct absent functions those ECAM hole-read exits read
    type1_hole_functions: int  # the same, by type-1
    hole_write_exits: int
    hole_writes: list
    device_mmio_exits: int
    kvm_stats: dict
    wall_s: float
    rss_bytes: int
    uss_bytes: int

    def to_dict(self) -> dict:
        return asdict(self)


class Machine:
    def __init__(self, config: MachineConfig, console=None):
        """console: a binary file for a Linux guest's serial console (default stdout)."""
        self.config = config
        self.blueprint = Blueprint(config)  # ConfigError now, before any ioctl
        self.guest, self.map = self.blueprint.guest, self.blueprint.map
        self.uart = self.power = None
        ports = None  # kvmhole's guests: their protocol's ports
        if self.blueprint.linux is not None:
            self.uart = Uart16550(console or sys.stdout.buffer)
            self.power = PowerControl()
            ports = [self.uart, self.power]
        self.devices = Devices(self.map, self.blueprint.functions, self.blueprint.pci.type1,
                               ports)
        self.counts = self.devices.counts
        self.status: int | None = None
        self.error: KvmholeError | None = None  # why the run loop ended early

    def run(self) -> RunResult:
        """Build the VM, run the guest to completion and return what happened."""
        with BuiltVm(self.blueprint) as built:
            if self.uart is not None:
                self.uart.set_irq = partial(built.vm.irq_line, COM1_IRQ)
            started = time.perf_counter()
            # the registry entry is removed before the signal handlers are restored
            with Deadline(self.config.timeout), Registration(self._entry()) as registration:
                try:
                    self.status = run_until_done(built.vcpu, self.devices,
                                                 self.config.c_fastpath)
                except (GuestError, GuestStopped) as error:
                    self.error = error  # reported with what the guest counted so far
                except GuestTimeout as error:  # where it was: which loop it never left
                    self.error = GuestTimeout(f"{error}; the vCPU was at rip "
                                              f"{built.vcpu.get_regs().rip:#x}")
                finally:  # SIGTERM too: the entry keeps the final stats for monitors
                    kvm_stats = built.read_stats()
                    registration.final["kvm_stats"] = kvm_stats
            wall = time.perf_counter() - started
            if self.uart is not None:
                with contextlib.suppress(OSError):
                    self.uart.sink.flush()
            guest_result = built.guest_result() if self.power is None else self._linux_result()
            return self._result(guest_result, kvm_stats, wall, len(built.slots))

    def _linux_result(self) -> dict:
        """What a Linux guest told: how it ended and the init's report lines."""
        return {"end": self.power.end, "init": bool(self.uart.report),
                "report": self.uart.report, "console_bytes": self.uart.sent,
                "cmdline": self.blueprint.linux.cmdline}

    def _entry(self) -> dict:
        """What the registry tells monitors about this guest."""
        return {
            "name": self.blueprint.name, "guest": self.guest.name, "vmm": "kvmhole",
            "strategy": self.blueprint.strategy, "tids": [threading.get_native_id()],
            "holes": [[r.start, r.end] for r in self.map.hole_runs],
            "ecam": [self.map.ecam.start, self.map.ecam.end],
            "buses": self.blueprint.pci.buses, "type1": self.blueprint.pci.type1,
        }

    def _result(self, guest_result: dict, kvm_stats: dict, wall: float, memslots: int):
        c = self.counts
        memory = psutil.Process(host_pid()).memory_full_info()  # as /proc numbers it
        return RunResult(
            guest=self.guest.name, name=self.blueprint.name, pid=host_pid(),
            hole=self.blueprint.strategy,
            hole_base=self.map.ecam.start, hole_size=self.map.ecam.size,
            hole_pages=self.map.hole_pages, buses=self.blueprint.pci.buses,
            type1=self.blueprint.pci.type1, memslots=memslots,
            status=self._status(guest_result),
            error=None if self.error is None else str(self.error),
            guest_result=guest_result, guest_hole_reads=guest_result.get("hole_reads"),
            userspace_exits=dict(c.userspace_exits), hole_read_exits=c.hole_read_exits,
            type1_hole_read_exits=c.type1_hole_read_exits,
            hole_functions=len(c.hole_functions),
            type1_hole_functions=len(c.type1_hole_functions),
            hole_write_exits=c.hole_write_exits, hole_writes=c.hole_writes,
            device_mmio_exits=c.device_mmio_exits, kvm_stats=kvm_stats, wall_s=wall,
            rss_bytes=memory.rss, uss_bytes=memory.uss,
        )

    def _status(self, guest_result: dict) -> str:
        if self.error is not None:
            if isinstance(self.error, GuestStopped):
                return "stopped"
            return "timeout" if isinstance(self.error, GuestTimeout) else "crashed"
        if self.power is not None:  # Linux: its init reported, then it powered off
            return "ok" if self.uart.report and self.power.end == "poweroff" else "failed"
        if self.status != protocol.STATUS_OK:
            return "failed"
        # hole-rw logs each write it makes; the VMM must have seen exactly those
        if self.guest.name == "hole-rw" and guest_result["writes"] != self.counts.hole_writes:
            return "failed"
        return "ok"
