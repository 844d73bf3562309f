"""Run inside an SVM host whose KVM is the KVM_MEM_PCI_HOLE port (see
test_pci_hole_svmhost.py); prints one JSON line of what each check observed, with the
kernel log lines each check added. The assertions are the test's, on the host."""

import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from kvmhole.kvm._kvm_cffi import lib

from kvmhole.kvm import KvmError, MmioRead, MmioWrite, PortOut, System
from kvmhole.vmm import hostmem, longmode
from kvmhole.vmm.strategies import KVM_MEM_PCI_HOLE_BITS, native_flag, native_support

# The patch's selftest: slot 10 at 0xc0000000, 4 pages, no backing.
SLOT, GPA, SIZE = 10, 0xC0000000, 0x4000
RAM_SIZE, CODE, MAP_END = 2 << 20, 0x10000, 4 << 30
REPORT_PORT, WRITTEN = 0x10, 0xDEAFBEEF
# A check that hangs (a vCPU stuck in KVM_RUN) is cut off and reported as it stands:
# SIGALRM ends KVM_RUN with an INTR exit, which no check expects.
WATCHDOG_S = 120


def read_byte(addr: int) -> bytes:  # mov al, [addr]; out 0x10, al
    return b"\xa0" + struct.pack("<Q", addr) + b"\xe6" + bytes([REPORT_PORT])


def write_u64(addr: int) -> bytes:  # mov [addr], rax
    return b"\x48\xa3" + struct.pack("<Q", addr)


# Reads at 0 and 5000, u64 writes at 1024 and 8000 (as the selftest), then reads of
# the two written places: still all-ones, with no exit.
SELFTEST = (read_byte(GPA) + read_byte(GPA + 5000)
            + b"\xb8" + struct.pack("<I", WRITTEN)  # mov eax, imm32 (rax = 0xdeafbeef)
            + write_u64(GPA + 1024) + write_u64(GPA + 8000)
            + read_byte(GPA + 1024) + read_byte(GPA + 8000) + b"\xf4")
# An endless loop of hole reads, each reported.
READ_LOOP = read_byte(GPA) + b"\xeb" + bytes([256 - len(read_byte(GPA)) - 2])


class Guest:
    """One VM: 2 MiB of RAM at 0 holding `code`, one vCPU in long mode."""

    def __init__(self, system, code: bytes):
        self.vm = system.create_vm()
        self.ram = hostmem.anonymous(RAM_SIZE, "the check's RAM")
        ram = self.ram.buffer()
        longmode.write_boot_tables(ram, MAP_END)
        ram[CODE:CODE + len(code)] = code
        self.vm.set_user_memory_region(0, 0, RAM_SIZE, self.ram.addr)
        self.vcpu = self.vm.create_vcpu()
        longmode.enter_long_mode(self.vcpu, system.supported_cpuid(), CODE, CODE)

    def add_hole(self, flags=None, gpa=GPA, addr=0) -> None:
        flags = native_flag() if flags is None else flags
        self.vm.set_user_memory_region(SLOT, gpa, SIZE, addr, flags)

    def close(self) -> None:
        self.vm.close()
        self.ram.close()


def describe(exit_) -> dict:
    if isinstance(exit_, PortOut):
        return {"exit": "IO", "port": exit_.port, "value": exit_.value}
    if isinstance(exit_, MmioWrite):
        return {"exit": "MMIO", "addr": exit_.addr, "len": exit_.length, "write": True,
                "value": exit_.value}
    if isinstance(exit_, MmioRead):  # no value: the guest is waiting for ours
        return {"exit": "MMIO", "addr": exit_.addr, "len": exit_.length, "write": False}
    return {"exit": exit_.reason}


def selftest(system) -> dict:
    guest = Guest(system, SELFTEST)
    try:
        guest.add_hole()
        stats = guest.vcpu.stats()  # holds the VM alive until closed
        exits = []
        while not exits or exits[-1]["exit"] in ("IO", "MMIO"):
            exits.append(describe(guest.vcpu.run()))
        counters = stats.read()
        stats.close()
        return {"exits": exits, "pf_emulate": counters["pf_emulate"],
                "pf_mmio_spte_created": counters["pf_mmio_spte_created"]}
    finally:
        guest.close()


def errno_of(call) -> str:
    try:
        call()
    except KvmError as error:
        return error.strerror_name
    return "OK"


