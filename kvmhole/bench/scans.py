"""The ecam-scan runs every benchmark section is made of: in this process (the
Machine's own wall time) or as a `kvmhole run` process (whole-process figures:
start-up, RSS)."""

import json
import subprocess
import sys
import time

from kvmhole.vmm import Machine, MachineConfig, RunResult


def scan(strategy: str, pages: int, scan_ram: bool = False,
         c_fastpath: bool = False, type1_pages: int = 0) -> RunResult:
    """Run ecam-scan here; a guest that did not make `pages` reads (and `type1_pages`
    type-1 reads) fails the benchmark."""
    config = MachineConfig(guest="ecam-scan", hole=strategy, pages=pages, scan_ram=scan_ram,
                           c_fastpath=c_fastpath, type1_pages=type1_pages)
    result = Machine(config).run()
    made = (result.guest_hole_reads, result.guest_result["type1_hole_reads"])
    if made != (pages, type1_pages):
        raise RuntimeError(f"{strategy}: the guest made {made} ECAM and type-1 reads, "
                           f"not {(pages, type1_pages)}")
    return result


def scan_process(strategy: str, *args: str) -> tuple[dict, float]:
    """`kvmhole run ecam-scan --hole STRATEGY ARGS --json`: its JSON and wall time."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "kvmhole", "run", "ecam-scan", "--hole",
                           strategy, *args, "--json"], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout), time.monotonic() - started
