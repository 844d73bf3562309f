"""A machine: memory map + devices + hole strategy + one vCPU + the run loop."""

import threading
import time
from dataclasses import asdict, dataclass, field

import psutil

from kvmhole import guests
from kvmhole.errors import ConfigError, GuestError, KvmholeError
from kvmhole.guests import protocol
from kvmhole.kvm import (
    KVM_EXIT_INTR,
    KVM_EXIT_MMIO,
    FailEntryExit,
    HltExit,
    InternalErrorExit,
    IntrExit,
    IoExit,
    MmioExit,
    ShutdownExit,
    System,
    sum_stats,
)
from kvmhole.vmm import hostmem, longmode, strategies
from kvmhole.vmm.deadline import Deadline, GuestTimeout
from kvmhole.vmm.devices import ALL_ONES, ConfigPorts, EcamWindow, ExitCounts
from kvmhole.vmm.fastpath import CFastPath
from kvmhole.vmm.memmap import PAGE, Q35_ECAM_BASE, Q35_ECAM_SIZE, build_memory_map
from kvmhole.vmm.pci import host_bridge, parse_device
from kvmhole.vmm.registry import MAX_NAME, Registration, host_pid

DEFAULT_PAGES = {"ecam-scan": 8192, "mixed": 64}
DEFAULT_PAUSE_US = 10_000


