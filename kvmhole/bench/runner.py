"""Runs the benchmark sections in order, with one progress bar over all of them."""

from collections.abc import Callable
from dataclasses import dataclass

from kvmhole.bench import access_cost, host, memory


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
    def sizes_mib(self) -> tuple[int, ...]:
        return memory.QUICK_SIZES_MIB if self.quick else memory.SIZES_MIB


def sections(plan: Plan) -> list[tuple[str, int, Callable]]:
    """(name, progress steps, measure(advance) -> result) for every section."""
    return [
        ("access_cost", access_cost.steps(plan.reps),
         lambda advance: access_cost.measure(plan.pages, plan.reps, advance)),
        ("memory", memory.steps(plan.sizes_mib),
         lambda advance: memory.measure(plan.sizes_mib, advance)),
    ]


def run(plan: Plan, progress) -> dict:
    """progress: an object with start(name, total) and advance(); returns the JSON report."""
    report = {"quick": plan.quick, "host": host.facts()}
    for name, total, measure in sections(plan):
        progress.start(name, total)
        report[name] = measure(progress.advance)
    return report