def slot_rules(system) -> dict:
    """What KVM_SET_USER_MEMORY_REGION answers for each rule of the uapi."""
    guest = Guest(system, b"\xf4")
    hole = native_flag()
    other_port, = (bit for bit in KVM_MEM_PCI_HOLE_BITS if bit != hole)
    try:
        results = {
            "other_port_bit": errno_of(lambda: guest.add_hole(other_port)),
            "userspace_addr": errno_of(lambda: guest.add_hole(addr=guest.ram.addr)),
            "readonly": errno_of(lambda: guest.add_hole(hole | lib.KVM_MEM_READONLY)),
            "log_dirty": errno_of(lambda: guest.add_hole(hole | lib.KVM_MEM_LOG_DIRTY_PAGES)),
            "overlapping_ram": errno_of(lambda: guest.add_hole(gpa=0x100000)),
            "create": errno_of(guest.add_hole),
        }
        # Same address (0) and size: only the flag changes.
        results["clear_flag"] = errno_of(lambda: guest.add_hole(flags=0))
        results["move"] = errno_of(lambda: guest.add_hole(gpa=GPA + SIZE))
        results["delete"] = errno_of(lambda: guest.vm.set_user_memory_region(SLOT, 0, 0, 0))
        results["set_flag_on_ram"] = errno_of(lambda: guest.vm.set_user_memory_region(
            0, 0, RAM_SIZE, guest.ram.addr, hole))
        return results
    finally:
        guest.close()


def churn(system, cycles: int = 50) -> dict:
    """Delete and re-add the hole slot `cycles` times while a vCPU reads it in a loop.
    While the slot is gone its reads exit to us and we answer all-ones too."""
    guest = Guest(system, READ_LOOP)
    guest.add_hole()
    done, reading = threading.Event(), threading.Event()
    seen = {"values": set(), "reads": 0, "answered_here": 0, "other": []}

    def vcpu_loop():
        while not done.is_set():
            exit_ = guest.vcpu.run()
            if isinstance(exit_, PortOut) and exit_.port == REPORT_PORT:
                seen["values"].add(exit_.value)
                seen["reads"] += 1
                reading.set()
            elif isinstance(exit_, MmioRead) and exit_.addr == GPA:
                exit_.respond(b"\xff" * exit_.length)
                seen["answered_here"] += 1
            else:
                seen["other"].append(describe(exit_))
                return

    thread = threading.Thread(target=vcpu_loop)
    thread.start()
    try:
        reading.wait(WATCHDOG_S)  # the churn starts once the vCPU is reading
        for _ in range(cycles):
            guest.vm.set_user_memory_region(SLOT, GPA, 0, 0)
            guest.add_hole()
    finally:
        done.set()
        thread.join()
        guest.close()
    return {"cycles": cycles, "reads": seen["reads"], "values": sorted(seen["values"]),
            "answered_here": seen["answered_here"], "other": seen["other"]}


def kvmhole_run(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "kvmhole", "run", *args, "--json",
                           "--timeout", str(WATCHDOG_S)], capture_output=True, text=True)
    if done.returncode != 0:
        return {"returncode": done.returncode, "stderr": done.stderr}
    return json.loads(done.stdout)


def linux_native() -> dict:
    """kvmhole's VMM booting Debian's kernel on 256 buses without type-1 ports, the hole
    native: the probes' in-kernel count beside tracefs's read faults in the hole,
    recorded in the same run (noxsave: see tests/svm/test_linux_in_kvmhole.py)."""
    from kvmhole.probes.monitor import Monitor
    from tests.tracefs_truth import EVENTS, PAGE_FAULT_EVENT, TraceInstance, hole_read_faults

    with TraceInstance(events=(*EVENTS, PAGE_FAULT_EVENT)) as trace, Monitor() as monitor:
        monitor.poll()
        run = kvmhole_run("linux", "--buses", "256", "--hole", "native", "--append", "noxsave",
                          "--console", "/dev/null")
        guest = monitor.poll().guest(run.get("pid", 0)) if "pid" in run else None
        lines = trace.stop()
    if guest is None:
        return {"run": run}
    registry_holes = [(lo, hi) for lo, hi in guest.holes]
    faults = hole_read_faults(lines, run["pid"], registry_holes)
    ecam = guest.config["ecam"]
    return {"status": run["status"], "end": run["guest_result"]["end"],
            "hole_read_exits": run["hole_read_exits"], "userspace_exits": run["userspace_exits"],
            "in_kernel": ecam.reads_in_kernel, "functions": ecam.functions,
            "tracefs_reads": len(faults), "tracefs_functions": len({gpa >> 12 for gpa in faults})}


