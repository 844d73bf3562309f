"""kvmhole's own VMM booting the same stock kernel inside the SVM host (`kvmhole run
linux`, Debian's kernel into the busybox initramfs that powers off), watched by the
probes: per hole strategy on the seed's machine (an MCFG of 256 buses, no type-1
ports), and per PCI shape with the exit strategy, every row booted `reps` times,
interleaved. Per row: absent-function reads by mechanism, served in KVM or exited
(the probes' counts; the VMM's own beside them), userspace exits, the guest's uptime
at its init and the run's wall time. TCG times: compare ratios only.
"""

import json
import statistics
import subprocess
import sys

from kvmhole.errors import KvmholeError

# The SVM host's TCG-emulated SVM breaks XSAVE signal frames in its guests (QEMU -cpu
# host there panics the same way at init's first signal): x87/SSE state by FXSAVE.
SVM_HOST_APPEND = "noxsave"
SEED = ["--buses", "256"]
# label: (kvmhole run linux options, kernel parameters added to SVM_HOST_APPEND)
ROWS = {
    "native": ([*SEED, "--hole", "native"], ""),
    "alias": ([*SEED, "--hole", "alias"], ""),
    "dense": ([*SEED, "--hole", "dense"], ""),
    "exit": ([*SEED, "--hole", "exit"], ""),
    "exit (C loop)": ([*SEED, "--hole", "exit", "--c-fastpath"], ""),
    "exit, 1 bus": (["--buses", "1", "--hole", "exit"], ""),
    "exit, pci=lastbus=0": ([*SEED, "--hole", "exit"], "pci=lastbus=0"),
    "exit, type-1": ([*SEED, "--hole", "exit", "--type1"], ""),
    "exit, type-1, reserve=0xcf8,8": ([*SEED, "--hole", "exit", "--type1"], "reserve=0xcf8,8"),
}
REPS = 2
BOOT_TIMEOUT_S = 600


def _boot(args: list[str], append: str) -> dict:
    command = [sys.executable, "-m", "kvmhole", "run", "linux", *args, "--json", "--console",
               "/dev/null", "--timeout", str(BOOT_TIMEOUT_S),
               "--append", f"{SVM_HOST_APPEND} {append}".strip()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=BOOT_TIMEOUT_S + 60)
    run = json.loads(done.stdout) if done.stdout.startswith("{") else None
    if run is None or run["status"] != "ok":
        raise KvmholeError(f"kvmhole run linux {' '.join(args)} {append} failed: "
                           f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return run


def _init_s(run: dict) -> float:
    """The guest's uptime when its init reported ('init after 2.94 s, ...')."""
    first = run["guest_result"]["report"][0]
    return float(first.split("init after ", 1)[1].split(" s", 1)[0])


def measure(reps: int = REPS) -> dict:
    from kvmhole.probes.monitor import Monitor

    samples = {label: [] for label in ROWS}
    with Monitor() as monitor:
        for _ in range(reps):
            for label, (args, append) in ROWS.items():  # interleaved: drift hits all alike
                monitor.poll()
                run = _boot(args, append)
                guest = monitor.poll().guest(run["pid"])
                if guest is None:
                    raise KvmholeError(f"the probes did not see kvmhole run linux ({label})")
                samples[label].append({
                    "config": {m: {"reads_in_kernel": c.reads_in_kernel,
                                   "read_exits": c.read_exits, "functions": c.functions}
                               for m, c in guest.config.items()},
                    "vmm_hole_read_exits": run["hole_read_exits"],
                    "vmm_type1_hole_read_exits": run["type1_hole_read_exits"],
                    "userspace_exits": sum(run["userspace_exits"].values()),
                    "init_s": _init_s(run), "wall_s": run["wall_s"]})
    return {"reps": reps, "append": SVM_HOST_APPEND,
            "rows": {label: _summary(ROWS[label], runs) for label, runs in samples.items()}}


def _summary(row: tuple[list[str], str], runs: list[dict]) -> dict:
    """Counts from the last boot, and whether every boot of the row made the same;
    times as median and range."""
    args, append = row
    return {"args": args, "append": append,
            **{k: v for k, v in runs[-1].items() if k not in ("init_s", "wall_s")},
            "counts_equal_across_reps": all(r["config"] == runs[0]["config"] for r in runs),
            **{key: {"median": statistics.median(r[key] for r in runs),
                     "min": min(r[key] for r in runs), "max": max(r[key] for r in runs)}
               for key in ("init_s", "wall_s")}}
