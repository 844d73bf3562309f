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

from kvmhole.probes import ProbeUnavailable, host, paths
from kvmhole.probes.paths import ProbePath

PLAN_CACHE = host.HEADER_CACHE / "probe-plan.json"

# The self-test watches every tracepoint any path uses, as (system, event).
WATCHED = tuple(tuple(tp.split(":")) for tp in
                dict.fromkeys(tp for path in paths.PATHS for tp in path.tracepoints))

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
    path: str  # the name of a probes.paths entry (kept a name: the plan is cached as JSON)
    fired: dict[str, int] = field(default_factory=dict)  # "system:event" -> hits in the self-test
    boot_id: str = ""

    @property
    def probe_path(self) -> ProbePath:
        return paths.BY_NAME[self.path]

    @property
    def tracepoints(self) -> list[str]:
        """The tracepoints the monitor attaches for this plan."""
        return list(self.probe_path.tracepoints)


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


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
    return ProbePlan(paths.choose(fired).name, fired, _boot_id())


def probe_plan(refresh: bool = False) -> ProbePlan:
    """The plan for this boot: cached, or found now by the self-test."""
    if not refresh:
        try:
            cached = ProbePlan(**json.loads(PLAN_CACHE.read_text()))
            if cached.boot_id == _boot_id() and cached.path in paths.BY_NAME:
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
