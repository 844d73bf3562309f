"""The probe plan: which tracepoints fire on this host, found by a short self-test.

KVM has two ways of seeing a hole read: VMX/SVM hosts exit to KVM on the fault
(kvm_exit, kvm_page_fault, kvm_entry fire), while hosts that emulate guests (PVM)
never fire those and walk the guest page tables in software instead. Which kind
this host is cannot be read off reliably, so a tiny kvmhole guest is run once per
boot while a counting program watches, and the result is cached.
"""

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kvmhole.probes import ProbeUnavailable, host

PLAN_CACHE = host.HEADER_CACHE / "probe-plan.json"

WATCHED = (
    ("kvm", "kvm_exit"), ("kvm", "kvm_page_fault"), ("kvm", "kvm_entry"),
    ("kvmmmu", "kvm_mmu_pagetable_walk"), ("kvmmmu", "kvm_mmu_paging_element"),
    ("kvm", "kvm_mmio"), ("kvm", "kvm_userspace_exit"), ("kvm", "kvm_fpu"),
)
# Attached on every path; kvm_fpu's load marks KVM_RUN's entry, kvm_userspace_exit
# its return (the round trip, and which processes run guests)
ON_EVERY_PATH = ("kvm:kvm_fpu", "kvm:kvm_mmio", "kvm:kvm_userspace_exit")

# Hits per (process, tracepoint): the self-test guest's own are read afterwards,
# so the counter can be attached before the guest's pid is known.
_COUNTER = """
struct key { u32 tgid; u32 tracepoint; };
BPF_HASH(hits, struct key, u64, 4096);
static __always_inline int hit(u32 i) {
    struct key k = { .tgid = bpf_get_current_pid_tgid() >> 32, .tracepoint = i };
    hits.increment(k);
    return 0;
}
"""


@dataclass
class ProbePlan:
    path: str  # "emulated" (page walks), "vmx/svm" (kvm_exit + kvm_page_fault), "exits-only"
    fired: dict[str, int] = field(default_factory=dict)  # "system:event" -> hits in the self-test
    boot_id: str = ""

    @property
    def tracepoints(self) -> list[str]:
        """The tracepoints the monitor attaches for this plan."""
        used = list(ON_EVERY_PATH)
        if self.path == "emulated":
            used += ["kvmmmu:kvm_mmu_pagetable_walk", "kvmmmu:kvm_mmu_paging_element"]
        elif self.path == "vmx/svm":
            used += ["kvm:kvm_exit", "kvm:kvm_page_fault", "kvm:kvm_entry"]
        return used

    @property
    def message(self) -> str:
        if self.path == "exits-only":
            return ("neither kvm_page_fault nor page-walk tracepoints fire here: hole reads "
                    "served in the kernel cannot be seen, only exits to userspace")
        return ""


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def _choose(fired: dict[str, int]) -> str:
    if fired.get("kvm:kvm_exit") and fired.get("kvm:kvm_page_fault"):
        return "vmx/svm"
    if fired.get("kvmmmu:kvm_mmu_pagetable_walk") and fired.get("kvmmmu:kvm_mmu_paging_element"):
        return "emulated"
    return "exits-only"


def self_test() -> ProbePlan:
    """Run a 4-read kvmhole guest under a counting program; see what fired."""
    host.prepare()
    from bcc import BPF  # imported late: only after the header tree and tracefs exist

    text = _COUNTER + "".join(
        f"TRACEPOINT_PROBE({system}, {event}) {{ return hit({i}); }}\n"
        for i, (system, event) in enumerate(WATCHED))
    bpf = BPF(text=text.encode(), cflags=host.CLANG_QUIET)
    try:
        with tempfile.TemporaryDirectory() as run_dir:
            env = {**os.environ, "KVMHOLE_RUN_DIR": run_dir}  # invisible to other monitors
            child = subprocess.Popen(
                [sys.executable, "-m", "kvmhole", "run", "ecam-scan", "--pages", "4",
                 "--hole", "alias", "--json"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
            _, err = child.communicate(timeout=120)
        if child.returncode != 0:
            raise ProbeUnavailable(f"the probe self-test guest failed: {err.strip()[-300:]}")
        seen = {k.tracepoint: v.value for k, v in bpf[b"hits"].items() if k.tgid == child.pid}
        fired = {f"{s}:{e}": seen.get(i, 0) for i, (s, e) in enumerate(WATCHED)}
    finally:
        bpf.cleanup()
    for tracepoint in ("kvm:kvm_userspace_exit", "kvm:kvm_fpu"):
        if not fired[tracepoint]:
            raise ProbeUnavailable(f"{tracepoint} did not fire for a test guest: this "
                                   "kernel's KVM tracepoints are unusable")
    return ProbePlan(_choose(fired), fired, _boot_id())


def probe_plan(refresh: bool = False) -> ProbePlan:
    """The plan for this boot: cached, or found now by the self-test."""
    if not refresh:
        try:
            cached = ProbePlan(**json.loads(PLAN_CACHE.read_text()))
            if cached.boot_id == _boot_id():
                return cached
        except (OSError, ValueError, TypeError):
            pass
    plan = self_test()
    try:
        PLAN_CACHE.parent.mkdir(parents=True, exist_ok=True)
        tmp = PLAN_CACHE.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(plan)))
        os.replace(tmp, PLAN_CACHE)
    except OSError:
        pass  # an uncached plan only costs the self-test again
    return plan
