"""A present function's config space as the guest's MMIO writes reach it."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmhole.vmm.devices import EcamWindow, ExitCounts
from kvmhole.vmm.memmap import Q35_ECAM_BASE, Q35_ECAM_SIZE, build_memory_map
from kvmhole.vmm.pci import FUNCTION_SIZE, host_bridge

pytestmark = pytest.mark.pure

# vendor/device ID; revision, class; the BARs and the ROM BAR (none: hard-wired zero)
IDENTITY = (range(0x00, 0x04), range(0x08, 0x0C), range(0x10, 0x28), range(0x30, 0x34))


def window():
    bridge = host_bridge()
    memory_map = build_memory_map(64 << 20, Q35_ECAM_BASE, Q35_ECAM_SIZE, [bridge.bdf])
    return EcamWindow(memory_map, [bridge], ExitCounts()), bridge


@given(offset=st.integers(0, FUNCTION_SIZE - 1), length=st.sampled_from([1, 2, 4, 8]),
       value=st.integers(0, 2**64 - 1))
def test_identity_registers_and_bars_stay_read_only_whatever_the_write(offset, length, value):
    ecam, bridge = window()
    before = bytes(bridge.config)
    data = bytearray(value.to_bytes(8, "little"))
    ecam.write(Q35_ECAM_BASE + offset, bytes(data[:length]))
    after = bytes(bridge.config)
    assert len(after) == FUNCTION_SIZE
    for registers in IDENTITY:
        assert after[registers.start:registers.stop] == before[registers.start:registers.stop]
    reply = ecam.read(Q35_ECAM_BASE, 4)
    assert int.from_bytes(reply, "little") == bridge.id_dword == 0x29C08086
    # the writable bytes took the data
    for i in range(length):
        if offset + i < FUNCTION_SIZE and not any(offset + i in r for r in IDENTITY):
            assert after[offset + i] == data[i]


def test_a_dword_write_at_offset_0_keeps_the_host_bridge_ids():
    ecam, bridge = window()
    ecam.write(Q35_ECAM_BASE, b"\xef\xbe\xad\xde")
    assert bridge.read(0, 4) == (0x29C08086).to_bytes(4, "little")
