"""The KVM_MEM_PCI_HOLE port for real: Debian's 6.1 and 6.12 kernels in an SVM host (QEMU
TCG, nested SVM), kvm_amd replaced by the patched modules of that series, running the
patch's own selftest and kvmhole's native strategy, with nested paging and with shadow
paging. One boot per series runs every check (tests/pci_hole_checks.py); each test
asserts one behaviour, on both series and on both paging modes where it applies."""

import json
import re
import sys
from pathlib import Path

import pytest

from kvmhole.kernel import release
from kvmhole.kernel.build import build
from kvmhole.svmhost.kernel import BUSYBOX
from kvmhole.svmhost.machine import HOLD_VM, RELEASE_VM
from kvmhole.svmhost.patched_kvm import run_patched
from tests.conftest import kernel_series, kvmhole
from tests.svm_boot import boot

REPO = Path(__file__).resolve().parents[1]
GPA = 0xC0000000
WRITTEN = 0xDEAFBEEF
TAINT_OOT, TAINT_UNSIGNED = 4096, 8192  # what loading our modules must (only) add
BAD_LOG = re.compile(r"WARNING|BUG|Oops|general protection|Call Trace|RIP:|panic")
# Run again after reloading kvm-amd with npt=0: FNAME(page_fault) instead of the TDP MMU.
SHADOW_CHECKS = ("selftest", "churn", "ecam_native", "ecam_auto", "hole_rw_native")
PAGING = ("npt", "shadow")
# The port's memslot flag per series (kernel/pci-hole/patches/<series>/0001): 6.12's
# mainline took bit 2 for KVM_MEM_GUEST_MEMFD.
FLAG = {"6.1": 1 << 2, "6.12": 1 << 15}
# One boot for the module (two if the first hangs: tests/svm_boot.py): a fresh module
# build (about a minute), boot, both rounds.
BOOT_TIMEOUT_S = 600
pytestmark = pytest.mark.timeout(2 * BOOT_TIMEOUT_S + 200)


@pytest.fixture(scope="module", params=kernel_series())
def reports(request):
    series = request.param
    checks = f"{sys.executable} -m tests.pci_hole_checks"
    kvm_amd = build(release.resolve(series)).modules["kvm-amd"]
    shadow = (f"{RELEASE_VM} && {BUSYBOX} rmmod kvm_amd && "
              f"{BUSYBOX} insmod {kvm_amd} npt=0 && {HOLD_VM}")
    # printk 8: a WARN or lockup in the SVM host leaves its stack trace on the console.
    script = (f"echo 8 > /proc/sys/kernel/printk && {checks} && {shadow} && "
              f"{checks} {' '.join(SHADOW_CHECKS)}")
    done = boot(run_patched, ["/bin/sh", "-c", script], series, cwd=REPO,
                timeout=BOOT_TIMEOUT_S)
    assert done.returncode == 0, f"{done.stderr}\n{done.console[-3000:]}"
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    found = {"npt" if line["npt"] else "shadow": line for line in lines}
    assert {line["kernel"] for line in lines} == {release.resolve(series).abi}
    return {"series": series, **found}


@pytest.fixture(params=PAGING)
def report(request, reports):
    return reports[request.param]


def test_each_series_uses_its_ports_flag(reports):
    """6.1 keeps the 2020 bit; 6.12's port moved off mainline's KVM_MEM_GUEST_MEMFD, and
    the VMM learnt which by behaviour."""
    assert {reports[p]["flag"] for p in PAGING} == {FLAG[reports["series"]]}


def read(value=0xFF):
    return {"exit": "IO", "port": 0x10, "value": value}


def write(offset):
    return {"exit": "MMIO", "addr": GPA + offset, "len": 8, "write": True, "value": WRITTEN}


def test_selftest_reads_are_all_ones_in_kvm_and_writes_exit_with_address_and_data(report):
    """Reads at 0 and 5000 never reach us (the guest reports 0xff over port I/O); u64
    writes at 1024 and 8000 exit as KVM_EXIT_MMIO; the written places still read 0xff."""
    assert report["selftest"]["exits"] == [read(), read(), write(1024), write(8000),
                                           read(), read(), {"exit": "HLT"}]


def test_each_hole_access_faults_once_and_leaves_no_mmio_spte(report):
    assert report["selftest"]["pf_emulate"] == 6  # 4 reads + 2 writes, no retry
    assert report["selftest"]["pf_mmio_spte_created"] == 0


