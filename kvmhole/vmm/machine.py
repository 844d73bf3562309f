"""A machine: build the VM a Blueprint describes, publish it, run its guest to the end
and give the verdict (RunResult)."""

import threading
import time
from dataclasses import asdict, dataclass

import psutil

from kvmhole.errors import GuestError, KvmholeError
from kvmhole.guests import protocol
from kvmhole.vmm.blueprint import Blueprint, MachineConfig
from kvmhole.vmm.builder import BuiltVm
from kvmhole.vmm.deadline import Deadline, GuestStopped, GuestTimeout
from kvmhole.vmm.devices import Devices
from kvmhole.vmm.registry import Registration, host_pid
from kvmhole.vmm.run_loop import run_until_done


@dataclass
class RunResult:
    guest: str
    name: str
    pid: int
    hole: str
    hole_base: int
    hole_size: int
    hole_pages: int
    memslots: int
    status: str  # ok | failed (the guest's checks) | crashed | timeout | stopped (a signal)
    error: str | None  # what ended a crashed or timed-out guest
    guest_result: dict
    guest_hole_reads: int
    userspace_exits: dict
    hole_read_exits: int
    type1_hole_read_exits: int
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
    def __init__(self, config: MachineConfig):
        self.config = config
        self.blueprint = Blueprint(config)  # ConfigError now, before any ioctl
        self.guest, self.map = self.blueprint.guest, self.blueprint.map
        self.devices = Devices(self.map, self.blueprint.functions)
        self.counts = self.devices.counts
        self.status: int | None = None
        self.error: KvmholeError | None = None  # why the run loop ended early

    def run(self) -> RunResult:
        """Build the VM, run the guest to completion and return what happened."""
        with BuiltVm(self.blueprint) as built:
            started = time.perf_counter()
            # the registry entry is removed before the signal handlers are restored
            with Deadline(self.config.timeout), Registration(self._entry()) as registration:
                try:
                    self.status = run_until_done(built.vcpu, self.devices,
                                                 self.config.c_fastpath)
                except (GuestError, GuestTimeout, GuestStopped) as error:
                    self.error = error  # reported with what the guest counted so far
                finally:  # SIGTERM too: the entry keeps the final stats for monitors
                    kvm_stats = built.read_stats()
                    registration.final["kvm_stats"] = kvm_stats
            wall = time.perf_counter() - started
            return self._result(built.guest_result(), kvm_stats, wall, len(built.slots))

    def _entry(self) -> dict:
        """What the registry tells monitors about this guest."""
        return {
            "name": self.blueprint.name, "guest": self.guest.name, "vmm": "kvmhole",
            "strategy": self.blueprint.strategy, "tids": [threading.get_native_id()],
            "holes": [[r.start, r.end] for r in self.map.hole_runs],
            "ecam": [self.map.ecam.start, self.map.ecam.end],
        }

    def _result(self, guest_result: dict, kvm_stats: dict, wall: float, memslots: int):
        c = self.counts
        memory = psutil.Process(host_pid()).memory_full_info()  # as /proc numbers it
        return RunResult(
            guest=self.guest.name, name=self.blueprint.name, pid=host_pid(),
            hole=self.blueprint.strategy,
            hole_base=self.map.ecam.start, hole_size=self.map.ecam.size,
            hole_pages=self.map.hole_pages, memslots=memslots,
            status=self._status(guest_result),
            error=None if self.error is None else str(self.error),
            guest_result=guest_result, guest_hole_reads=guest_result["hole_reads"],
            userspace_exits=dict(c.userspace_exits), hole_read_exits=c.hole_read_exits,
            type1_hole_read_exits=c.type1_hole_read_exits,
            hole_write_exits=c.hole_write_exits, hole_writes=c.hole_writes,
            device_mmio_exits=c.device_mmio_exits, kvm_stats=kvm_stats, wall_s=wall,
            rss_bytes=memory.rss, uss_bytes=memory.uss,
        )

    def _status(self, guest_result: dict) -> str:
        if self.error is not None:
            if isinstance(self.error, GuestStopped):
                return "stopped"
            return "timeout" if isinstance(self.error, GuestTimeout) else "crashed"
        if self.status != protocol.STATUS_OK:
            return "failed"
        # hole-rw logs each write it makes; the VMM must have seen exactly those
        if self.guest.name == "hole-rw" and guest_result["writes"] != self.counts.hole_writes:
            return "failed"
        return "ok"
