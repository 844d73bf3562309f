"""The VMM on real /dev/kvm, driven through `kvmhole run` as a user would.

Ground truth is the guest's own count (it reports what it read) and KVM's
binary stats; the VMM's own exit counters are what is being checked.
"""

import pytest

from tests.conftest import run_json

STRATEGIES_HERE = ["alias", "dense", "exit"]  # native needs the never-merged patch
MIB = 1 << 20


@pytest.mark.parametrize("hole", STRATEGIES_HERE)
def test_hole_rw_passes(hole, run_dir):
    result = run_json("hole-rw", "--hole", hole)
    guest = result["guest_result"]
    assert result["status"] == "ok"
    assert guest["failures"] == 0
    assert guest["hole_reads"] == 28  # 7 places x 4 widths, all read back all-ones
    assert guest["present_reads"] == 1  # the host bridge answered with its real IDs
    # every write exited to the VMM with the address, length and data the guest used
    assert result["hole_writes"] == guest["writes"]
    assert result["hole_write_exits"] == len(guest["writes"]) == 5
    assert result["userspace_exits"]["MMIO"] == result["kvm_stats"]["mmio_exits"]


def test_exit_strategy_sends_every_hole_read_to_userspace(run_dir):
    result = run_json("ecam-scan", "--hole", "exit")
    assert result["guest_hole_reads"] == 8192
    assert result["hole_read_exits"] == result["guest_hole_reads"]
    present = result["guest_result"]["present_reads"]
    assert result["userspace_exits"]["MMIO"] == 8192 + present == result["kvm_stats"]["mmio_exits"]


@pytest.mark.parametrize("hole", ["alias", "dense"])
def test_mapped_strategies_serve_hole_reads_in_kernel(hole, run_dir):
    result = run_json("ecam-scan", "--hole", hole)
    assert result["guest_hole_reads"] == 8192
    assert result["hole_read_exits"] == 0
    # the only MMIO exit left is the read of the present host bridge
    assert result["kvm_stats"]["mmio_exits"] == result["guest_result"]["present_reads"] == 1


def test_auto_picks_alias_without_the_patch(run_dir):
    assert run_json("--pages", "16")["hole"] == "alias"


def test_pages_and_extra_devices(run_dir):
    result = run_json("ecam-scan", "--hole", "exit", "--pages", "100", "--device", "00:01.0",
                      "--device", "00:02.0=1af4:1041")
    assert result["guest_hole_reads"] == 100
    assert result["guest_result"]["present_reads"] == 3
    assert result["device_mmio_exits"] == 3


def test_scan_ram_baseline_runs_the_same_loop_without_exits(run_dir):
    result = run_json("ecam-scan", "--scan-ram", "--pages", "1000", "--hole", "exit")
    assert result["guest_hole_reads"] == 1000
    assert result["kvm_stats"]["mmio_exits"] == 0


def test_alias_hole_costs_little_rss_and_dense_costs_the_hole(run_dir):
    exit_ = run_json("ecam-scan", "--hole", "exit")["rss_bytes"]
    alias = run_json("ecam-scan", "--hole", "alias")["rss_bytes"]
    dense = run_json("ecam-scan", "--hole", "dense")["rss_bytes"]
    assert alias - exit_ < 2 * MIB
    assert 240 * MIB < dense - exit_ < 272 * MIB


def test_c_fastpath_serves_the_same_exits(run_dir):
    result = run_json("ecam-scan", "--hole", "exit", "--c-fastpath")
    assert result["guest_hole_reads"] == 8192 == result["hole_read_exits"]
    assert result["userspace_exits"]["MMIO"] == result["kvm_stats"]["mmio_exits"] == 8193
    rw = run_json("hole-rw", "--hole", "exit", "--c-fastpath")
    assert rw["status"] == "ok"
    assert rw["hole_writes"] == rw["guest_result"]["writes"]


def test_hole_rw_passes_when_the_first_hole_run_is_one_page(run_dir):
    # 00:00.1 is a one-page run between the host bridge and 00:00.2
    result = run_json("hole-rw", "--hole", "alias", "--device", "00:00.2")
    assert result["status"] == "ok", result["guest_result"]
    assert result["guest_result"]["hole_reads"] == 28
    # the writes landed in the first run with two pages: from 00:00.3 on
    assert {w["addr"] & ~0xFFF for w in result["hole_writes"]} == {0xB000_3000, 0xB000_4000}
    assert result["hole_writes"] == result["guest_result"]["writes"]
