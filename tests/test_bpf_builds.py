"""Every build of bpf/kvmhole.bpf.c loads: each compiled probe path's (emulated, VMX/SVM)
with and without auto-tracking and the event stream. The SVM host runs the same list
against the verifiers of Debian's 6.1 and 6.12 (tests/svm), which reject what 6.18's
accepts."""

import pytest

from kvmhole.probes import paths
from kvmhole.probes.bpf import ProbeProgram
from kvmhole.probes.plan import ProbePlan

BUILDS = [(path.name, auto_track, events) for path in paths.PATHS if path.cflag
          for auto_track, events in ((True, True), (False, False))]


def load(path: str, auto_track: bool, events: bool) -> None:
    program = ProbeProgram(ProbePlan(path), auto_track=auto_track, events=events)
    program.close()


@pytest.mark.parametrize(("path", "auto_track", "events"), BUILDS)
def test_build_loads_on_this_kernel(path, auto_track, events):
    load(path, auto_track, events)
