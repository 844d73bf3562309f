"""The probe-path registry (kvmhole/probes/paths.py): each path is one entry, and the
BPF C, the self-test and every view follow it."""

import pytest

from kvmhole.probes import paths
from kvmhole.probes.bpf import SOURCE
from kvmhole.probes.plan import WATCHED

pytestmark = pytest.mark.pure


@pytest.mark.parametrize("path", [p for p in paths.PATHS if p.cflag], ids=lambda p: p.name)
def test_each_compiled_path_has_its_code_in_the_bpf_c(path):
    macro = path.cflag.removeprefix("-D")
    assert f"#ifdef {macro}" in SOURCE.read_text() or f"defined({macro})" in SOURCE.read_text()


def test_the_self_test_watches_every_tracepoint_a_path_uses():
    watched = {f"{system}:{event}" for system, event in WATCHED}
    assert watched == {tp for p in paths.PATHS for tp in p.tracepoints}


@pytest.mark.parametrize(("fired", "chosen"), [
    ({"kvm:kvm_exit": 7, "kvm:kvm_page_fault": 6, "kvmmmu:kvm_mmu_pagetable_walk": 1}, "vmx/svm"),
    ({"kvm:kvm_exit": 0, "kvmmmu:kvm_mmu_pagetable_walk": 139,
      "kvmmmu:kvm_mmu_paging_element": 417}, "emulated"),
    ({"kvm:kvm_exit": 3}, "exits-only"),   # exits without faults: no in-kernel evidence
    ({}, "exits-only"),
])
def test_a_path_is_chosen_by_its_evidence(fired, chosen):
    assert paths.choose(fired).name == chosen


def test_every_path_is_named_in_the_help_summary():
    for path in paths.PATHS:
        assert f"{path.name} ({path.kernel_counts})" in paths.summary()
