"""The hardware probe path (kvm_exit, kvm_page_fault, kvm_entry) inside the SVM host,
against ground truth: the guest's own count and KVM's binary stats.

On VMX/SVM a mapped (alias/dense) hole page faults into KVM on its first read only;
later reads are served by the CPU and no tracepoint sees them. So the in-kernel
count is of faults: equal to the guest's reads for a single pass, equal to the pages
for a guest that re-reads them.
"""

import json
import re
import signal
import subprocess
import urllib.request

import pytest

from kvmhole.guests import multiboot
from kvmhole.probes.monitor import Monitor
from tests.conftest import KVMHOLE, kvmhole, result, start_guest, wait_for
from tests.test_bpf_builds import BUILDS, load

PAGES = 400


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    path = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KVMHOLE_RUN_DIR", str(path))
        yield path




def test_doctor_picks_the_vmx_svm_plan():
    done = kvmhole("doctor", timeout=240)
    out = done.stdout
    # 6.12's headers made bcc's clang 14 warn through every command (probes/host.py)
    assert "warning" not in done.stderr, done.stderr
    assert re.search(r"^ok +probe path +vmx/svm:", out, re.M), out
    for tracepoint in ("kvm:kvm_exit", "kvm:kvm_page_fault", "kvm:kvm_entry"):
        assert re.search(rf"^fires +{tracepoint} ", out, re.M), out


@pytest.mark.parametrize(("path", "auto_track", "events"), BUILDS)
def test_build_passes_the_kernels_verifier(path, auto_track, events):
    load(path, auto_track, events)


def assert_exact(guest, run: dict, passes: int = 1) -> None:
    """One finished guest as the monitor saw it, against the guest and KVM."""
    assert guest is not None and not guest.alive, f"guest {run['pid']} was not reported"
    assert (guest.name, guest.strategy) == (run["name"], run["hole"])
    reads = run["guest_hole_reads"]
    assert reads == PAGES * passes
    if run["hole"] == "exit":  # every read exits, each pass
        assert (guest.hole_reads_in_kernel, guest.hole_read_exits) == (0, reads)
    else:  # mapped: one fault per page, whatever the passes
        assert (guest.hole_reads_in_kernel, guest.hole_read_exits) == (PAGES, 0)
    # KVM's binary stats, as the VMM read them when the guest finished
    assert guest.userspace_exits.get("MMIO", 0) == run["kvm_stats"]["mmio_exits"]
    # one round trip (KVM_RUN's return to its next entry) per exit but the last
    assert guest.roundtrip.count == sum(guest.userspace_exits.values()) - 1
    # every fault served in the kernel has its kvm_exit -> kvm_entry time
    assert guest.kernel_time.count == guest.hole_reads_in_kernel
    assert (guest.kernel_time.sum_s > 0) == (guest.hole_reads_in_kernel > 0)


def test_four_guests_at_once_exact_on_the_hardware_path(registry):
    with Monitor() as monitor:
        assert monitor.plan.path == "vmx/svm"
        monitor.poll()
        runs = {
            ("exit", 2): start_guest("ecam-scan", "--hole", "exit", "--pages", str(PAGES),
                                     "--passes", "2"),
            ("alias", 1): start_guest("ecam-scan", "--hole", "alias", "--pages", str(PAGES)),
            ("dense", 1): start_guest("ecam-scan", "--hole", "dense", "--pages", str(PAGES)),
            ("alias", 3): start_guest("ecam-scan", "--hole", "alias", "--pages", str(PAGES),
                                      "--passes", "3"),
        }
        done = {key: result(process) for key, process in runs.items()}
        snapshot = monitor.poll()
    for (_, passes), run in done.items():
        assert_exact(snapshot.guest(run["pid"]), run, passes)


def test_qemu_guest_is_counted_on_the_hardware_path(registry, tmp_path):
    debugcon = tmp_path / "debugcon.txt"
    with Monitor() as monitor:
        qemu = multiboot.start_qemu(PAGES, debugcon, name="mb-scan")
        run = multiboot.finish(qemu, debugcon, timeout=240)
        guest = monitor.poll().guest(qemu.pid)
    assert run.hole_reads == PAGES
    assert guest is not None and guest.vmm == "qemu"
    # QEMU has no hole memslot: it answers absent functions in userspace with all-ones
    ecam = guest.config["ecam"]
    assert (ecam.read_exits, ecam.reads_in_kernel) == (PAGES, 0)


