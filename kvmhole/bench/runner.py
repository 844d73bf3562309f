"""Runs the benchmark sections in order, with one progress bar over all of them."""

from collections.abc import Callable
from dataclasses import dataclass

from kvmhole.bench import (
    access_cost,
    host,
    memory,
    probe_overhead,
    qemu,
    scale,
    svm,
    type1,
    views,
)
from kvmhole.errors import KvmholeError


@dataclass(frozen=True)
class Plan:
    """How much of everything one run measures."""

    quick: bool
    pages: int  # ecam-scan reads per run
    reps: int  # repetitions of access cost and probe overhead
    qemu_reps: int  # QEMU runs (each boots SeaBIOS: seconds)
    view_reps: int  # exporter scrapes and TUI refreshes
    sizes_mib: tuple[int, ...]  # hole sizes of the memory section
    svm_reps: int  # access-cost repetitions inside the SVM host (TCG: slow)
    scale_counts: tuple[int, ...]  # idle guests at each step of the scale section
    svm: bool = False  # also boot the SVM host for its access-cost section (bench --svm)
    svm_kernel: str | None = None  # the kernel series it boots (default: Debian's default)
    scale: bool = False  # also run hundreds of idle guests (bench --scale)


QUICK = Plan(quick=True, pages=2048, reps=3, qemu_reps=2, view_reps=20,
             sizes_mib=memory.QUICK_SIZES_MIB, svm_reps=1, scale_counts=scale.QUICK_COUNTS)
FULL = Plan(quick=False, pages=8192, reps=7, qemu_reps=5, view_reps=100,
            sizes_mib=memory.SIZES_MIB, svm_reps=3, scale_counts=scale.COUNTS)


def sections(plan: Plan) -> list[tuple[str, int, Callable]]:
    """(name, progress steps, measure(advance) -> result) for every section."""
    chosen = [
        ("access_cost", access_cost.steps(plan.reps),
         lambda advance: access_cost.measure(plan.pages, plan.reps, advance)),
        ("type1", type1.steps(plan.reps),
         lambda advance: type1.measure(plan.pages, plan.reps, advance)),
        ("qemu", qemu.steps(plan.qemu_reps),
         lambda advance: qemu.measure(plan.pages, plan.qemu_reps, advance)),
        ("memory", memory.steps(plan.sizes_mib),
         lambda advance: memory.measure(plan.sizes_mib, advance)),
        ("probe_overhead", probe_overhead.steps(plan.reps),
         lambda advance: probe_overhead.measure(plan.pages, plan.reps, advance)),
        ("views", views.steps(),
         lambda advance: views.measure(plan.view_reps, advance)),
    ]
    if plan.scale:
        chosen.append(("scale", scale.steps(plan.scale_counts),
                       lambda advance: scale.measure(plan.scale_counts, plan.view_reps // 5,
                                                     advance)))
    if plan.svm:
        chosen.append(("svm", svm.steps(),
                       lambda advance: svm.measure(plan.pages, plan.svm_reps, advance,
                                                   plan.svm_kernel)))
    return chosen


# Sections that need more than this machine's KVM (an SVM host, hundreds of guests):
# if one fails, the report keeps what the others measured and says why it is missing.
OPTIONAL = ("scale", "svm")


def run(plan: Plan, progress) -> dict:
    """progress: an object with start(name, total) and advance(); returns the JSON report.
    A failed optional section is {"error": why} in it."""
    report = {"quick": plan.quick, "host": host.facts()}
    for name, total, measure in sections(plan):
        progress.start(name, total)
        try:
            report[name] = measure(progress.advance)
        except KvmholeError as error:
            if name not in OPTIONAL:
                raise
            report[name] = {"error": str(error)}
    report["qemu"]["versus_kvmhole"] = qemu.compare(report["qemu"], report["access_cost"])
    return report
