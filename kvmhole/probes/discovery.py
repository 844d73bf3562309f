"""Who a guest is: the kvmhole registry for kvmhole VMMs, /proc for any other VMM."""

import re
from dataclasses import dataclass

import psutil

from kvmhole.errors import ConfigError
from kvmhole.text import guest_name, printable
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
    uuid: str | None = None  # QEMU's -uuid: how OpenStack and KubeVirt name a VM


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
    return Identity(name=guest_name(entry["name"]), vmm=printable(entry["vmm"]),
                    strategy=printable(entry["strategy"]), holes=list(entry["holes"]),
                    registered=True, start=entry["start"],
                    final_kvm_stats=entry.get("kvm_stats"))


def qemu_options(value: str) -> dict[str, str]:
    """An option list the way QEMU parses one (QemuOpts, as for -name): KEY=VALUE pairs
    split at single commas, ',,' standing for a comma in a value, and a first item with
    no '=' the value of the implied key, 'guest' for -name. libvirt writes
    '-name guest=web,,1,debug-threads=on' for a guest named 'web,1'."""
    items, item, i = [], [], 0
    while i < len(value):
        if value[i] == ",":
            if value[i + 1:i + 2] == ",":
                item.append(",")
                i += 2
                continue
            items.append("".join(item))
            item = []
        else:
            item.append(value[i])
        i += 1
    items.append("".join(item))
    options = {}
    for n, text in enumerate(items):
        key, sep, val = text.partition("=")
        if not sep and n == 0:
            key, val = "guest", text
        options[key] = val
    return options


def _qemu_arg(cmdline: list[str], flag: str) -> str | None:
    """The value of QEMU's last -FLAG (QEMU accepts --FLAG too; the last one wins)."""
    found = None
    for i, arg in enumerate(cmdline[:-1]):
        if arg in (f"-{flag}", f"--{flag}"):
            found = cmdline[i + 1]
    return found


def _is_qemu(program: str) -> bool:
    """qemu-system-x86_64, RHEL's /usr/libexec/qemu-kvm, a bare qemu: all QEMU."""
    return program == "qemu" or program.startswith(("qemu-system-", "qemu-kvm"))


def from_process(pid: int, comm: str, start: int | None) -> Identity:
    """A VMM kvmhole did not start: name it after its -name argument or process name."""
    try:
        process = psutil.Process(pid)
        cmdline, proc_name = process.cmdline(), process.name()
    except psutil.Error:
        cmdline, proc_name = [], comm  # already gone: BPF kept its comm
    program = (cmdline[0].rsplit("/", 1)[-1] if cmdline else proc_name) or "unknown"
    qemu = _is_qemu(program) or _is_qemu(proc_name)
    vmm = "qemu" if qemu else printable(program)
    name = uuid = None
    if qemu:
        name_arg, uuid = _qemu_arg(cmdline, "name"), _qemu_arg(cmdline, "uuid")
        name = qemu_options(name_arg).get("guest") if name_arg is not None else None
    return Identity(name=guest_name(name or f"{vmm}-{pid}"), vmm=vmm, strategy="unknown",
                    holes=None, start=start, uuid=None if uuid is None else guest_name(uuid))
