"""Where a hung SVM host is: each vCPU's instruction pointer, named by symbol.

A hang of the SVM host leaves nothing on its console (both emulated CPUs busy, no
lockup report), so before QEMU is killed its monitor is asked for every vCPU's
registers, and a kernel address is named from the text symbols of /proc/kallsyms
that the job saved when it started (after any setup that loads other KVM modules):
the timeout says "vCPU 0 at kvm_vcpu_block+0x3c" rather than "no output".
Debian's System.map is a placeholder, so the running kernel's own list is used.
"""

import bisect
import re
import shlex
import socket
import time
from pathlib import Path

_CPU = re.compile(r"^CPU#(\d+)", re.M)
_RIP = re.compile(r"RIP=([0-9a-f]{16})")
_KERNEL_TEXT = 0xffffffff80000000
_LARGEST_FUNCTION = 0x10000  # further from its symbol, an address is someone else's code


def save_symbols(kallsyms: Path) -> str:
    """Shell command, run inside, that saves the running kernel's text symbols."""
    return f"grep ' [tTwW] ' /proc/kallsyms >{shlex.quote(str(kallsyms))}"


class SymbolMap:
    """Names of kernel text addresses, from save_symbols()'s 'address kind name [module]'
    lines (text symbols only)."""

    def __init__(self, kallsyms: Path):
        pairs = sorted((int(address, 16), name) for address, _, name, *_ in
                       (line.split() for line in kallsyms.read_text().splitlines()))
        self.addresses = [a for a, _ in pairs]
        self.names = [n for _, n in pairs]

    def name(self, address: int) -> str:
        i = bisect.bisect_right(self.addresses, address) - 1
        if address < _KERNEL_TEXT or i < 0 or address - self.addresses[i] > _LARGEST_FUNCTION:
            return f"{address:#x} (not the SVM host's kernel text: a guest's code or user space)"
        return f"{self.names[i]}+{address - self.addresses[i]:#x}"


def ask(monitor: Path, command: str, wait_s: float = 3.0) -> str:
    """One HMP command's reply from QEMU's monitor socket ('' if it does not answer)."""
    reply = b""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(wait_s)
            s.connect(str(monitor))
            s.sendall(command.encode() + b"\n")
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                try:
                    chunk = s.recv(65536)
                except TimeoutError:
                    break
                if not chunk:
                    break
                reply += chunk
                if reply.rstrip().endswith(b"(qemu)") and reply.count(b"(qemu)") >= 2:
                    break  # the banner's prompt, then the one after the answer
    except OSError:
        pass
    return reply.decode(errors="replace")


def where(monitor: Path, kallsyms: Path) -> str:
    """'vCPU 0 at f+0x10, vCPU 1 at g+0x3' for a running QEMU; why not, if it cannot say."""
    registers = ask(monitor, "info registers -a")
    cpus = [(int(m.group(1)), m.start()) for m in _CPU.finditer(registers)]
    if not cpus:
        return "its monitor did not answer"
    symbols = SymbolMap(kallsyms) if kallsyms.is_file() else None
    places = []
    ends = [s for _, s in cpus[1:]] + [len(registers)]
    for (cpu, start), end in zip(cpus, ends, strict=True):
        rip = _RIP.search(registers, start, end)
        if rip is None:
            continue
        address = int(rip.group(1), 16)
        places.append(f"vCPU {cpu} at {symbols.name(address) if symbols else hex(address)}")
    return ", ".join(places) or "its monitor gave no registers"