def trace_native(pages: int = 400, passes: int = 2) -> dict:
    """`kvmhole trace` (kvmhole's BPF monitor) beside a native guest: its last row for
    the guest, once stopped. With no SPTE, every re-read faults again, so the in-kernel
    count is of reads, one kvm_page_fault each."""
    with tempfile.TemporaryFile("w+") as err:
        trace = subprocess.Popen([sys.executable, "-m", "kvmhole", "trace", "--json",
                                  "--interval", "0.5"], stdout=subprocess.PIPE, stderr=err,
                                 text=True)
        try:
            while "probes attached" not in _contents(err):  # a state, not a time
                if trace.poll() is not None:
                    return {"trace_failed": _contents(err)}
                time.sleep(0.2)
            run = kvmhole_run("ecam-scan", "--hole", "native", "--pages", str(pages),
                              "--passes", str(passes))
        finally:
            trace.send_signal(signal.SIGINT)
            out, _ = trace.communicate(timeout=WATCHDOG_S)
        attached = _contents(err).splitlines()[0]
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    last = [r for r in rows if r["pid"] == run["pid"]][-1]
    return {"attached": attached, "guest_hole_reads": run["guest_hole_reads"],
            "in_kernel": last["hole_reads_in_kernel"], "exits": last["hole_read_exits"],
            "kernel_time_count": last["kernel_time"]["count"]}


def _contents(file) -> str:
    file.seek(0)
    return file.read()


def bench() -> dict:
    """What `kvmhole bench --svm` runs here, smaller: every strategy on the same scan,
    and host memory per strategy (the suite checks it runs and counts, not its times)."""
    from kvmhole.bench import svm

    svm._inside(pages=256, reps=1, sizes_mib=(16,), linux_boots=False)  # linux: tests/svm
    return json.loads((Path(os.environ["KVMHOLE_SVMHOST_OUT"]) / svm.RESULT).read_text())


def modules() -> dict:
    """Which file modprobe takes for KVM's modules, and what the loaded ones say they are:
    the port's have a version (build-modules.sh), Debian's stock ones none."""
    found = {}
    for name in ("kvm", "kvm_amd"):
        file = subprocess.run(["/sbin/modinfo", "-n", name], capture_output=True,
                              text=True).stdout.strip()
        signer = subprocess.run(["/sbin/modinfo", "-F", "signer", file], capture_output=True,
                                text=True).stdout.strip()
        loaded = Path("/sys/module") / name
        version = loaded / "version"
        found[name] = {"file": file, "signer": signer,
                       "version": version.read_text().strip() if version.exists() else None,
                       "taint": (loaded / "taint").read_text().strip()}
    return found


def native_refused() -> dict:
    """`kvmhole run --hole native` where the kernel has no port: one error line."""
    done = subprocess.run([sys.executable, "-m", "kvmhole", "run", "ecam-scan", "--hole",
                           "native"], capture_output=True, text=True)
    return {"returncode": done.returncode, "stderr": done.stderr}


def mark(line: str) -> None:
    """Put `line` in the kernel log, so each check's messages can be told apart."""
    with open("/dev/kmsg", "w") as kmsg:
        kmsg.write(line + "\n")


def kernel_log() -> list[str]:
    return subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout \
        .splitlines()


def main(names: list[str]) -> None:
    """Run the checks named (all but native_refused by default); one JSON line on
    stdout."""
    with open("/sys/module/kvm_amd/parameters/npt") as npt:
        report, log = {"npt": npt.read().strip() == "Y",
                       "flag": native_flag() if native_support()[0] else None,
                       "kernel": os.uname().release}, kernel_log()
    with System() as system:
        checks = {
            "selftest": lambda: selftest(system),
            "slot_rules": lambda: slot_rules(system),
            "churn": lambda: churn(system),
            "ecam_native": lambda: kvmhole_run("ecam-scan", "--hole", "native"),
            "ecam_auto": lambda: kvmhole_run("ecam-scan", "--hole", "auto"),
            "hole_rw_native": lambda: kvmhole_run("hole-rw", "--hole", "native"),
            "linux_native": linux_native,
            "trace_native": trace_native,
            "bench": bench,
        }
        # Not run by default: before the port is installed, and after it is removed.
        stock = {"modules": modules, "native_refused": native_refused}
        signal.signal(signal.SIGALRM, lambda *_: None)
        for name in names or ["modules", *checks]:
            mark(f"pci_hole_checks: {name}")
            signal.alarm(WATCHDOG_S)
            report[name] = {**checks, **stock}[name]()
            signal.alarm(0)
            now = kernel_log()
            report[name + "_dmesg"] = now[len(log):]
            log = now
    with open("/proc/sys/kernel/tainted") as tainted:
        report["tainted"] = int(tainted.read())
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
