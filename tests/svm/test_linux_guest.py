"""A stock Linux boot observed on the hardware path: QEMU q35 with KVM (kvm_amd) in the
SVM host booting Debian's 6.1 kernel into an initramfs that powers off, an
Intel-branded vCPU, SeaBIOS. Every count kvmhole reports by mechanism equals what a
private tracefs instance recorded in the same run (tests/tracefs_truth.py).

Stock x86 Linux reaches config space below offset 256 by type-1 ports, so every
absent function it probes is two port exits; pcibios_fixup_peer_bridges() alone
reads 255 buses x 32 slots. Its ECAM reads (offset 256 and up) all hit present
functions: the host bridge's extended config space reads all-ones, and is not a
hole read.
"""

from kvmhole.probes.monitor import Monitor
from kvmhole.svmhost import linux_guest
from kvmhole.vmm.memmap import Q35_ECAM_BASE, Q35_ECAM_SIZE
from tests.tracefs_truth import TraceInstance, truth

ECAM = (Q35_ECAM_BASE, Q35_ECAM_BASE + Q35_ECAM_SIZE)
ABSENT_FUNCTIONS = 8193  # 8160 by the peer-bridge scan (buses 1-255) + 33 on bus 0


def test_linux_boot_counts_equal_tracefs(tmp_path):
    with TraceInstance() as trace, Monitor() as monitor:
        qemu = linux_guest.start(linux_guest.Boot(), tmp_path, name="linux-boot")
        _, err = qemu.communicate(timeout=300)
        guest = monitor.poll().guest(qemu.pid)
        lines = trace.stop()
    assert qemu.returncode == 0 and linux_guest.powered_off(tmp_path), err
    seen = truth(lines, qemu.pid, ECAM)
    assert guest is not None and guest.vmm == "qemu"

    type1 = guest.config["type1"]
    assert type1.functions == len(seen.type1.functions) == ABSENT_FUNCTIONS
    assert type1.read_exits == seen.type1.read_exits == seen.type1.reads
    assert type1.reads_in_kernel == 0
    assert type1.exits == seen.type1.exits == 2 * type1.read_exits
    assert type1.writes == seen.type1.writes
    # all-ones ECAM reads happened, but of present functions only
    assert any(" val 0xffffffff" in line and "gpa 0xb0000100 " in line for line in lines)
    ecam = guest.config["ecam"]
    assert (ecam.read_exits, ecam.functions) == (seen.ecam.read_exits, len(seen.ecam.functions))
    assert ecam.writes == seen.ecam.writes
    # every userspace exit by reason, -EINTR ("restart" in tracefs) as INTR
    assert dict(guest.userspace_exits) == dict(seen.exits)
    # the peer-bridge scan: buses 1-255 have 32 absent functions read each
    busiest = {b.bus: b.reads["type1"] for b in guest.buses}
    assert all(seen.type1.buses[bus] == n for bus, n in busiest.items())
    assert all(n >= 32 for bus, n in busiest.items() if bus)
