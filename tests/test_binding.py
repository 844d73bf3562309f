"""The kvm binding against the real /dev/kvm: facts, typed errors, binary stats."""

import pytest

from kvmhole.kvm import KvmError, KvmUnavailable, System


def test_system_reports_api_and_capabilities():
    with System() as system:
        assert system.api_version == 12
        assert system.check_extension("KVM_CAP_NR_MEMSLOTS") > 256
        assert system.check_extension("KVM_CAP_READONLY_MEM") == 1
        assert system.supported_cpuid().nent > 0


def test_failed_ioctl_names_the_ioctl_and_errno():
    with System() as system:
        vm = system.create_vm()
        try:
            with pytest.raises(KvmError) as caught:
                vm.set_user_memory_region(0, 0x1001, 0x1000, 0)  # unaligned guest address
            assert "KVM_SET_USER_MEMORY_REGION" in str(caught.value)
            assert "EINVAL" in str(caught.value)
        finally:
            vm.close()


def test_missing_device_is_one_clear_error(tmp_path):
    with pytest.raises(KvmUnavailable, match="does not exist"):
        System(str(tmp_path / "kvm"))


def test_vcpu_stats_name_the_exit_counters():
    with System() as system:
        vm = system.create_vm()
        try:
            stats = vm.create_vcpu().stats()
            values = stats.read()
            assert {"exits", "mmio_exits", "io_exits", "insn_emulation"} <= set(values)
            assert values["exits"] == 0
            stats.close()
        finally:
            vm.close()
