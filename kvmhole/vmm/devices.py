"""What the VMM answers when an access exits to userspace: the ECAM window
(present functions' config space, and the hole for the `exit` strategy and for
writes), the same config space by type-1 port I/O (if the machine has it), and the
port devices: kvmhole's guest protocol, or a Linux machine's UART and power control.

A port device has `ports` (a range) and read(port, size) -> bytes and
write(port, data) -> an Action for the run loop, or None to resume."""

from collections import Counter
from dataclasses import dataclass, field

from kvmhole.guests import protocol
from kvmhole.vmm.actions import Finish, Pause
from kvmhole.vmm.memmap import PAGE, MemoryMap
from kvmhole.vmm.pci import FUNCTION_SIZE, PciFunction

ALL_ONES = b"\xff" * 8
HOLE_WRITE_LOG = 64  # writes kept with address and data; all are counted


@dataclass
class ExitCounts:
    """The VMM's own account of exits it handled (cross-checked against KVM's stats)."""

    userspace_exits: Counter = field(default_factory=Counter)  # reason -> count
    hole_read_exits: int = 0  # by ECAM
    type1_hole_read_exits: int = 0  # data reads of absent functions by type-1 port I/O
    hole_functions: set = field(default_factory=set)  # ECAM pages of hole reads, distinct
    type1_hole_functions: set = field(default_factory=set)  # the same, by type-1
    hole_write_exits: int = 0  # by either mechanism
    device_mmio_exits: int = 0
    unassigned_exits: int = 0
    hole_writes: list[dict] = field(default_factory=list)

    def add_hole_read_exits(self, n: int, pages=()) -> None:
        """n ECAM hole reads answered by a run loop's fast path, each one MMIO exit, of
        the function `pages` (guest-physical page numbers)."""
        if n:  # a reason the guest never exited for stays out of its exits
            self.userspace_exits["MMIO"] += n
            self.hole_read_exits += n
        self.hole_functions.update(pages)


class EcamWindow:
    def __init__(self, memory_map: MemoryMap, functions: list[PciFunction], counts: ExitCounts):
        self.map = memory_map
        self.base = memory_map.ecam.start
        self.functions = {memory_map.ecam.start + f.bdf.ecam_offset: f for f in functions}
        self.counts = counts

    def __contains__(self, addr: int) -> bool:
        return addr in self.map.ecam

    def read(self, addr: int, length: int, type1: bool = False) -> bytes:
        """What a read of `length` bytes at `addr` returns (a present function's config
        space, or all-ones from the hole); type1: it came by type-1 port I/O."""
        page = addr & ~(FUNCTION_SIZE - 1)
        function = self.functions.get(page)
        if function is not None:
            self.counts.device_mmio_exits += 1
            return function.read(addr - page, length)
        if type1:
            self.counts.type1_hole_read_exits += 1
            self.counts.type1_hole_functions.add(addr // PAGE)
        else:
            self.counts.hole_read_exits += 1
            self.counts.hole_functions.add(addr // PAGE)
        return ALL_ONES[:length]

    def write(self, addr: int, data: bytes) -> None:
        """A write: to a present function's config space, or counted and dropped."""
        page = addr & ~(FUNCTION_SIZE - 1)
        function = self.functions.get(page)
        if function is not None:
            self.counts.device_mmio_exits += 1
            function.write(addr - page, data)
            return
        self.counts.hole_write_exits += 1
        if len(self.counts.hole_writes) < HOLE_WRITE_LOG:
            value = int.from_bytes(data, "little")
            self.counts.hole_writes.append({"addr": addr, "len": len(data), "value": value})


class ConfigPorts:
    """Type-1 config cycles as q35 answers them: a 32-bit write to PCI_CONFIG_ADDRESS
    latches bus/device/function/register (bit 31 enables), PCI_CONFIG_DATA + 0..3
    then reach the same config space as ECAM. With the enable bit clear, or for a
    function beyond the ECAM window, reads float high and writes are dropped."""

    def __init__(self, ecam: EcamWindow):
        self.ecam = ecam
        self.address = 0

    def __contains__(self, port: int) -> bool:
        return (port == protocol.PCI_CONFIG_ADDRESS
                or protocol.PCI_CONFIG_DATA <= port < protocol.PCI_CONFIG_DATA + 4)

    def read(self, port: int, size: int) -> bytes:
        if port == protocol.PCI_CONFIG_ADDRESS:
            # q35 leaves byte accesses here to other devices (0xcf9: reset)
            return self.address.to_bytes(4, "little") if size == 4 else ALL_ONES[:size]
        addr = self._data_addr(port)
        return ALL_ONES[:size] if addr is None else self.ecam.read(addr, size, type1=True)

    def write(self, port: int, data: bytes) -> None:
        if port == protocol.PCI_CONFIG_ADDRESS:
            if len(data) == 4:
                self.address = int.from_bytes(data, "little")
            return
        addr = self._data_addr(port)
        if addr is not None:
            self.ecam.write(addr, data)

    def _data_addr(self, port: int) -> int | None:
        """The ECAM address PCI_CONFIG_DATA + n reaches now; None when the latched address
        is disabled or beyond the window."""
        offset = (self.address & 0xFC) + port - protocol.PCI_CONFIG_DATA
        addr = self.ecam.base + ((self.address >> 8 & 0xFFFF) << 12) + offset
        return addr if self.address & 0x8000_0000 and addr in self.ecam else None


class ProtocolPorts:
    """kvmhole's guests' ports (guests/src/protocol.h): done, progress, sleep."""

    ports = range(protocol.PORT_DONE, protocol.PORT_SLEEP + 4)

    def read(self, port: int, size: int) -> bytes:
        return ALL_ONES[:size]

    def write(self, port: int, data: bytes):
        value = int.from_bytes(data, "little")
        if port == protocol.PORT_DONE:
            return Finish(value)
        if port == protocol.PORT_SLEEP:
            return Pause(value / 1e6)
        return None  # PORT_PROGRESS: the result block is up to date


class Devices:
    """Everything an exit can reach: the ECAM window, the type-1 config ports (type1),
    the port devices (default: kvmhole's guest protocol), and the account of the exits
    they handled."""

    def __init__(self, memory_map: MemoryMap, functions: list[PciFunction], type1: bool = True,
                 ports: list | None = None):
        self.counts = ExitCounts()
        self.ecam = EcamWindow(memory_map, functions, self.counts)
        self.config_ports = ConfigPorts(self.ecam) if type1 else None
        self.ports = [ProtocolPorts()] if ports is None else ports

    def port_device(self, port: int):
        """The device that decodes `port`, or None."""
        if self.config_ports is not None and port in self.config_ports:
            return self.config_ports
        for device in self.ports:
            if port in device.ports:
                return device
        return None