def _serving(log) -> str | None:
    match = re.search(r"serving http://(\S+)/metrics", log.read_text())
    return match and match[1]


def _sample(metrics: str, name: str, **labels) -> float | None:
    for line in metrics.splitlines():
        if line.startswith((name + "{", name + " ")) and all(
                f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_trace_export_and_top_show_the_hardware_path(registry, tmp_path):
    """All three views load their probes here and show a guest's faults and their
    in-kernel handling time; the two that count show the exact count."""
    trace_err, export_err = tmp_path / "trace.err", tmp_path / "export.err"
    with trace_err.open("w") as t, export_err.open("w") as e:
        trace = subprocess.Popen([*KVMHOLE, "trace", "--json", "--interval", "0.5"],
                                 stdout=subprocess.PIPE, stderr=t, text=True)
        export = subprocess.Popen([*KVMHOLE, "export", "--listen", "127.0.0.1:0",
                                   "--interval", "0.2"], stderr=e)
    mixed = None
    try:
        wait_for("trace's probes", lambda: "probes attached" in trace_err.read_text(),
                 timeout=240)
        assert "in-kernel = hole faults" in trace_err.read_text()
        address = wait_for("export to serve", lambda: _serving(export_err), timeout=240)
        run = result(start_guest("ecam-scan", "--hole", "alias", "--pages", str(PAGES),
                                 "--passes", "2", "--name", "views-scan"))
        # A mapped hole page faults into KVM on its first read only, and the endless
        # guest now wraps around the window instead of faulting past it: 2 pages a
        # batch (a batch per 10 ms pause) keep its first pass, and so its faults, going
        # for over 5 minutes, while top loads its probes and watches.
        mixed = subprocess.Popen([*KVMHOLE, "run", "mixed", "--hole", "alias", "--pages", "2",
                                  "--name", "views-mixed"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)

        def scraped() -> str:
            return urllib.request.urlopen(f"http://{address}/metrics", timeout=30).read().decode()

        def polls(text: str) -> float:
            return _sample(text, "kvmhole_exporter_poll_duration_seconds_count")

        # The guest has exited, but a scrape may still serve a snapshot polled while it
        # ran. Three polls counted after a scrape mean one began after it (a poll is
        # counted just before its snapshot is stored), and so serves the final counts.
        since = polls(scraped())

        def final() -> str | None:
            text = scraped()
            return text if polls(text) >= since + 3 else None

        metrics = wait_for("three polls after the scan guest exited", final, timeout=240)
        assert _sample(metrics, "kvmhole_pci_hole_reads_total", guest="views-scan",
                       mechanism="ecam", served="kernel") == PAGES
        assert _sample(metrics, "kvmhole_hole_kernel_seconds_count",
                       guest="views-scan") == PAGES
        assert _sample(metrics, "kvmhole_probe_info", path="vmx/svm",
                       kernel_counts="faults") == 1

        top = kvmhole("top", "--interval", "3", "-p", str(mixed.pid), timeout=240).stdout
        assert "probe path vmx/svm; in-kernel = hole faults" in top, top
        row = next(line for line in top.splitlines() if line.startswith("views-mixed"))
        assert row.split()[-1] in ("µs", "ns", "ms"), row  # kernel p50 is a time, not "-"
    finally:
        for process in (trace, export, mixed):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGINT if process is trace else signal.SIGTERM)
        out, _ = trace.communicate(timeout=60)
        export.wait(timeout=60)
        if mixed is not None:
            mixed.wait(timeout=60)
    rows = [json.loads(line) for line in out.splitlines()]
    last = [r for r in rows if r["pid"] == run["pid"]][-1]
    assert (last["hole_reads_in_kernel"], last["hole_read_exits"]) == (PAGES, 0)
    assert last["kernel_time"]["count"] == PAGES
