"""The probe paths: how this host lets the probes see a hole read served in the kernel.

One entry per path carries everything about it: the self-test evidence that picks it,
the tracepoints it attaches, the flag the BPF C is compiled with, what its in-kernel
count counts, whether it can time KVM, and the words every view uses. Views, doctor and
the monitor ask a path; none compares its name. Adding a path is one entry here (and
its #ifdef in bpf/kvmhole.bpf.c).
"""

from dataclasses import dataclass

# Attached on every path: kvm_fpu's load marks KVM_RUN's entry, kvm_userspace_exit its
# return (the round trip, and which processes run guests), kvm_mmio the exits' addresses.
ON_EVERY_PATH = ("kvm:kvm_fpu", "kvm:kvm_mmio", "kvm:kvm_userspace_exit")


@dataclass(frozen=True)
class ProbePath:
    name: str                     # in the snapshot, JSON, metrics' `path` label
    evidence: tuple[str, ...]     # tracepoints that must fire in the self-test to pick it
    own_tracepoints: tuple[str, ...]  # attached beside ON_EVERY_PATH
    cflag: str | None             # what bpf/kvmhole.bpf.c is compiled with for it
    kernel_counts: str            # what its in-kernel count counts: reads, faults, none
    kernel_counts_note: str       # ... in words, for every view's legend
    how: str                      # doctor's "hole reads in kernel from ..."
    times_kvm: bool               # kvm_exit -> kvm_entry: the in-kernel handling time
    mapped_reads_unseen: bool     # alias/dense pages fault once, later reads leave no event
    limitation: str = ""          # what the probe health says of a path that sees less

    @property
    def tracepoints(self) -> tuple[str, ...]:
        return ON_EVERY_PATH + self.own_tracepoints


VMX_SVM = ProbePath(
    name="vmx/svm",
    evidence=("kvm:kvm_exit", "kvm:kvm_page_fault"),
    own_tracepoints=("kvm:kvm_exit", "kvm:kvm_page_fault", "kvm:kvm_entry"),
    cflag="-DVMX_PATH",
    kernel_counts="faults",
    kernel_counts_note="hole faults into KVM: every read of a native hole, but only the "
                       "first read of each mapped (alias/dense) hole page; later reads are "
                       "unseen",
    how="kvm_exit + kvm_page_fault (hardware virtualisation)",
    times_kvm=True,
    mapped_reads_unseen=True,
)
EMULATED = ProbePath(
    name="emulated",
    evidence=("kvmmmu:kvm_mmu_pagetable_walk", "kvmmmu:kvm_mmu_paging_element"),
    own_tracepoints=("kvmmmu:kvm_mmu_pagetable_walk", "kvmmmu:kvm_mmu_paging_element"),
    cflag="-DEMULATED_PATH",
    kernel_counts="reads",
    kernel_counts_note="every hole read is emulated by KVM and seen",
    how="page-walk leaves (this host emulates guests: kvm_exit never fires)",
    times_kvm=False,
    mapped_reads_unseen=False,
)
EXITS_ONLY = ProbePath(
    name="exits-only",
    evidence=(),
    own_tracepoints=(),
    cflag=None,
    kernel_counts="none",
    kernel_counts_note="hole reads served in the kernel cannot be seen on this host",
    how="nowhere (see the limitation)",
    times_kvm=False,
    mapped_reads_unseen=False,
    limitation="neither kvm_page_fault nor page-walk tracepoints fire here: hole reads "
               "served in the kernel cannot be seen, only exits to userspace",
)
# In order of preference: the first whose evidence fired is the host's.
PATHS = (VMX_SVM, EMULATED, EXITS_ONLY)
BY_NAME = {path.name: path for path in PATHS}


def choose(fired: dict[str, int]) -> ProbePath:
    """The path a self-test's hits ("system:event" -> count) show this host has."""
    return next(p for p in PATHS if all(fired.get(tp) for tp in p.evidence))


def summary() -> str:
    """Every path in one line, for help texts: 'vmx/svm (faults), emulated (reads), ...'."""
    return ", ".join(f"{p.name} ({p.kernel_counts})" for p in PATHS)
