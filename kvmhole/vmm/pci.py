"""PCI functions the VMM presents in ECAM, and ECAM addressing (PCIe: 4 KiB per function)."""

import re
from dataclasses import dataclass, field

from kvmhole.errors import ConfigError

FUNCTION_SIZE = 4096
BUS_SIZE = 1 << 20  # 32 devices x 8 functions x 4 KiB

HOST_BRIDGE_ID = (0x8086, 0x29C0)  # the q35 host bridge QEMU presents at 00:00.0
DEFAULT_DEVICE_ID = (0x1B36, 0x0001)  # a generic "QEMU PCI-PCI bridge"-style ID
# Offsets below this are the registers every present function implements (vendor,
# device, command, status, revision, class): all-ones in them means the function is
# absent, which is how the probes decide presence.
IDENTITY_END = 0x0C
# The base address registers and the expansion ROM BAR: hard-wired to zero, as in a
# function without BARs (a kernel sizes them by writing all-ones and reading back; a
# writable one would show it a BAR that is not there).
BARS, ROM_BAR = range(0x10, 0x28), range(0x30, 0x34)


@dataclass(frozen=True, order=True)
class Bdf:
    bus: int
    device: int
    function: int

    def __post_init__(self):
        if not (0 <= self.bus < 256 and 0 <= self.device < 32 and 0 <= self.function < 8):
            raise ConfigError(f"PCI address {self} is out of range (bus<256, dev<32, fn<8)")

    @property
    def ecam_offset(self) -> int:
        return (self.bus << 20) | (self.device << 15) | (self.function << 12)

    @classmethod
    def from_offset(cls, offset: int) -> "Bdf":
        return cls(offset >> 20, (offset >> 15) & 31, (offset >> 12) & 7)

    @classmethod
    def parse(cls, text: str) -> "Bdf":
        match = re.fullmatch(r"([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])", text)
        if not match:
            raise ConfigError(f"bad PCI address {text!r}: expected BB:DD.F, e.g. 00:02.0")
        return cls(*(int(part, 16) for part in match.groups()))

    def __str__(self) -> str:
        return f"{self.bus:02x}:{self.device:02x}.{self.function}"


@dataclass
class PciFunction:
    """A present function: a 4 KiB config space the VMM serves on MMIO exits."""

    bdf: Bdf
    vendor_id: int
    device_id: int
    class_code: int = 0x060000  # bridge / host bridge
    config: bytearray = field(default_factory=lambda: bytearray(FUNCTION_SIZE))

    def __post_init__(self):
        self.config[0:2] = self.vendor_id.to_bytes(2, "little")
        self.config[2:4] = self.device_id.to_bytes(2, "little")
        self.config[8:12] = (self.class_code << 8).to_bytes(4, "little")
        self.config[0x34] = 0  # no capabilities

    @property
    def id_dword(self) -> int:
        return self.vendor_id | self.device_id << 16

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self.config[offset : offset + length])

    def write(self, offset: int, data: bytes) -> None:
        # The command/status word (0x04-0x07) and everything from 0x0c on but the BARs
        # are guest-writable; the identity registers (vendor/device ID at 0x00-0x03,
        # revision and class code at 0x08-0x0b) stay read-only as on real hardware,
        # and the BARs zero, byte by byte, whatever the width and alignment of the write.
        for i, byte in enumerate(data[: FUNCTION_SIZE - offset]):
            if not _read_only(offset + i):
                self.config[offset + i] = byte


def _read_only(offset: int) -> bool:
    return offset < 0x04 or 0x08 <= offset < IDENTITY_END or offset in BARS or offset in ROM_BAR


def parse_device(spec: str) -> PciFunction:
    """'BB:DD.F' or 'BB:DD.F=VVVV:DDDD' -> a present function."""
    address, _, ids = spec.partition("=")
    vendor, device = DEFAULT_DEVICE_ID
    if ids:
        match = re.fullmatch(r"([0-9a-fA-F]{4}):([0-9a-fA-F]{4})", ids)
        if not match:
            raise ConfigError(f"bad device IDs in {spec!r}: expected VVVV:DDDD in hex")
        vendor, device = (int(x, 16) for x in match.groups())
    if vendor == 0xFFFF:
        raise ConfigError(f"vendor ID ffff in {spec!r} means 'absent' and cannot be used")
    return PciFunction(Bdf.parse(address), vendor, device, class_code=0x000000)


def host_bridge() -> PciFunction:
    return PciFunction(Bdf(0, 0, 0), *HOST_BRIDGE_ID)


@dataclass(frozen=True)
class PciShape:
    """The machine's PCI: an ECAM window for buses 0..buses-1 (the MCFG's and the host
    bridge's bus range), and whether type-1 ports 0xCF8/0xCFC answer too."""

    ecam_base: int
    buses: int
    type1: bool

    @property
    def ecam_size(self) -> int:
        return self.buses * BUS_SIZE
