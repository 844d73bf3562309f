"""Debian's stock kernel booted by kvmhole's own VMM (`kvmhole run linux`) in the SVM
host, on the machine the seed's claim is about: an ECAM window of 256 buses in the
MCFG, reserved by a PNP0C02 device, and no type-1 ports. Linux then refuses the MCFG
early (its check needs type-1), accepts it late, and its peer-bridge scan reads buses
1-255 through ECAM: every absent function it probes is a hole read.

With the exit strategy each is one userspace exit, counted three ways that must
agree, all in the same run: the VMM's own count, `kvmhole trace` (the probes) and a
private tracefs instance (tests/tracefs_truth.py).
"""

import json
import signal
import subprocess
import time

import pytest

from tests.conftest import KVMHOLE
from tests.tracefs_truth import TraceInstance, truth

BUSES = 256
PEER_BRIDGE_SCAN = (BUSES - 1) * 32  # pcibios_fixup_peer_bridges(): slot 0-31 of buses 1-255
BOOT_TIMEOUT_S = 600
# The SVM host's TCG-emulated SVM breaks XSAVE signal frames in its guests (QEMU -cpu
# host there panics the same way at init's first signal): x87/SSE state by FXSAVE.
APPEND = "noxsave"


def _wait(what: str, check, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


# one boot of about three minutes under TCG (183 s), beyond the per-test default there
@pytest.mark.timeout(BOOT_TIMEOUT_S + 120)
def test_linux_without_type1_reads_absent_functions_by_ecam_counted_three_ways(tmp_path):
    trace_out, trace_err = tmp_path / "trace.out", tmp_path / "trace.err"
    with trace_out.open("w") as out, trace_err.open("w") as err:
        trace = subprocess.Popen([*KVMHOLE, "trace", "--json", "--interval", "0.5"],
                                 stdout=out, stderr=err)
    try:
        _wait("trace's probes", lambda: "probes attached" in trace_err.read_text())
        with TraceInstance() as tracefs:
            done = subprocess.run(
                [*KVMHOLE, "run", "linux", "--buses", str(BUSES), "--hole", "exit", "--json",
                 "--append", APPEND,
                 "--timeout", str(BOOT_TIMEOUT_S), "--console", str(tmp_path / "console")],
                capture_output=True, text=True, timeout=BOOT_TIMEOUT_S + 60)
            lines = tracefs.stop()
        run = json.loads(done.stdout)
        console = (tmp_path / "console").read_text(errors="replace")
        assert run["status"] == "ok", f"{done.stderr}\n{console[-3000:]}"

        def final_row():  # the monitor's row once it saw the guest gone: its last counts
            rows = [r for r in _rows(trace_out) if r["pid"] == run["pid"] and not r["alive"]]
            return rows[-1] if rows else None
        row = _wait("trace's row of the ended guest", final_row)
    finally:
        trace.send_signal(signal.SIGINT)
        trace.wait(timeout=60)

    assert run["guest_result"]["end"] == "poweroff"
    assert any("reserved in ACPI motherboard resources" in line
               for line in run["guest_result"]["report"]), run["guest_result"]["report"]
    seen = truth(lines, run["pid"], (run["hole_base"], run["hole_base"] + run["hole_size"]))
    ecam, type1 = row["config"]["ecam"], row["config"]["type1"]
    # the VMM, trace and tracefs: every absent-function read by ECAM, one exit each
    assert run["hole_read_exits"] == ecam["read_exits"] == seen.ecam.read_exits \
        == seen.ecam.reads
    assert run["hole_functions"] == ecam["functions"] == len(seen.ecam.functions)
    assert ecam["reads_in_kernel"] == 0
    assert run["hole_functions"] >= PEER_BRIDGE_SCAN
    # No type-1 ports: the VMM answered no config read by 0xCF8/0xCFC. (The kernel's
    # early quirks still read through them and get all-ones from a bus where nothing
    # decodes them: trace counted 141 such reads of 104 functions, tracefs 143 of 105,
    # in one run; not yet explained, so not asserted here.)
    assert run["type1_hole_read_exits"] == 0
    assert seen.type1.reads > 0 and type1["read_exits"] > 0
    assert run["userspace_exits"] == dict(seen.exits)
