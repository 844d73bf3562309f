"""Who a guest is: the kvmhole registry for kvmhole VMMs, /proc for any other VMM."""

import itertools
import re
from dataclasses import dataclass

import psutil

from kvmhole.errors import ConfigError
from kvmhole.vmm.memmap import Q35_ECAM_BASE, Q35_ECAM_SIZE
from kvmhole.vmm.registry import MAX_PID

Q35_ECAM = (Q35_ECAM_BASE, Q35_ECAM_BASE + Q35_ECAM_SIZE)  # q35's MMCONFIG window
PRESETS = {"q35": [Q35_ECAM]}
DEFAULT_PRESET = "q35"  # guests with no registry entry and no --hole-range


@dataclass
class Identity:
    name: str
    vmm: str
    strategy: str
    holes: list[tuple[int, int]] | None  # None: the caller decides (range or preset)
    registered: bool = False  # from the kvmhole registry (else guessed from /proc)
    start: int | None = None  # the process's start time: with the pid, which process it is
    final_kvm_stats: dict[str, int] | None = None  # an exited VMM's own last reading


def preset_ranges(preset: str | None) -> list[tuple[int, int]]:
    name = preset or DEFAULT_PRESET
    try:
        return list(PRESETS[name])
    except KeyError:
        raise ConfigError(f"unknown hole preset {name!r}; choose one of: "
                          f"{', '.join(PRESETS)}") from None


def parse_hole_range(spec: str) -> tuple[int, tuple[int, int]]:
    """'PID:START-END' (addresses in any Python integer notation) -> (pid, (start, end))."""
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\w+)\s*-\s*(\w+)\s*", spec)
    try:
        if not match:
            raise ValueError
        pid, start, end = int(match[1]), int(match[2], 0), int(match[3], 0)
    except ValueError:
        raise ConfigError(f"bad hole range {spec!r}: expected PID:START-END, "
                          "e.g. 1234:0xb0000000-0xc0000000") from None
    if not start < end:
        raise ConfigError(f"bad hole range {spec!r}: START must be below END")
    if not 0 < pid <= MAX_PID or end > 1 << 64:  # the BPF maps hold u32 pids, u64 addresses
        raise ConfigError(f"bad hole range {spec!r}: the pid must be in [1, {MAX_PID}] and "
                          "the addresses below 2**64")
    return pid, (start, end)


def from_registry(entry: dict) -> Identity:
    """A checked entry (registry.check_entry) -> the guest it names."""
    return Identity(name=entry["name"], vmm=entry["vmm"], strategy=entry["strategy"],
                    holes=list(entry["holes"]), registered=True, start=entry["start"],
                    final_kvm_stats=entry.get("kvm_stats"))


def _qemu_name(cmdline: list[str]) -> str | None:
    """QEMU's -name: '-name foo' or '-name guest=foo,debug-threads=on'."""
    for flag, value in itertools.pairwise(cmdline):
        if flag in ("-name", "--name"):
            first = value.split(",")[0]
            return first.removeprefix("guest=") or None
    return None


def from_process(pid: int, comm: str, start: int | None) -> Identity:
    """A VMM kvmhole did not start: name it after its -name argument or process name."""
    try:
        process = psutil.Process(pid)
        cmdline, proc_name = process.cmdline(), process.name()
    except psutil.Error:
        cmdline, proc_name = [], comm  # already gone: BPF kept its comm
    program = (cmdline[0].rsplit("/", 1)[-1] if cmdline else proc_name) or "unknown"
    vmm = "qemu" if program.startswith("qemu-system") else program
    return Identity(name=_qemu_name(cmdline) or f"{vmm}-{pid}", vmm=vmm, strategy="unknown",
                    holes=None, start=start)
