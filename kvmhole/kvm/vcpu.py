"""A vCPU: registers, CPUID, KVM_RUN and the typed exit it produced."""

import errno
import os
import struct
from functools import partial

from kvmhole.kvm._kvm_cffi import ffi, lib
from kvmhole.kvm.exits import (
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
    VcpuExit,
)
from kvmhole.kvm.ioctl import KvmError, ioctl, ioctl_val
from kvmhole.kvm.stats import StatsFd, open_stats


class Vcpu:
    def __init__(self, vm, fd: int, index: int):
        self.vm = vm
        self.fd = fd
        self.index = index
        try:  # the fd is ours from here: a vCPU that cannot be set up closes it
            self._map_size = vm.system.vcpu_mmap_size()
            self._map = lib.mmap(ffi.NULL, self._map_size, lib.PROT_READ | lib.PROT_WRITE,
                                 lib.MAP_SHARED, fd, 0)
            if self._map == ffi.cast("void *", -1):
                raise KvmError("mmap of kvm_run", ffi.errno)
        except BaseException:
            os.close(fd)
            raise
        self._bytes = ffi.cast("uint8_t *", self._map)
        self.run_struct = ffi.cast("struct kvm_run *", self._map)
        self.run_address = int(ffi.cast("uintptr_t", self._map))  # for other cffi modules
        self._mmio = lib.kh_run_mmio(self.run_struct)
        self._io = lib.kh_run_io(self.run_struct)
        self._hot_path_layout()

    def _hot_path_layout(self) -> None:
        """For a run loop's hot path, kvm_run as bytes: `mmio_exit.unpack_from(run_bytes)`
        is (exit_reason, phys_addr, len, is_write) in one call, and an MMIO read's answer
        goes to run_bytes[mmio_data_offset:]. One C call instead of four cffi attribute
        reads and no object per exit; the offsets come from the compiled header."""
        mmio = int(ffi.cast("uintptr_t", self._mmio)) - self.run_address
        fields = sorted([(ffi.offsetof("struct kvm_run", "exit_reason"), "I"),
                         (mmio + ffi.offsetof("kh_exit_mmio", "phys_addr"), "Q"),
                         (mmio + ffi.offsetof("kh_exit_mmio", "len"), "I"),
                         (mmio + ffi.offsetof("kh_exit_mmio", "is_write"), "B")])
        layout, at = "<", 0
        for offset, code in fields:  # in kvm_run's order, which is the tuple's order
            layout += f"{offset - at}x{code}" if offset > at else code
            at = offset + struct.calcsize(code)
        assert [code for _, code in fields] == ["I", "Q", "I", "B"], "kvm_run's layout changed"
        self.mmio_exit = struct.Struct(layout)
        self.mmio_data_offset = mmio + ffi.offsetof("kh_exit_mmio", "data")
        self.run_bytes = memoryview(ffi.buffer(self._map, self._map_size))
        # ioctl(KVM_RUN) itself: -1 (then failed_entry()) or 0, the exit in run_bytes
        self.kvm_run = partial(lib.kh_ioctl_val, self.fd, lib.KVM_RUN, 0)

    def get_regs(self):
        regs = ffi.new("struct kvm_regs *")
        ioctl(self.fd, "KVM_GET_REGS", regs)
        return regs

    def set_regs(self, regs) -> None:
        ioctl(self.fd, "KVM_SET_REGS", regs)

    def get_sregs(self):
        sregs = ffi.new("struct kvm_sregs *")
        ioctl(self.fd, "KVM_GET_SREGS", sregs)
        return sregs

    def set_sregs(self, sregs) -> None:
        ioctl(self.fd, "KVM_SET_SREGS", sregs)

    def set_cpuid2(self, cpuid) -> None:
        ioctl(self.fd, "KVM_SET_CPUID2", cpuid)

    def stats(self) -> StatsFd:
        return open_stats(ioctl_val(self.fd, "KVM_GET_STATS_FD"))

    def run(self) -> VcpuExit:
        """Enter the guest until the next exit to userspace and describe that exit."""
        if self.enter() == lib.KVM_EXIT_INTR:
            return IntrExit()
        return self.current_exit()

    def enter(self) -> int:
        """Enter the guest; return the exit reason only (KVM_EXIT_INTR for a signal), with
        no exit object made: current_exit() describes it when needed."""
        if self.kvm_run() < 0:
            return self.failed_entry()
        return self.run_struct.exit_reason

    @staticmethod
    def failed_entry() -> int:
        """After KVM_RUN returned -1: KVM_EXIT_INTR for a signal; KvmError otherwise."""
        err = ffi.errno
        if err in (errno.EINTR, errno.EAGAIN):
            return lib.KVM_EXIT_INTR
        raise KvmError("KVM_RUN", err)

    def current_exit(self) -> VcpuExit:
        """Describe the exit recorded in kvm_run (also after a KVM_RUN made elsewhere)."""
        reason = self.run_struct.exit_reason
        if reason == lib.KVM_EXIT_MMIO:
            mmio = self._mmio
            if mmio.is_write:
                return MmioWrite(mmio.phys_addr, ffi.buffer(mmio.data, mmio.len)[:])
            return MmioRead(mmio.phys_addr, mmio.len, ffi.buffer(mmio.data, 8))
        if reason == lib.KVM_EXIT_IO:
            io = self._io
            transfer = ffi.buffer(self._bytes + io.data_offset, io.size * io.count)
            if io.direction == lib.KVM_EXIT_IO_OUT:
                return PortOut(io.port, io.size, io.count, transfer[:])
            return PortIn(io.port, io.size, io.count, transfer)
        if reason == lib.KVM_EXIT_HLT:
            return HltExit()
        if reason == lib.KVM_EXIT_SHUTDOWN:
            return ShutdownExit()
        if reason == lib.KVM_EXIT_INTR:
            return IntrExit()
        if reason == lib.KVM_EXIT_FAIL_ENTRY:
            fail = lib.kh_run_fail_entry(self.run_struct)
            return FailEntryExit(fail.hardware_entry_failure_reason, fail.cpu)
        if reason == lib.KVM_EXIT_INTERNAL_ERROR:
            internal = lib.kh_run_internal(self.run_struct)
            count = min(internal.ndata, 16)
            return InternalErrorExit(internal.suberror, [internal.data[i] for i in range(count)])
        return OtherExit(reason, lib.kh_run_hw(self.run_struct).hardware_exit_reason)

    def close(self) -> None:
        if self.fd >= 0:
            lib.munmap(self._map, self._map_size)
            os.close(self.fd)
            self.fd = -1