@dataclass
class MachineConfig:
    guest: str = "ecam-scan"
    hole: str = "auto"
    hole_base: int = Q35_ECAM_BASE
    hole_size: int = Q35_ECAM_SIZE
    ram_size: int = 64 << 20
    pages: int | None = None
    passes: int = 1  # ecam-scan: scans of the same pages
    type1_pages: int = 0  # ecam-scan: then absent-function reads by type-1 port I/O
    devices: list[str] = field(default_factory=list)  # extra present functions
    name: str | None = None
    timeout: float | None = None
    scan_ram: bool = False  # ecam-scan reads RAM pages instead (the loop-cost baseline)
    pause_us: int = DEFAULT_PAUSE_US
    c_fastpath: bool = False  # serve hole reads in a C loop: Python's cost on the hot path


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
    status: str  # ok | failed (the guest's checks) | crashed | timeout
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
        self.guest = guests.get(config.guest)
        self.functions = [host_bridge(), *(parse_device(spec) for spec in config.devices)]
        self.map = build_memory_map(config.ram_size, config.hole_base, config.hole_size,
                                    [f.bdf for f in self.functions])
        self.pages = config.pages if config.pages is not None else DEFAULT_PAGES.get(
            config.guest, 0)
        self._check_pages()
        self.strategy = strategies.resolve(config.hole)
        self.name = config.name or f"{config.guest}-{host_pid()}"
        if len(self.name) > MAX_NAME:
            raise ConfigError(f"the guest name is {len(self.name)} characters long; at most "
                              f"{MAX_NAME}")
        self.counts = ExitCounts()
        self.ecam = EcamWindow(self.map, self.functions, self.counts)
        self.config_ports = ConfigPorts(self.ecam)
        self.status: int | None = None
        self.error: KvmholeError | None = None  # why the run loop ended early

    def _check_pages(self) -> None:
        if self.config.pages is not None and self.config.guest not in DEFAULT_PAGES:
            raise ConfigError(f"--pages is for {' and '.join(DEFAULT_PAGES)}; "
                              f"{self.config.guest} makes a fixed set of accesses")
        if self.pages < 0:
            raise ConfigError("--pages must not be negative")
        if self.config.passes < 1:
            raise ConfigError("--passes must be at least 1")
        if self.config.guest != "ecam-scan":
            return
        limit = self._scan_area() if self.config.scan_ram else self.map.hole_pages
        if not 0 < self.pages <= limit:
            where = "scratch RAM" if self.config.scan_ram else "this hole"
            raise ConfigError(f"--pages must be between 1 and {limit}, the pages {where} has")
        if not 0 <= self.config.type1_pages <= self.map.hole_pages:
            raise ConfigError(f"--type1-pages must be between 0 and {self.map.hole_pages}, "
                              "the absent functions this hole has")

    def _scan_area(self) -> int:
        """Pages a scanning guest may read from scan_base: scratch RAM or the whole window
        (hole and present functions alike); one more lies outside it and faults."""
        if self.config.scan_ram:
            return (self.map.ram.size - protocol.SCRATCH_ADDR) // PAGE
        return self.map.ecam.size // PAGE

    def _params(self) -> dict:
        device = self.functions[0]
        last_hole = self.map.hole_runs[-1]
        scan_base = protocol.SCRATCH_ADDR if self.config.scan_ram else self.map.ecam.start
        return {
            "ecam_base": self.map.ecam.start,
            "ecam_size": self.map.ecam.size,
            "scan_base": scan_base,
            "scan_limit": self._scan_area(),
            "pages": self.pages,
            "pause_us": self.config.pause_us,
            "hole_addr": self._two_hole_pages(),
            "hole_last": last_hole.end - PAGE,
            "device_addr": self.map.ecam.start + device.bdf.ecam_offset,
            "device_id": device.id_dword,
            "passes": self.config.passes,
            "type1_pages": self.config.type1_pages,
        }

    def _two_hole_pages(self) -> int:
        """hole-rw reads and writes across two consecutive hole pages: the first run that
        has two (a run of one page ends at a present function)."""
        for run in self.map.hole_runs:
            if run.size >= 2 * PAGE:
                return run.start
        if self.config.guest == "hole-rw":
            raise ConfigError("hole-rw needs two consecutive absent functions in the window")
        return self.map.hole_runs[0].start

    def _load(self, ram) -> None:
        image = guests.image(self.guest.name)
        ram[protocol.LOAD_ADDR : protocol.LOAD_ADDR + len(image)] = image
        longmode.write_boot_tables(ram, max(self.map.ram.end, self.map.ecam.end))
        params = protocol.params_view(ram[protocol.PARAMS_ADDR :
                                          protocol.PARAMS_ADDR + protocol.PARAMS_SIZE])
        for key, value in self._params().items():
            setattr(params, key, value)
        if self.config.scan_ram and self.config.guest == "ecam-scan":
            # Make every scanned RAM page read all-ones, so the baseline guest runs
            # exactly the loop (and counts) the hole scan does.
            for page in range(self.pages):
                offset = protocol.SCRATCH_ADDR + page * PAGE
                ram[offset : offset + 4] = ALL_ONES[:4]

    def run(self) -> RunResult:
        """Build the VM, run the guest to completion and return what happened."""
        with System() as system:
            max_slots = system.check_extension("KVM_CAP_NR_MEMSLOTS")
            slots = strategies.plan_slots(self.map, self.strategy, max_slots)
            vm = system.create_vm()
            ram_mapping = hostmem.anonymous(self.map.ram.size, "guest RAM")
            backing = None
            try:
                ram = memoryview(ram_mapping.buffer())
                self._load(ram)
                vm.set_tss_addr(0xFFFB_D000)
                vm.set_user_memory_region(0, 0, self.map.ram.size, ram_mapping.addr)
                backing = strategies.STRATEGIES[self.strategy].install(vm, self.map, slots)
                vcpu = vm.create_vcpu(0)
                longmode.enter_long_mode(vcpu, system.supported_cpuid(), protocol.LOAD_ADDR,
                                         protocol.STACK_TOP)
                vcpu_stats, vm_stats = vcpu.stats(), vm.stats()
                entry = {
                    "name": self.name, "guest": self.guest.name, "vmm": "kvmhole",
                    "strategy": self.strategy, "tids": [threading.get_native_id()],
                    "holes": [[r.start, r.end] for r in self.map.hole_runs],
                    "ecam": [self.map.ecam.start, self.map.ecam.end],
                }
                started = time.perf_counter()
                # the registry entry is removed before the signal handlers are restored
                with Deadline(self.config.timeout), Registration(entry) as registration:
                    try:
                        self._loop(vcpu)
                    except (GuestError, GuestTimeout) as error:
                        self.error = error  # reported with what the guest counted so far
                    finally:  # SIGTERM too: the entry keeps the final stats for monitors
                        kvm_stats = sum_stats([vcpu_stats.read(), vm_stats.read()])
                        registration.final["kvm_stats"] = kvm_stats
                wall = time.perf_counter() - started
                vcpu_stats.close()
                vm_stats.close()
                result = protocol.result_dict(protocol.result_view(
                    ram[protocol.RESULT_ADDR : protocol.RESULT_ADDR + protocol.RESULT_SIZE]))
                return self._result(result, kvm_stats, wall, len(slots))
            finally:
                vm.close()
                if backing is not None:
                    backing.close()
                ram_mapping.close()

    def _loop(self, vcpu) -> None:
        if self.config.c_fastpath:
            fastpath = CFastPath(vcpu, self.map, self.ecam.functions)
            try:
                self._dispatch(fastpath.run)
            finally:
                self.counts.userspace_exits["MMIO"] += fastpath.hole_reads
                self.counts.hole_read_exits += fastpath.hole_reads
        else:
            self._dispatch(self._hole_reads_first(vcpu))

    def _hole_reads_first(self, vcpu):
        """vcpu.run for _dispatch, except that hole reads (one per absent function the
        guest probes: the bulk of its exits) are answered in place from kvm_run, with no
        exit object or dispatch."""
        mmio, data, read_hole = vcpu.mmio, vcpu.mmio_data, self.ecam.read_hole
        exits = self.counts.userspace_exits

        def next_exit():
            while True:
                reason = vcpu.enter()
                if reason == KVM_EXIT_MMIO and not mmio.is_write and \
                        read_hole(mmio.phys_addr, mmio.len, data):
                    exits["MMIO"] += 1
                    continue
                return IntrExit() if reason == KVM_EXIT_INTR else vcpu.current_exit()
        return next_exit

    def _dispatch(self, next_exit) -> None:
        userspace_exits = self.counts.userspace_exits
        ecam = self.ecam
        while True:
            exit_ = next_exit()
            userspace_exits[exit_.reason] += 1
            if isinstance(exit_, MmioExit):
                if exit_.addr in ecam:
                    ecam.mmio(exit_.addr, exit_.length, exit_.is_write, exit_.data)
                else:  # nothing decodes it: reads float high, as on a real bus
                    self.counts.unassigned_exits += 1
                    if not exit_.is_write:
                        exit_.data[: exit_.length] = ALL_ONES[: exit_.length]
            elif isinstance(exit_, IoExit):
                if self._port(exit_):
                    return
            elif isinstance(exit_, HltExit):
                raise GuestError("the guest halted without reporting that it finished")
            elif isinstance(exit_, IntrExit):
                continue  # a signal: its Python handler runs now (timeout, Ctrl-C)
            elif isinstance(exit_, ShutdownExit):
                raise GuestError("the guest triple-faulted (KVM_EXIT_SHUTDOWN)")
            elif isinstance(exit_, InternalErrorExit):
                raise GuestError(f"KVM internal error: {exit_.description} {exit_.data}")
            elif isinstance(exit_, FailEntryExit):
                raise GuestError(f"KVM could not enter the guest (hardware reason "
                                 f"{exit_.hardware_reason:#x} on cpu {exit_.cpu})")
            else:
                raise GuestError(f"unexpected exit {exit_.reason}")

    def _port(self, exit_: IoExit) -> bool:
        """Handle a port access; True when the guest reported it is done."""
        if exit_.port in self.config_ports:
            self.config_ports.io(exit_.port, exit_.size, exit_.is_write, exit_.data)
        elif not exit_.is_write:
            self.counts.unassigned_exits += 1
            exit_.data[:] = b"\xff" * len(exit_.data)
        elif exit_.port == protocol.PORT_DONE:
            self.status = exit_.value
            return True
        elif exit_.port == protocol.PORT_SLEEP:
            time.sleep(exit_.value / 1e6)
        elif exit_.port != protocol.PORT_PROGRESS:
            self.counts.unassigned_exits += 1
        return False

    def _result(self, guest_result: dict, kvm_stats: dict, wall: float, memslots: int):
        c = self.counts
        memory = psutil.Process(host_pid()).memory_full_info()  # as /proc numbers it
        return RunResult(
            guest=self.guest.name, name=self.name, pid=host_pid(), hole=self.strategy,
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
            return "timeout" if isinstance(self.error, GuestTimeout) else "crashed"
        if self.status != protocol.STATUS_OK:
            return "failed"
        # hole-rw logs each write it makes; the VMM must have seen exactly those
        if self.guest.name == "hole-rw" and guest_result["writes"] != self.counts.hole_writes:
            return "failed"
        return "ok"
