"""The same ECAM scan on QEMU q35 (-accel kvm), against kvmhole.

QEMU answers absent functions' reads in userspace, like kvmhole's `exit`
strategy. The multiboot scanner prints a "scan-start" line on debugcon right
before its loop and its counts right after; reading debugcon from QEMU's stdout
with timestamps times the scan alone, apart from QEMU's and SeaBIOS' boot. A run
with ram=1 (the same loop over RAM pages) is the baseline that cancels the
guest loop's own cost, as in the access-cost section.

Boot-to-exit is the wall time of the whole process, from spawn to exit, for
QEMU and for `kvmhole run` (Python start-up included) on the same scan.
"""

import re
import subprocess
import time

from kvmhole.bench.scans import scan_process
from kvmhole.bench.stats import ratio, spread
from kvmhole.errors import KvmholeError
from kvmhole.guests import multiboot

_COUNTS = re.compile(rb"hole_reads=(\d+) present_reads=(\d+)")
KVMHOLE_STRATEGIES = ("exit", "alias")


def _qemu_scan(pages: int, ram: bool) -> dict:
    started = time.monotonic()
    process = subprocess.Popen(multiboot.qemu_command(pages, "stdio", "kvmhole-bench", ram=ram),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    scan_start = scan_end = None
    reads = 0
    for line in process.stdout:
        if b"scan-start" in line:
            scan_start = time.monotonic()
        elif counts := _COUNTS.search(line):
            scan_end = time.monotonic()
            reads = int(counts[1]) + int(counts[2])
    _, err = process.communicate(timeout=120)
    exited = time.monotonic()
    if process.returncode != multiboot.EXIT_OK or scan_start is None or scan_end is None:
        raise KvmholeError(f"QEMU scan failed (exit {process.returncode}): "
                           f"{err.decode(errors='replace').strip()[-300:]}")
    return {"boot_to_exit_s": exited - started, "scan_s": scan_end - scan_start,
            "reads": reads}


def measure(pages: int, reps: int, advance) -> dict:
    samples: dict[str, list[float]] = {"qemu_hole_us": [], "qemu_ram_us": [],
                                       "qemu_boot_to_exit_s": []}
    for strategy in KVMHOLE_STRATEGIES:
        samples[f"kvmhole_{strategy}_boot_to_exit_s"] = []
    for _ in range(reps):
        hole, ram = _qemu_scan(pages, ram=False), _qemu_scan(pages, ram=True)
        samples["qemu_hole_us"].append(hole["scan_s"] / hole["reads"] * 1e6)
        samples["qemu_ram_us"].append(ram["scan_s"] / ram["reads"] * 1e6)
        samples["qemu_boot_to_exit_s"].append(hole["boot_to_exit_s"])
        for strategy in KVMHOLE_STRATEGIES:
            _, wall = scan_process(strategy, "--pages", str(pages))
            samples[f"kvmhole_{strategy}_boot_to_exit_s"].append(wall)
        advance()
    out = {"pages": pages, "reps": reps, "reads_per_scan": hole["reads"]}
    out.update({name: spread(values) for name, values in samples.items()})
    out["qemu_hole_cost_us"] = spread([h - r for h, r in zip(
        samples["qemu_hole_us"], samples["qemu_ram_us"], strict=True)])
    return out


def compare(qemu: dict, access_cost: dict) -> dict:
    """QEMU's userspace answer against kvmhole's exit and in-kernel strategies."""
    strategies = access_cost["strategies"]
    in_kernel = access_cost["headline"]["in_kernel_strategy"]
    qemu_cost = qemu["qemu_hole_cost_us"]["median"]
    return {
        "hole_cost_ratio_qemu_vs_kvmhole_exit": ratio(
            qemu_cost, strategies["exit"]["hole_cost_us"]["median"]),
        "per_read_ratio_qemu_vs_in_kernel": ratio(
            qemu["qemu_hole_us"]["median"], strategies[in_kernel]["per_read_us"]["median"]),
    }


def steps(reps: int) -> int:
    return reps
