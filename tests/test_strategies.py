"""The hole strategies as objects: README's table is theirs, and their properties agree
with their memslot plans. Pure data: runs without KVM or root."""

from pathlib import Path

import pytest

from kvmhole.vmm.memmap import Q35_ECAM_BASE, Q35_ECAM_SIZE, build_memory_map
from kvmhole.vmm.pci import Bdf
from kvmhole.vmm.strategies import STRATEGIES

pytestmark = pytest.mark.pure

README = Path(__file__).parents[1] / "README.md"


@pytest.mark.parametrize("strategy", STRATEGIES.values(), ids=list(STRATEGIES))
def test_readme_row_is_the_strategys_own(strategy):
    assert strategy.readme_row() in README.read_text().splitlines()


@pytest.mark.parametrize("strategy", STRATEGIES.values(), ids=list(STRATEGIES))
def test_a_strategy_served_in_the_kernel_has_hole_memslots(strategy):
    memory_map = build_memory_map(64 << 20, Q35_ECAM_BASE, Q35_ECAM_SIZE, [Bdf(0, 0, 0)])
    assert bool(strategy.hole_ranges(memory_map)) == strategy.served_in_kernel
    assert not (strategy.maps_memory and strategy.needs_patch)  # the patch maps nothing
