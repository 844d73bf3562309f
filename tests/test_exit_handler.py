"""handle_exit on exits made by hand: what the guest reads back, what the VMM counts and
what the run loop is told to do next. Pure: runs without KVM or root."""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmhole.guests import protocol
from kvmhole.kvm import (
    FailEntryExit,
    HltExit,
    InternalErrorExit,
    IntrExit,
    MmioRead,
    MmioWrite,
    OtherExit,
    PortIn,
    PortOut,
    ShutdownExit,
)
from kvmhole.vmm.devices import Devices
from kvmhole.vmm.exit_handler import RESUME, Fail, Finish, Pause, handle_exit
from kvmhole.vmm.memmap import Q35_ECAM_BASE, Q35_ECAM_SIZE, build_memory_map
from kvmhole.vmm.pci import FUNCTION_SIZE, host_bridge

pytestmark = pytest.mark.pure

HOST_BRIDGE_ID = (0x29C08086).to_bytes(4, "little")
ABSENT = Q35_ECAM_BASE + FUNCTION_SIZE  # 00:00.1
ENABLE = 0x8000_0000


def devices() -> Devices:
    bridge = host_bridge()
    memory_map = build_memory_map(64 << 20, Q35_ECAM_BASE, Q35_ECAM_SIZE, [bridge.bdf])
    return Devices(memory_map, [bridge])


def read(addr: int, length: int = 4, devs: Devices | None = None) -> bytes:
    """What the guest gets back from an MMIO read at `addr`."""
    reply = bytearray(8)
    assert handle_exit(MmioRead(addr, length, reply), devs or devices()) is RESUME
    return bytes(reply[:length])


def port_in(devs: Devices, port: int, size: int = 4, count: int = 1) -> bytes:
    reply = bytearray(size * count)
    assert handle_exit(PortIn(port, size, count, reply), devs) is RESUME
    return bytes(reply)


def port_out(devs: Devices, port: int, value: int, size: int = 4):
    return handle_exit(PortOut(port, size, 1, value.to_bytes(size, "little")), devs)


@given(offset=st.integers(0, Q35_ECAM_SIZE // FUNCTION_SIZE - 2),
       length=st.sampled_from([1, 2, 4, 8]))
def test_every_hole_read_floats_high_and_is_counted(offset, length):
    devs = devices()
    assert read(ABSENT + offset * FUNCTION_SIZE, length, devs) == b"\xff" * length
    assert devs.counts.hole_read_exits == 1
    assert devs.counts.userspace_exits == {"MMIO": 1}


def test_a_present_function_answers_with_its_config_space():
    devs = devices()
    assert read(Q35_ECAM_BASE, 4, devs) == HOST_BRIDGE_ID
    assert devs.counts.device_mmio_exits == 1 and devs.counts.hole_read_exits == 0


def test_an_access_outside_every_device_is_unassigned():
    devs = devices()
    assert read(0xFEE0_0000, 2, devs) == b"\xff\xff"
    assert handle_exit(MmioWrite(0xFEE0_0000, b"\x01"), devs) is RESUME
    assert devs.counts.unassigned_exits == 2
    assert devs.counts.hole_write_exits == 0


def test_hole_writes_are_logged_and_dropped():
    devs = devices()
    assert handle_exit(MmioWrite(ABSENT + 8, b"\xef\xbe\xad\xde"), devs) is RESUME
    assert devs.counts.hole_writes == [{"addr": ABSENT + 8, "len": 4, "value": 0xDEADBEEF}]
    assert devs.counts.hole_write_exits == 1
    assert read(ABSENT + 8, 4, devs) == b"\xff" * 4


def test_only_a_read_can_answer_the_guest():
    assert hasattr(MmioRead, "respond") and hasattr(PortIn, "respond")
    assert not hasattr(MmioWrite, "respond") and not hasattr(PortOut, "respond")
    written = MmioWrite(ABSENT, b"\x01\x02")
    with pytest.raises(dataclasses.FrozenInstanceError):
        written.data = b"\xff\xff"  # type: ignore[misc]
    assert isinstance(written.data, bytes)  # a copy: nothing in it reaches kvm_run


def test_type1_config_cycles_reach_the_same_config_space():
    devs = devices()
    assert port_out(devs, protocol.PCI_CONFIG_ADDRESS, ENABLE) is RESUME  # 00:00.0, reg 0
    assert port_in(devs, protocol.PCI_CONFIG_ADDRESS) == ENABLE.to_bytes(4, "little")
    assert port_in(devs, protocol.PCI_CONFIG_DATA) == HOST_BRIDGE_ID
    port_out(devs, protocol.PCI_CONFIG_ADDRESS, ENABLE | 1 << 8)  # 00:00.1: absent
    assert port_in(devs, protocol.PCI_CONFIG_DATA + 2, size=2) == b"\xff\xff"
    assert devs.counts.type1_hole_read_exits == 1 and devs.counts.hole_read_exits == 0
    port_out(devs, protocol.PCI_CONFIG_ADDRESS, 0)  # disabled: floats high, uncounted
    assert port_in(devs, protocol.PCI_CONFIG_DATA) == b"\xff" * 4
    assert devs.counts.type1_hole_read_exits == 1
    assert devs.counts.userspace_exits == {"IO": 7}


def test_a_byte_at_the_address_port_is_not_a_config_cycle():
    devs = devices()
    port_out(devs, protocol.PCI_CONFIG_ADDRESS, 0x6, size=1)  # 0xcf9: reset, elsewhere
    assert devs.config_ports.address == 0
    assert port_in(devs, protocol.PCI_CONFIG_ADDRESS, size=1) == b"\xff"


def test_an_unassigned_port_reads_all_ones_across_the_whole_transfer():
    devs = devices()
    assert port_in(devs, 0x60, size=2, count=3) == b"\xff" * 6
    assert port_out(devs, 0x61, 1) is RESUME
    assert devs.counts.unassigned_exits == 2


def test_the_guest_protocol_ports():
    devs = devices()
    assert port_out(devs, protocol.PORT_DONE, protocol.STATUS_OK) == \
        Finish(protocol.STATUS_OK)
    assert port_out(devs, protocol.PORT_SLEEP, 2500) == Pause(0.0025)
    assert port_out(devs, protocol.PORT_PROGRESS, 7) is RESUME
    assert devs.counts.unassigned_exits == 0


def test_a_signal_resumes_the_guest():
    assert handle_exit(IntrExit(), devices()) is RESUME


@pytest.mark.parametrize(("exit_", "words"), [
    (HltExit(), "halted without reporting"),
    (ShutdownExit(), "triple-faulted"),
    (InternalErrorExit(1, [5]), "KVM internal error: emulation failure [5]"),
    (FailEntryExit(0x7, 1), "hardware reason 0x7 on cpu 1"),
    (OtherExit(1), "unexpected exit EXCEPTION"),
])
def test_exits_the_guest_cannot_go_on_from_end_the_run(exit_, words):
    devs = devices()
    action = handle_exit(exit_, devs)
    assert isinstance(action, Fail) and words in action.reason
    assert devs.counts.userspace_exits == {exit_.reason: 1}
