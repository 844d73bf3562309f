"""Runs the benchmark sections in order, with one progress bar over all of them."""

from collections.abc import Callable
from dataclasses import dataclass

from kvmhole.bench import access_cost, host, memory, probe_overhead, qemu, views


@dataclass
class Plan:
    quick: bool

    @property
    def pages(self) -> int:
        return 2048 if self.quick else 8192

    @property
    def reps(self) -> int:
        return 3 if self.quick else 7

    @property
    def qemu_reps(self) -> int:
        return 2 if self.quick else 5

    @property
    def view_reps(self) -> int:
        return 20 if self.quick else 100

    @property
    def sizes_mib(self) -> tuple[int, ...]:
        return memory.QUICK_SIZES_MIB if self.quick else memory.SIZES_MIB


def sections(plan: Plan) -> list[tuple[str, int, Callable]]:
    """(name, progress steps, measure(advance) -> result) for every section."""
    return [
        ("access_cost", access_cost.steps(plan.reps),
         lambda advance: access_cost.measure(plan.pages, plan.reps, advance)),
        ("qemu", qemu.steps(plan.qemu_reps),
         lambda advance: qemu.measure(plan.pages, plan.qemu_reps, advance)),
        ("memory", memory.steps(plan.sizes_mib),
         lambda advance: memory.measure(plan.sizes_mib, advance)),
        ("probe_overhead", probe_overhead.steps(plan.reps),
         lambda advance: probe_overhead.measure(plan.pages, plan.reps, advance)),
        ("views", views.steps(),
         lambda advance: views.measure(plan.view_reps, advance)),
    ]


def run(plan: Plan, progress) -> dict:
    """progress: an object with start(name, total) and advance(); returns the JSON report."""
    report = {"quick": plan.quick, "host": host.facts()}
    for name, total, measure in sections(plan):
        progress.start(name, total)
        report[name] = measure(progress.advance)
    report["qemu"]["versus_kvmhole"] = qemu.compare(report["qemu"], report["access_cost"])
    return report