def test_slot_rules(reports):
    assert reports["npt"]["slot_rules"] == {
        "other_port_bit": "EINVAL", "userspace_addr": "EINVAL", "readonly": "EINVAL",
        "log_dirty": "EINVAL", "overlapping_ram": "EEXIST", "create": "OK",
        "clear_flag": "EINVAL", "move": "OK", "delete": "OK", "set_flag_on_ram": "EINVAL"}


def test_slot_deleted_and_readded_while_a_vcpu_reads_it(report):
    churn = report["churn"]
    assert churn["cycles"] == 50 and churn["reads"] > 0
    assert churn["values"] == [0xFF] and churn["other"] == []


@pytest.mark.parametrize("check", ["ecam_native", "ecam_auto"])
def test_ecam_scan_native_serves_every_hole_read_in_kvm(report, check):
    """--hole auto must pick native here; 8192 hole reads, none exits to the VMM."""
    run = report[check]
    assert run["hole"] == "native" and run["status"] == "ok"
    assert run["guest_hole_reads"] == 8192 and run["hole_read_exits"] == 0
    assert run["userspace_exits"]["MMIO"] == run["device_mmio_exits"] == 1
    assert run["kvm_stats"]["pf_emulate"] == 8192 + 1  # + the host bridge's MMIO


def test_hole_rw_native(report):
    run = report["hole_rw_native"]
    assert run["hole"] == "native" and run["status"] == "ok"
    assert run["guest_hole_reads"] > 0 and run["hole_read_exits"] == 0
    assert run["hole_write_exits"] == len(run["guest_result"]["writes"]) > 0


def test_probes_count_each_native_hole_read_once_in_the_kernel(reports):
    """2 passes over 400 pages: 800 faults, each counted once (v2's retry made two)."""
    probes = reports["npt"]["probes_native"]
    assert probes["path"] == "vmx/svm" and probes["guest_hole_reads"] == 800
    assert (probes["in_kernel"], probes["exits"]) == (800, 0)
    assert probes["kernel_time_count"] == 800


def test_linux_native_reads_the_hole_in_kvm_counted_by_the_probes_and_tracefs(reports):
    """kvmhole's VMM boots Debian's kernel on 256 buses without type-1 ports: the
    peer-bridge scan's ECAM reads of absent functions are all served in KVM, none exits;
    the probes count as many as tracefs's read faults in the hole, of as many functions."""
    linux = reports["npt"]["linux_native"]
    assert (linux.get("status"), linux.get("end")) == ("ok", "poweroff"), linux
    assert linux["hole_read_exits"] == 0
    assert linux["in_kernel"] == linux["tracefs_reads"] >= 255 * 32
    assert linux["functions"] == linux["tracefs_functions"] >= 255 * 32
    # the VMM's MMIO exits: the host bridge's config space and the hole writes only
    assert linux["userspace_exits"]["MMIO"] < 100


def test_trace_counts_each_native_hole_read_in_the_kernel(reports):
    """`kvmhole trace` (the same probes, through the CLI) beside a native guest."""
    assert reports["npt"]["trace_native"] == {"guest_hole_reads": 800, "in_kernel": 800,
                                              "exits": 0}


def test_bench_runs_native_beside_the_others(reports):
    """`kvmhole bench --svm`'s sections on the patched KVM: native is measured on the
    same scan as the rest and never exits; only the strategies that map memory add
    memslots for the hole."""
    bench = reports["npt"]["bench"]
    exits = {name: s["userspace_exits_per_read"]
             for name, s in bench["access_cost"]["strategies"].items()}
    assert exits == {"native": 0.0, "exit": 1.0, "exit (C loop)": 1.0, "dense": 0.0,
                     "alias": 0.0}
    assert bench["host"]["virtualization"] == "svm"
    assert bench["access_cost"]["headline"]["in_kernel_strategy"] == "native"
    memslots = {row["strategy"]: row["memslots"] for row in bench["memory"]}
    assert set(memslots) == {"exit", "native", "alias", "dense"}
    assert memslots["native"] > memslots["exit"]  # its hole slots, unbacked


def test_kernel_log_stays_clean(report):
    logs = {key: lines for key, lines in report.items() if key.endswith("_dmesg")}
    assert len(logs) >= len(SHADOW_CHECKS)
    for check, lines in logs.items():
        assert [line for line in lines if BAD_LOG.search(line)] == [], check
    assert report["tainted"] & ~(TAINT_OOT | TAINT_UNSIGNED) == 0, report["tainted"]


def test_pci_hole_kvm_and_no_kvm_exclude_each_other():
    done = kvmhole("svmhost", "--pci-hole-kvm", "--no-kvm", "--", "true", check=False)
    assert done.returncode == 2 and "exclude each other" in done.stderr
