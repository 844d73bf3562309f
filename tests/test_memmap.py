"""The memory map and slot planning: plain data, checked before any ioctl."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmhole.errors import ConfigError
from kvmhole.vmm.memmap import PAGE, Q35_ECAM_BASE, build_memory_map
from kvmhole.vmm.pci import Bdf, parse_device
from kvmhole.vmm.slots import ALIAS_WINDOW, alias_mappings
from kvmhole.vmm.strategies import STRATEGIES, plan_slots

pytestmark = pytest.mark.pure

RAM = 64 << 20
MAX_SLOTS = 32764

bdfs = st.builds(Bdf, st.integers(0, 255), st.integers(0, 31), st.integers(0, 7))


@st.composite
def layouts(draw):
    buses = draw(st.integers(1, 256))
    size = draw(st.sampled_from([buses << 20, draw(st.integers(2, buses << 8)) * PAGE]))
    base = draw(st.integers(RAM // PAGE, (16 << 30) // PAGE)) * PAGE
    present = draw(st.sets(bdfs.filter(lambda b: b.ecam_offset + PAGE <= size), max_size=20))
    present |= {Bdf(0, 0, 0)}
    return base, size, sorted(present)


def _pages(ranges):
    return {addr for r in ranges for addr in range(r.start, r.end, PAGE)}


@settings(max_examples=150)
@given(layouts(), st.sampled_from(list(STRATEGIES)))
def test_slots_cover_exactly_the_hole_without_overlap(layout, strategy):
    base, size, present = layout
    try:
        memory_map = build_memory_map(RAM, base, size, present)
    except ConfigError:
        return  # present functions filled the whole window: rejected, nothing to plan
    slots = plan_slots(memory_map, strategy, MAX_SLOTS)
    hole = [s.gpa for s in slots if s.kind != "ram"]
    ordered = sorted(s.gpa for s in slots)
    for left, right in itertools.pairwise(ordered):
        assert left.end <= right.start, "slots overlap"
    device_pages = {base + b.ecam_offset for b in present}
    expected = set(range(base, base + size, PAGE)) - device_pages
    if strategy == "exit":
        assert hole == []
    else:
        assert _pages(hole) == expected
        assert all(r.size % PAGE == 0 and r.size > 0 for r in hole)
    assert memory_map.hole_pages == len(expected)
    assert len(slots) <= MAX_SLOTS
    if strategy == "alias":
        assert all(r.size <= ALIAS_WINDOW for r in hole)
        assert alias_mappings(memory_map) <= ALIAS_WINDOW // PAGE


def test_q35_hole_with_a_host_bridge():
    memory_map = build_memory_map(RAM, Q35_ECAM_BASE, 256 << 20, [Bdf(0, 0, 0)])
    assert memory_map.hole_pages == 65535
    assert len(plan_slots(memory_map, "alias", MAX_SLOTS)) == 1 + 256
    assert len(plan_slots(memory_map, "dense", MAX_SLOTS)) == 2


@pytest.mark.parametrize(
    ("ram", "base", "size", "message"),
    [
        (RAM, Q35_ECAM_BASE, 0, "greater than zero"),
        (RAM, Q35_ECAM_BASE + 0x10, 1 << 20, "aligned"),
        (RAM, Q35_ECAM_BASE, (1 << 20) + 0x10, "aligned"),
        (RAM, 0x100000, 1 << 20, "overlaps guest RAM"),
        (RAM, Q35_ECAM_BASE, 512 << 20, "at most 256 MiB"),
        (RAM, 80 << 30, 1 << 20, "below 64 GiB"),
        (3 << 20, Q35_ECAM_BASE, 1 << 20, "guest RAM"),
    ],
)
def test_bad_layouts_are_refused(ram, base, size, message):
    with pytest.raises(ConfigError, match=message):
        build_memory_map(ram, base, size, [Bdf(0, 0, 0)])


def test_device_outside_window_and_duplicates_are_refused():
    with pytest.raises(ConfigError, match="outside"):
        build_memory_map(RAM, Q35_ECAM_BASE, 1 << 20, [Bdf(0, 0, 0), Bdf(1, 0, 0)])
    with pytest.raises(ConfigError, match="twice"):
        build_memory_map(RAM, Q35_ECAM_BASE, 1 << 20, [Bdf(0, 0, 0), Bdf(0, 0, 0)])


def test_more_slots_than_kvm_allows_is_refused():
    present = [Bdf(0, d, 0) for d in range(0, 32, 2)]
    memory_map = build_memory_map(RAM, Q35_ECAM_BASE, 1 << 20, present)
    with pytest.raises(ConfigError, match="memory slots"):
        plan_slots(memory_map, "dense", max_slots=8)


@pytest.mark.parametrize("spec", ["00:00", "0:32.0", "00:00.8", "00:01.0=zz:1234",
                                  "00:01.0=ffff:0001"])
def test_bad_device_specs_are_refused(spec):
    with pytest.raises(ConfigError):
        parse_device(spec)
