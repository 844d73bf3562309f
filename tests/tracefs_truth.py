"""Ground truth from tracefs, recorded in the same run as the probes but without them:
a private trace instance with kvm_pio, kvm_mmio and kvm_userspace_exit, read after
the guest ends and classified here, independently of the BPF code.

The classification follows the PCI rules, not kvmhole's implementation: a function
is absent once a read of its identity registers (vendor and device ID, command,
status, revision, class: offsets below 0x0C, which every present function
implements) returned all-ones, present once one did not; a type-1 data read (0xCFC-0xCFF)
reaches the function latched by the last 32-bit write to 0xCF8 on that vCPU; an
access exited to the VMM when KVM traced the userspace exit right after a port
write, or right before a port read (KVM traces a read that exits on re-entry).
"""

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

TRACING = Path("/sys/kernel/tracing")
EVENTS = ("kvm/kvm_pio", "kvm/kvm_mmio", "kvm/kvm_userspace_exit")
LINE = re.compile(r"^\s*.+?-(?P<tid>\d+)\s+\(\s*(?P<tgid>\d+)\)\s+\[\d+\]\s+\S+\s+[\d.]+: "
                  r"(?P<event>\w+): (?P<rest>.*)$")
PIO = re.compile(r"pio_(?P<dir>read|write) at 0x(?P<port>[0-9a-f]+) size (?P<size>\d+) "
                 r"count (?P<count>\d+) val 0x(?P<val>[0-9a-f]+)")
MMIO = re.compile(r"mmio (?P<type>[\w-]+) len (?P<len>\d+) gpa 0x(?P<gpa>[0-9a-f]+) "
                  r"val 0x(?P<val>[0-9a-f]+)")
EXIT = re.compile(r"reason (?:KVM_EXIT_)?(?P<name>\w+) \((?P<num>\d+)\)")
EXIT_NAMES = {"restart": "INTR", "error": "ERROR"}  # errno < 0: tracefs' words for them
# On VMX/SVM: every nested page fault KVM takes, with its guest-physical address.
PAGE_FAULT_EVENT = "kvm/kvm_page_fault"
PAGE_FAULT = re.compile(r"address (?:0x)?(?P<gpa>[0-9a-f]+) error_code (?:0x)?(?P<code>[0-9a-f]+)")
PF_WRITE = 0x2


@dataclass
class Mechanism:
    reads: int = 0  # absent-function reads
    read_exits: int = 0
    writes: int = 0
    exits: int = 0  # userspace exits those reads cost
    functions: set = field(default_factory=set)
    buses: Counter = field(default_factory=Counter)


@dataclass
class Truth:
    ecam: Mechanism = field(default_factory=Mechanism)
    type1: Mechanism = field(default_factory=Mechanism)
    exits: Counter = field(default_factory=Counter)  # userspace exits by reason
    type1_port_exits: int = 0  # IO exits of 0xCF8 writes and 0xCFC-0xCFF reads, any function


class TraceInstance:
    """A tracefs instance of its own: other users of tracefs are not disturbed."""

    def __init__(self, buffer_kb: int = 32768, events: tuple[str, ...] = EVENTS):
        self.path = TRACING / "instances" / f"kvmhole-truth-{os.getpid()}"
        self.buffer_kb = buffer_kb
        self.events = events

    def __enter__(self):
        self.path.mkdir()
        (self.path / "buffer_size_kb").write_text(str(self.buffer_kb))
        (self.path / "options" / "record-tgid").write_text("1")
        for event in self.events:
            (self.path / "events" / event / "enable").write_text("1")
        return self

    def stop(self) -> list[str]:
        """Stop recording; the recorded lines (asserting none were overwritten)."""
        (self.path / "tracing_on").write_text("0")
        for stats in (self.path / "per_cpu").glob("cpu*/stats"):
            overrun = re.search(r"^overrun: (\d+)", stats.read_text(), re.M)
            assert overrun and overrun[1] == "0", f"trace buffer overran: {stats}"
        return (self.path / "trace").read_text().splitlines()

    def __exit__(self, *exc):
        for event in self.events:
            (self.path / "events" / event / "enable").write_text("0")
        self.path.rmdir()


