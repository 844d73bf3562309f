"""The access-cost section again, inside the SVM host: the hardware path's costs.

The SVM host is QEMU TCG emulating an AMD CPU with SVM and nested paging, running
Debian's 6.1 kernel with kvm_amd (kvmhole.svmhost). There a mapped hole page is
served by the (emulated) MMU after its first fault, as on real hardware, so the
strategies' relative costs have the hardware's shape; their times are TCG's, not
hardware's: compare ratios only. A stock Linux boot's absent-function reads are
measured there too, under QEMU q35 (kvmhole.bench.linux_boot) and under kvmhole's own
VMM per strategy and PCI shape (kvmhole.bench.kvmhole_linux).

KVM there is the KVM_MEM_PCI_HOLE port (kvmhole.kernel, built once and cached), so
`native`, the 2020 patch's own mechanism, runs beside alias, dense and exit on the
same scan, and host memory is measured for each: the seed's comparison reproduced.
Run inside as `python -m kvmhole.bench.svm PAGES REPS`.
"""

import json
import os
import sys
from pathlib import Path

from kvmhole.errors import KvmholeError

CAVEAT = ("measured inside the SVM host (QEMU TCG emulating an AMD CPU with SVM and nested "
          "paging): TCG times are no hardware times, compare ratios only")
RESULT = "svm_access_cost.json"
SVM_SIZES_MIB = (16, 256)  # the seed's 32 MB per 8192 pages lies between


def measure(pages: int, reps: int, advance, series: str | None = None) -> dict:
    """Boot the SVM host once on `series` (default: Debian's default), with the patched
    KVM of that series, and run the sections there."""
    from kvmhole.svmhost.patched_kvm import run_patched

    result = run_patched([sys.executable, "-m", "kvmhole.bench.svm", str(pages), str(reps)],
                         series, timeout=3600)
    if result.returncode != 0 or RESULT not in result.files:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise KvmholeError(f"the benchmark inside the SVM host failed "
                           f"(exit {result.returncode}): {last}")
    advance()
    return {"caveat": CAVEAT, "boot_to_poweroff_s": result.seconds,
            **json.loads(result.files[RESULT])}


def steps() -> int:
    return 1


def _inside(pages: int, reps: int, sizes_mib=SVM_SIZES_MIB, linux_boots: bool = True) -> None:
    from kvmhole.bench import access_cost, host, kvmhole_linux, linux_boot, memory

    def section(name: str, measure) -> None:
        # one line per section on stderr: a hang's report names the section it was in
        print(f"kvmhole bench inside the SVM host: {name}", file=sys.stderr, flush=True)
        report[name] = measure()

    report = {"host": host.facts()}
    section("access_cost", lambda: access_cost.measure(pages, reps, lambda: None))
    section("memory", lambda: memory.measure(sizes_mib, lambda: None))
    if linux_boots:  # minutes under TCG
        section("linux_boot", linux_boot.measure)
        section("kvmhole_linux", kvmhole_linux.measure)
    (Path(os.environ["KVMHOLE_SVMHOST_OUT"]) / RESULT).write_text(json.dumps(report))


if __name__ == "__main__":
    _inside(int(sys.argv[1]), int(sys.argv[2]))
