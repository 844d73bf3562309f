"""The endless `mixed` guest keeps running: its scan wraps around the ECAM window,
never past it, however many reads it makes (it ends here only by --timeout)."""

import json

import pytest

from tests.conftest import kvmhole

PAGES_PER_MIB = 256


def run_until_timeout(*args: str, seconds: int) -> dict:
    done = kvmhole("run", "mixed", "--hole", "alias", "--timeout", str(seconds), *args,
                   "--json", check=False, timeout=seconds + 120)
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["status"] == "timeout", done.stderr
    assert result["error"].startswith(
        f"the guest did not finish within {float(seconds)} s (--timeout); the vCPU was at rip "
        "0x"), result["error"]
    return result


@pytest.mark.parametrize(("window", "seconds"), [("1M", 5), ("256M", 20)])
def test_mixed_wraps_around_the_window_for_as_long_as_it_runs(window, seconds, run_dir):
    result = run_until_timeout("--hole-size", window, "--pages", "60000", seconds=seconds)
    guest = result["guest_result"]
    window_pages = int(window[:-1]) * PAGES_PER_MIB
    reads = guest["hole_reads"] + guest["present_reads"]
    assert reads > 2 * window_pages, "the scan did not wrap twice: too slow to test anything"
    assert guest["failures"] == 0
    # the host bridge at page 0 is read once per pass over the window, the first included
    assert guest["present_reads"] == -(-reads // window_pages)
    # each present read and each batch's device read is an MMIO exit, as KVM counted
    assert result["kvm_stats"]["mmio_exits"] == guest["present_reads"] + guest["device_reads"]


def test_crashed_guest_still_reports_json(run_dir):
    done = kvmhole("run", "triple-fault", "--json", check=False)
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert (result["status"], result["error"]) == (
        "crashed", "the guest triple-faulted (KVM_EXIT_SHUTDOWN)")
    assert result["userspace_exits"] == {"SHUTDOWN": 1}
    assert done.stderr.strip() == "kvmhole: error: the guest triple-faulted (KVM_EXIT_SHUTDOWN)"
