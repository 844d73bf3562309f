"""Absent-function config reads by mechanism (ECAM, type-1 ports) on real KVM, against
ground truth taken from tracefs in the same run (tests/tracefs_truth.py) and the
guest's own counts: kvmhole's VMM answering both mechanisms as q35 does, and QEMU
q35 with SeaBIOS, whose own PCI scan reads absent functions by type-1 ports."""

import pytest

from kvmhole.guests import multiboot
from kvmhole.probes.monitor import Monitor
from kvmhole.vmm.memmap import Q35_ECAM_BASE, Q35_ECAM_SIZE
from tests.conftest import result, start_guest
from tests.test_probes import registry  # noqa: F401 (fixture)
from tests.tracefs_truth import TraceInstance, truth

ECAM = (Q35_ECAM_BASE, Q35_ECAM_BASE + Q35_ECAM_SIZE)
ECAM_PAGES, TYPE1_PAGES = 600, 400


def assert_type1_exact(guest, seen) -> None:
    """Type-1 counts against tracefs: every read exits, each costing two exits."""
    type1 = guest.config["type1"]
    assert type1.read_exits == seen.type1.read_exits == seen.type1.reads
    assert type1.reads_in_kernel == 0  # port I/O always goes to the VMM
    assert type1.exits == seen.type1.exits == 2 * seen.type1.reads
    assert type1.functions == len(seen.type1.functions)
    assert type1.writes == seen.type1.writes


@pytest.mark.parametrize("hole", ["alias", "exit"])
def test_kvmhole_guest_by_ecam_and_type1(registry, hole):  # noqa: F811
    with TraceInstance() as trace, Monitor() as monitor:
        run = result(start_guest("ecam-scan", "--hole", hole, "--pages", str(ECAM_PAGES),
                                 "--type1-pages", str(TYPE1_PAGES), "--device", "01:02.0"))
        guest = monitor.poll().guest(run["pid"])
        seen = truth(trace.stop(), run["pid"], ECAM)
    g = run["guest_result"]
    assert (g["hole_reads"], g["type1_hole_reads"]) == (ECAM_PAGES, TYPE1_PAGES)
    assert seen.type1.reads == TYPE1_PAGES == run["type1_hole_read_exits"]
    assert_type1_exact(guest, seen)
    assert guest.config["type1"].functions == TYPE1_PAGES
    ecam = guest.config["ecam"]
    if hole == "exit":  # every ECAM read exits and tracefs sees it
        assert ecam.read_exits == seen.ecam.read_exits == ECAM_PAGES
        assert ecam.reads_in_kernel == 0
    else:  # served in KVM with no trace event; the guest's own count is the truth
        assert (ecam.reads_in_kernel, ecam.read_exits, seen.ecam.reads) == (ECAM_PAGES, 0, 0)
    assert ecam.functions == ECAM_PAGES and ecam.exits == ecam.read_exits
    assert dict(guest.userspace_exits) == dict(seen.exits)
    # by bus, busiest first: 00 and 01 have 255 absent functions each (00:00.0 and
    # 01:02.0 are present), ECAM's scan ends on bus 02, type-1's on bus 01
    top = [(b.bus, b.reads["ecam"], b.reads["type1"]) for b in guest.buses]
    assert top == [(0, 255, 255), (1, 255, TYPE1_PAGES - 255), (2, ECAM_PAGES - 510, 0)]
    assert [top[0][2], top[1][2]] == [seen.type1.buses[0], seen.type1.buses[1]]

def test_qemu_seabios_reads_absent_functions_by_type1(registry, tmp_path):  # noqa: F811
    debugcon = tmp_path / "debugcon.txt"
    with TraceInstance() as trace, Monitor() as monitor:
        qemu = multiboot.start_qemu(ECAM_PAGES, debugcon, name="mb-mechanisms")
        run = multiboot.finish(qemu, debugcon)
        guest = monitor.poll().guest(qemu.pid)
        lines = trace.stop()
    seen = truth(lines, qemu.pid, ECAM)
    assert run.hole_reads == ECAM_PAGES
    # SeaBIOS scans bus 0 by type-1 ports: absent functions, all through QEMU
    assert seen.type1.reads > 0
    assert_type1_exact(guest, seen)
    # the scanner's ECAM reads of absent functions, and not the all-ones read of the
    # present host bridge at offset 0x100
    assert any("gpa 0xb0000100 val 0xffffffff" in line for line in lines)
    ecam = guest.config["ecam"]
    assert ecam.read_exits == seen.ecam.read_exits == ECAM_PAGES
    assert ecam.functions == len(seen.ecam.functions) == ECAM_PAGES
    # SeaBIOS's ECAM writes all go to present functions: none is a hole write
    assert ecam.writes == seen.ecam.writes == 0
    assert dict(guest.userspace_exits) == dict(seen.exits)
