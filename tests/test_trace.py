"""kvmhole trace as a user runs it, beside a real guest."""

import json
import os
import signal
import subprocess

from tests.conftest import KVMHOLE, kvmhole, run_json, start_stopped, wait_registered


def start_trace(*args: str) -> subprocess.Popen:
    """`kvmhole trace ARGS`, returned once its probes are attached."""
    trace = subprocess.Popen([*KVMHOLE, "trace", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    for line in trace.stderr:
        if "probes attached" in line:
            return trace
    raise AssertionError(f"kvmhole trace never attached: {trace.communicate()}")


def lines(trace: subprocess.Popen) -> list[dict]:
    """The JSON lines of interrupted(trace)."""
    return [json.loads(line) for line in interrupted(trace).splitlines()]


def interrupted(trace: subprocess.Popen) -> str:
    """Stops trace as Ctrl-C does (it polls once more first): all it printed. Tests stop
    trace once their guests have ended rather than giving it a --duration, which a slow
    guest start could outlast."""
    trace.send_signal(signal.SIGINT)
    out, err = trace.communicate(timeout=120)
    assert trace.returncode == 0, err
    return out


def test_trace_json_beside_an_alias_guest(run_dir):
    trace = start_trace("--json", "--interval", "0.5")
    run = run_json("ecam-scan", "--hole", "alias", "--type1-pages", "300")
    rows = [r for r in lines(trace) if r["pid"] == run["pid"]]
    assert rows, "the guest never showed up"
    last = rows[-1]
    assert (last["guest"], last["hole_reads_in_kernel"], last["hole_exits_userspace"]) == (
        run["name"], 8192, run["guest_result"]["type1_hole_reads"])
    # by mechanism: ECAM served in the kernel, type-1 through the VMM at two exits a read
    assert last["config"]["ecam"] == {"reads_in_kernel": 8192, "read_exits": 0, "writes": 0,
                                      "functions": 8192, "exits": 0}
    assert last["config"]["type1"] == {"reads_in_kernel": 0, "read_exits": 300, "writes": 0,
                                       "functions": 300, "exits": 600}
    assert run["type1_hole_read_exits"] == 300
    assert last["buses"][0] == {"bus": 0, "ecam": 255, "type1": 255}
    estimate = last["cost_estimates"]["type1"]
    assert estimate["exits"] == 600 and estimate["roundtrip_s"] == last["roundtrip"]["p50_s"]
    assert estimate["userspace_s"] == 600 * estimate["roundtrip_s"]
    assert estimate["kernel_s"] is None  # the emulated path cannot time KVM
    assert last["userspace_exits"]["MMIO"] == run["kvm_stats"]["mmio_exits"]
    # KVM's stats as the monitor read them from the VMM's fds, not from the VMM's report
    assert last["kvm_stats"]["mmio_exits"] == run["kvm_stats"]["mmio_exits"]
    assert {"ts", "pid", "guest", "userspace_exits"} <= set(last)
    assert not last["alive"]


def test_trace_events_stream_every_exit(run_dir):
    trace = start_trace("--json", "--events", "--interval", "0.5")
    run = run_json("ecam-scan", "--hole", "exit", "--pages", "200")
    out = lines(trace)
    events = [e for e in out if e.get("event") == "exit" and e["pid"] == run["pid"]]
    mmio = [e for e in events if e["reason"] == "MMIO"]
    assert len(mmio) == run["kvm_stats"]["mmio_exits"] == 201  # 200 holes + the host bridge
    # the scan reads offset 0 of consecutive function pages from the ECAM base
    assert [e["addr"] for e in mmio] == [run["hole_base"] + i * 4096 for i in range(201)]
    assert all(e["latency_s"] > 0 for e in mmio)
    row = [r for r in out if r.get("pid") == run["pid"] and "event" not in r][-1]
    assert row["hole_exits_userspace"] == run["guest_hole_reads"] == 200


def test_trace_pid_filter_and_text_rows(run_dir):
    watched = subprocess.Popen([*KVMHOLE, "run", "mixed", "--hole", "alias"],
                               stdout=subprocess.DEVNULL)  # runs until stopped
    try:
        wait_registered(watched)  # so that every row, the first too, names it
        trace = start_trace("-p", str(watched.pid), "--interval", "0.5")
        run = run_json("ecam-scan", "--hole", "alias", "--pages", "10")
        out = interrupted(trace)
    finally:
        watched.terminate()
        watched.wait(timeout=60)
    rows = out.splitlines()
    assert rows and all(f"mixed-{watched.pid} (pid {watched.pid}, kvmhole/alias)" in row
                        for row in rows), out
    assert f"pid {run['pid']}" not in out


def test_duration_ends_the_trace_by_itself(run_dir):
    done = kvmhole("trace", "--interval", "0.2", "--duration", "1", timeout=120)
    assert done.returncode == 0 and "probes attached" in done.stderr


def test_bad_hole_range_is_one_line():
    done = kvmhole("trace", "--hole-range", "12:0xc0000000-0xb0000000", check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "kvmhole: error: bad hole range '12:0xc0000000-0xb0000000': START must be below END"]


def test_every_exit_event_is_printed_or_reported_lost(run_dir):
    guests = [start_stopped(["run", "ecam-scan", "--hole", "exit", "--pages", "65535", "--json"],
                            dict(os.environ)) for _ in range(3)]
    pids = [arg for g in guests for arg in ("-p", str(g.pid))]
    trace = start_trace("--json", "--events", "--interval", "0.5", *pids)
    for guest in guests:
        guest.send_signal(signal.SIGCONT)
    runs = [json.loads(g.communicate(timeout=600)[0]) for g in guests]
    out = lines(trace)
    printed = sum(1 for e in out if e.get("event") == "exit")
    lost = sum(e["count"] for e in out if e.get("event") == "lost")
    # each exit but the guest's last is followed by a KVM_RUN: one event (the VMM's count)
    assert printed + lost == sum(sum(r["userspace_exits"].values()) - 1 for r in runs)


def test_trace_events_into_a_reader_that_leaves_stops_quietly(run_dir):
    trace = start_trace("--json", "--events", "--interval", "0.5")
    guest = subprocess.Popen([*KVMHOLE, "run", "ecam-scan", "--hole", "exit", "--pages",
                              "20000"], stdout=subprocess.DEVNULL)
    first = [trace.stdout.readline() for _ in range(5)]  # `| head -5`
    trace.stdout.close()
    err = trace.stderr.read()
    trace.wait(timeout=120)
    guest.wait(timeout=120)
    assert all(json.loads(line) for line in first)
    # click ends a command whose stdout was closed with status 1, and says nothing
    assert trace.returncode == 1 and "Traceback" not in err and "Error" not in err, err
