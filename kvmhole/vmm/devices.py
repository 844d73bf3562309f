"""What the VMM answers when an access exits to userspace: the ECAM window
(present functions' config space, and the hole for the `exit` strategy and for
writes), the same config space by type-1 port I/O, and the guest protocol's ports."""

from collections import Counter
from dataclasses import dataclass, field

from kvmhole.guests import protocol
from kvmhole.vmm.memmap import MemoryMap
from kvmhole.vmm.pci import FUNCTION_SIZE, PciFunction

ALL_ONES = b"\xff" * 8
HOLE_WRITE_LOG = 64  # writes kept with address and data; all are counted


@dataclass
class ExitCounts:
    """The VMM's own account of exits it handled (cross-checked against KVM's stats)."""

    userspace_exits: Counter = field(default_factory=Counter)  # reason -> count
    hole_read_exits: int = 0  # by ECAM
    type1_hole_read_exits: int = 0  # data reads of absent functions by type-1 port I/O
    hole_write_exits: int = 0  # by either mechanism
    device_mmio_exits: int = 0
    unassigned_exits: int = 0
    hole_writes: list[dict] = field(default_factory=list)


class EcamWindow:
    def __init__(self, memory_map: MemoryMap, functions: list[PciFunction], counts: ExitCounts):
        self.map = memory_map
        self.base = memory_map.ecam.start
        self.functions = {memory_map.ecam.start + f.bdf.ecam_offset: f for f in functions}
        self.counts = counts

    def __contains__(self, addr: int) -> bool:
        return addr in self.map.ecam

    def read_hole(self, addr: int, length: int, data) -> bool:
        """Answer a read if it is a hole read (in the window, no function there): the run
        loop's hot path, taken before any exit object is made."""
        if addr not in self.map.ecam or (addr & -FUNCTION_SIZE) in self.functions:
            return False
        self.counts.hole_read_exits += 1
        data[:length] = ALL_ONES[:length]
        return True

    def mmio(self, addr: int, length: int, is_write: bool, data, type1: bool = False) -> None:
        page = addr & ~(FUNCTION_SIZE - 1)
        function = self.functions.get(page)
        if function is not None:
            self.counts.device_mmio_exits += 1
            if is_write:
                function.write(addr - page, bytes(data[:length]))
            else:
                data[:length] = function.read(addr - page, length)
        elif is_write:
            self.counts.hole_write_exits += 1
            if len(self.counts.hole_writes) < HOLE_WRITE_LOG:
                value = int.from_bytes(data[:length], "little")
                self.counts.hole_writes.append({"addr": addr, "len": length, "value": value})
        else:
            if type1:
                self.counts.type1_hole_read_exits += 1
            else:
                self.counts.hole_read_exits += 1
            data[:length] = ALL_ONES[:length]


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

    def io(self, port: int, size: int, is_write: bool, data) -> None:
        if port == protocol.PCI_CONFIG_ADDRESS:
            if size != 4:  # q35 leaves byte accesses here to other devices (0xcf9: reset)
                if not is_write:
                    data[:size] = ALL_ONES[:size]
            elif is_write:
                self.address = int.from_bytes(data[:4], "little")
            else:
                data[:4] = self.address.to_bytes(4, "little")
            return
        offset = (self.address & 0xFC) + port - protocol.PCI_CONFIG_DATA
        addr = self.ecam.base + ((self.address >> 8 & 0xFFFF) << 12) + offset
        if self.address & 0x8000_0000 and addr in self.ecam:
            self.ecam.mmio(addr, size, is_write, data, type1=True)
        elif not is_write:
            data[:size] = ALL_ONES[:size]
