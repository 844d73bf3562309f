"""Every build of bpf/kvmhole.bpf.c loads: the probe path's (emulated or VMX/SVM) with
and without auto-tracking and the event stream. The SVM host runs the same list
against Linux 6.1's verifier (tests/svm), which rejects what 6.18's accepts."""

import pytest

from kvmhole.probes.bpf import ProbeProgram
from kvmhole.probes.plan import ProbePlan

BUILDS = [(path, auto_track, events) for path in ("emulated", "vmx/svm")
          for auto_track, events in ((True, True), (False, False))]


def load(path: str, auto_track: bool, events: bool) -> None:
    program = ProbeProgram(ProbePlan(path), auto_track=auto_track, events=events)
    program.close()


@pytest.mark.parametrize(("path", "auto_track", "events"), BUILDS)
def test_build_loads_on_this_kernel(path, auto_track, events):
    load(path, auto_track, events)
