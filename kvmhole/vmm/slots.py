"""Memory-slot arithmetic over the memory map, for the hole strategies (strategies.py)."""

from dataclasses import dataclass

from kvmhole.vmm.memmap import PAGE, MemoryMap, Range

# The alias strategy maps one all-ones page this many times into a window that
# every hole slot aliases. RSS counts the shared page once per page-table entry
# KVM faults in (USS/PSS grow by one page), so the window bounds the RSS the hole
# adds: 1 MiB = 256 mappings (far below vm.max_map_count, 65530) and a 256 MiB
# hole needs 256 slots (far below KVM's limit, 32764 here).
ALIAS_WINDOW = 1 << 20

RAM_SLOT = 0


@dataclass(frozen=True)
class Slot:
    slot: int
    gpa: Range
    kind: str  # "ram" | "alias" | "dense" | "native"


def alias_window_size(memory_map: MemoryMap) -> int:
    largest = max(run.size for run in memory_map.hole_runs)
    return min(ALIAS_WINDOW, largest)


def chunks(run: Range, size: int) -> list[Range]:
    return [Range(start, min(start + size, run.end)) for start in range(run.start, run.end, size)]


def alias_mappings(memory_map: MemoryMap) -> int:
    """How many VMAs the alias window costs (counted against vm.max_map_count)."""
    return alias_window_size(memory_map) // PAGE