def truth(lines: list[str], tgid: int, ecam: tuple[int, int]) -> Truth:
    out = Truth()
    state: dict[int, int] = {}  # bdf -> 1 absent, 0 present
    address: dict[int, int] = {}  # tid -> latched 0xCF8 value
    previous: dict[int, tuple] = {}  # tid -> its previous event
    address_exited: dict[int, bool] = {}

    def access(mech: Mechanism, bdf: int, offset: int, size: int, write: bool, value: int,
               exited: bool, exits: int) -> None:
        if not write and offset < 0x0C and size >= 2:  # vendor, device ... class
            state[bdf] = int(value == (1 << 8 * size) - 1)
        if not state.get(bdf, 1 if write else 0):  # an unidentified function's write counts
            return
        mech.functions.add(bdf)
        if write:
            mech.writes += 1
            return
        mech.reads += 1
        mech.buses[bdf >> 8] += 1
        if exited:
            mech.read_exits += 1
            mech.exits += exits

    for line in lines:
        match = LINE.match(line)
        if not match or int(match["tgid"]) != tgid:
            continue
        tid, event, rest = int(match["tid"]), match["event"], match["rest"]
        before = previous.get(tid, ("",))
        if event == "kvm_userspace_exit":
            found = EXIT.search(rest)
            reason = EXIT_NAMES.get(found["name"], found["name"])
            out.exits[reason] += 1
            if reason == "IO" and before == ("kvm_pio", "write", 0xCF8):
                out.type1_port_exits += 1
                address_exited[tid] = True
            previous[tid] = ("kvm_userspace_exit", reason)
        elif event == "kvm_pio":
            pio = PIO.search(rest)
            port, size, value = int(pio["port"], 16), int(pio["size"]), int(pio["val"], 16)
            write = pio["dir"] == "write"
            exited = not write and before == ("kvm_userspace_exit", "IO")
            previous[tid] = ("kvm_pio", pio["dir"], port)
            if int(pio["count"]) != 1:
                continue
            if write and port == 0xCF8 and size == 4:
                address[tid], address_exited[tid] = value, False
                continue
            latched = address.get(tid, 0)
            if not 0xCFC <= port <= 0xCFF or not latched & 0x8000_0000:
                continue
            if exited:
                out.type1_port_exits += 1
            exits = 1 + address_exited.get(tid, False) if exited else 0
            address_exited[tid] = False
            access(out.type1, latched >> 8 & 0xFFFF, (latched & 0xFC) + port - 0xCFC, size,
                   write, value, exited, exits)
        elif event == "kvm_mmio":
            mmio = MMIO.search(rest)
            previous[tid] = ("kvm_mmio", mmio["type"])
            gpa = int(mmio["gpa"], 16)
            if mmio["type"] == "unsatisfied-read" or not ecam[0] <= gpa < ecam[1]:
                continue
            access(out.ecam, (gpa - ecam[0]) >> 12, gpa & 0xFFF, int(mmio["len"]),
                   mmio["type"] == "write", int(mmio["val"], 16), True, 1)
    return out


def hole_read_faults(lines: list[str], tgid: int, holes: list[tuple[int, int]]) -> list[int]:
    """The guest-physical addresses of the read faults of process `tgid` in `holes`, in
    order: with the native strategy each hole read is one (no SPTE is ever made)."""
    found = []
    for line in lines:
        match = LINE.match(line)
        if not match or int(match["tgid"]) != tgid or match["event"] != "kvm_page_fault":
            continue
        fault = PAGE_FAULT.search(match["rest"])
        gpa = int(fault["gpa"], 16)
        if not int(fault["code"], 16) & PF_WRITE and any(lo <= gpa < hi for lo, hi in holes):
            found.append(gpa)
    return found
