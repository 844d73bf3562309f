"""The guest-physical memory map as plain data, checked before any ioctl.

RAM sits below the ECAM window. The window is carved into the config pages of
present functions (served by the VMM on MMIO exits) and the hole: every other
page, all runs of absent functions.
"""

from dataclasses import dataclass

from kvmhole.errors import ConfigError
from kvmhole.guests import protocol
from kvmhole.vmm.pci import BUS_SIZE, FUNCTION_SIZE, Bdf

PAGE = 4096
MIN_RAM = protocol.SCRATCH_ADDR + (2 << 20)
# The VMM's page tables map this much guest-physical space with 2 MiB pages.
MAPPED_LIMIT = 64 << 30

# Hole ranges per guest: what the probes can tell apart (passed to the BPF C as
# MAX_HOLES), so every hole the VMM builds is counted whole.
MAX_HOLE_RUNS = 64

Q35_ECAM_BASE = 0xB000_0000
Q35_ECAM_SIZE = 256 * BUS_SIZE


@dataclass(frozen=True, order=True)
class Range:
    start: int
    end: int  # exclusive

    @property
    def size(self) -> int:
        return self.end - self.start

    def __contains__(self, addr: int) -> bool:
        return self.start <= addr < self.end

    def overlaps(self, other: "Range") -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class MemoryMap:
    ram: Range
    ecam: Range
    present: tuple[Bdf, ...]

    @property
    def device_pages(self) -> tuple[Range, ...]:
        return tuple(
            Range(self.ecam.start + b.ecam_offset, self.ecam.start + b.ecam_offset + FUNCTION_SIZE)
            for b in sorted(self.present)
        )

    @property
    def hole_runs(self) -> tuple[Range, ...]:
        """The hole: the ECAM window minus present functions' pages, as maximal runs."""
        runs, cursor = [], self.ecam.start
        for page in self.device_pages:
            if page.start > cursor:
                runs.append(Range(cursor, page.start))
            cursor = page.end
        if cursor < self.ecam.end:
            runs.append(Range(cursor, self.ecam.end))
        return tuple(runs)

    @property
    def hole_pages(self) -> int:
        return sum(r.size for r in self.hole_runs) // PAGE

    def in_hole(self, addr: int) -> bool:
        return addr in self.ecam and all(addr not in page for page in self.device_pages)


def build_memory_map(ram_size: int, ecam_base: int, ecam_size: int,
                     present: list[Bdf]) -> MemoryMap:
    """Validate the user's numbers and return the map (ConfigError on bad input)."""
    if ecam_size <= 0:
        raise ConfigError("the hole size must be greater than zero")
    if ecam_base % PAGE or ecam_size % PAGE:
        raise ConfigError(
            f"the hole must be 4 KiB aligned: base {ecam_base:#x}, size {ecam_size:#x}"
        )
    if ecam_size > Q35_ECAM_SIZE:
        raise ConfigError("the hole is an ECAM window: at most 256 MiB (256 buses)")
    if ram_size < MIN_RAM or ram_size % (2 << 20):
        raise ConfigError(f"guest RAM must be a multiple of 2 MiB and at least {MIN_RAM >> 20} MiB")
    ram, ecam = Range(0, ram_size), Range(ecam_base, ecam_base + ecam_size)
    if ram.overlaps(ecam):
        raise ConfigError(
            f"the hole {ecam.start:#x}-{ecam.end:#x} overlaps guest RAM 0x0-{ram.end:#x}: "
            "move it with --hole-base or shrink --ram"
        )
    if ecam.end > MAPPED_LIMIT:
        raise ConfigError(f"the hole must end below {MAPPED_LIMIT >> 30} GiB")
    if len(set(present)) != len(present):
        raise ConfigError("a PCI function is given twice")
    for bdf in present:
        if bdf.ecam_offset + FUNCTION_SIZE > ecam_size:
            raise ConfigError(f"device {bdf} lies outside a {ecam_size >> 20} MiB ECAM window")
    memory_map = MemoryMap(ram, ecam, tuple(sorted(present)))
    if not memory_map.hole_runs:
        raise ConfigError("present devices fill the whole window: there is no hole left")
    if len(memory_map.hole_runs) > MAX_HOLE_RUNS:
        raise ConfigError(f"the present devices cut the hole into {len(memory_map.hole_runs)} "
                          f"runs; the probes count at most {MAX_HOLE_RUNS}: place devices "
                          "next to each other")
    return memory_map
