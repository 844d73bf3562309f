"""The KVM_MEM_PCI_HOLE port for real, installed as a user installs it: Debian's 6.1 and
6.12 kernels in an SVM host (QEMU TCG, nested SVM), where `dkms install` puts the
port's modules (kernel/pci-hole/ built by DKMS on this machine: tests/dkms_tree.py)
before the stock ones and `modprobe kvm_amd` loads them. There the patch's own
selftest and kvmhole's native strategy run with nested paging and with shadow paging;
then `dkms remove` brings the stock modules back and native is refused again. One boot
per series does all of it (tests/pci_hole_checks.py); each test asserts one behaviour,
on both series and on both paging modes where it applies."""

import json
import os
import re
import shlex
import sys
from pathlib import Path

import pytest

from kvmhole import svmhost
from kvmhole.kernel import release
from kvmhole.svmhost.kernel import BUSYBOX, kernel_image
from kvmhole.svmhost.machine import HOLD_VM, RELEASE_VM
from tests import dkms_tree
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
# One boot per series (two if the first hangs: tests/svm_boot.py): stock, dkms install,
# both paging rounds, dkms remove. A DKMS build not in its cache yet comes first.
BOOT_TIMEOUT_S = 900
pytestmark = pytest.mark.timeout(2 * BOOT_TIMEOUT_S + 600)


def kvm_modules(image) -> list[str]:
    """kvm-amd, kvm-intel and what they depend on, as paths under the image's
    lib/modules/VERSION (its modules.dep)."""
    wanted = set()
    for line in (image.modules / "modules.dep").read_text().splitlines():
        module, _, deps = line.partition(":")
        if Path(module).name.split(".")[0] in ("kvm-amd", "kvm-intel"):
            wanted.update([module, *deps.split()])
    return sorted(wanted)


def job(kernel, tree, image) -> str:
    """The whole lifecycle in the SVM host, one JSON line of checks at each stage."""
    checks = f"{sys.executable} -m tests.pci_hole_checks"
    dkms = f"dkms {{}} {tree.module} -k {kernel.abi} {shlex.join(tree.options)} >&2"
    modules = f"/lib/modules/{kernel.abi}"
    # kmod's depmod, as `dkms install` runs it, reads every module of the image over
    # 9p under TCG (minutes): it is given the modules KVM needs, copied to a tmpfs.
    copy = " && ".join(f"mkdir -p {shlex.quote(str(Path(modules, m).parent))} && "
                       f"cp {shlex.quote(str(image.modules / m))} {modules}/{m}"
                       for m in kvm_modules(image))
    reload = f"{RELEASE_VM} && /sbin/modprobe -r kvm_amd"
    load = f"/sbin/modprobe kvm_amd {{}} && {HOLD_VM}"
    steps = [
        "ln -sfn /proc/self/fd /dev/fd",  # DKMS's bash needs it; devtmpfs has none
        "echo 8 > /proc/sys/kernel/printk",  # a WARN or lockup leaves its stack trace
        f"{RELEASE_VM} && {BUSYBOX} rmmod kvm_amd kvm",
        f"mount -t tmpfs tmpfs {modules}/kernel && {copy} && /sbin/depmod -a {kernel.abi}",
        load.format(""), f"{checks} modules native_refused",  # stock
        reload, dkms.format("install"), load.format(""), checks,
        reload, load.format("npt=0"), f"{checks} {' '.join(SHADOW_CHECKS)}",
        reload, dkms.format("remove"), load.format(""), f"{checks} modules native_refused",
    ]
    return " && ".join(steps)


@pytest.fixture(scope="module", params=kernel_series())
def lifecycle(request):
    series = request.param
    kernel = release.resolve(series)
    tree = dkms_tree.built(kernel)
    done = boot(svmhost.run, ["/bin/sh", "-c", job(kernel, tree, kernel_image(series))],
                series=series, cwd=REPO, env={**os.environ, **tree.env},
                timeout=BOOT_TIMEOUT_S)
    assert done.returncode == 0, f"{done.stderr[-3000:]}\n{done.console[-3000:]}"
    stock, npt, shadow, removed = [json.loads(line) for line in done.stdout.splitlines()]
    assert {line["kernel"] for line in (stock, npt, shadow, removed)} == {kernel.abi}
    return {"series": series, "stock": stock, "npt": npt, "shadow": shadow,
            "removed": removed, "dkms_output": done.stderr}


@pytest.fixture
def reports(lifecycle):
    return lifecycle


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


def test_trace_counts_each_native_hole_read_once_in_the_kernel(reports):
    """`kvmhole trace` beside a native guest, 2 passes over 400 pages: 800 faults, each
    counted once (v2's retry made two on 6.1), on the kvm_exit/kvm_page_fault path."""
    trace = reports["npt"]["trace_native"]
    assert "probes attached (vmx/svm path" in trace["attached"], trace
    assert (trace["guest_hole_reads"], trace["in_kernel"], trace["exits"]) == (800, 800, 0)
    assert trace["kernel_time_count"] == 800


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


def _kvm(stage: dict, module: str = "kvm") -> dict:
    return stage["modules"][module]


@pytest.mark.parametrize("module", ["kvm", "kvm_amd"])
def test_dkms_install_puts_the_port_before_the_stock_modules(lifecycle, module):
    """kmod's depmod prefers updates/ (where Debian's DKMS installs) over the stock
    module of the same name: modprobe then loads the port's, which says so in its
    version, signed with DKMS's own key (Secure Boot needs it enrolled as a MOK)."""
    stock, installed = _kvm(lifecycle["stock"], module), _kvm(lifecycle["npt"], module)
    assert "/kernel/arch/x86/kvm/" in stock["file"] and stock["version"] is None
    assert "/updates/dkms/" in installed["file"]
    assert installed["version"] == f"{dkms_tree.conf('PACKAGE_VERSION')}-pci-hole"
    assert installed["signer"] == "DKMS module signing key"
    assert installed["taint"] == "OE"  # out of tree, signed by a key the kernel lacks


@pytest.mark.parametrize("stage", ["stock", "removed"])
def test_native_is_one_clear_error_without_the_port(lifecycle, stage):
    """Before `dkms install` and after `dkms remove`, the stock kvm is back and loaded."""
    modules = lifecycle[stage]["modules"]
    assert all("/kernel/arch/x86/kvm/" in m["file"] and m["version"] is None
               for m in modules.values()), modules
    refused = lifecycle[stage]["native_refused"]
    lines = refused["stderr"].splitlines()
    assert refused["returncode"] != 0 and len(lines) == 1, refused
    assert lines[0].startswith("kvmhole: error: --hole native: this kernel does not support "
                               "KVM_MEM_PCI_HOLE")
    assert lifecycle[stage]["flag"] is None
