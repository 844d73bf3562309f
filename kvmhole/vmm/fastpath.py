"""The C fast path (kvmhole/vmm/_fastpath_build.py) as a next-exit source for the run loop."""

import errno

from kvmhole.kvm import IntrExit, KvmError


class CFastPath:
    """next_exit() for the run loop: hole reads are answered in C and never surface here."""

    def __init__(self, vcpu, memory_map, functions):
        from kvmhole.vmm import _fastpath

        self.ffi, self.lib, self.vcpu = _fastpath.ffi, _fastpath.lib, vcpu
        self.run_struct = self.ffi.cast("struct kvm_run *", vcpu.run_address)
        self.present = self.ffi.new("uint64_t[]", sorted(functions) or [0])
        self.n_present = len(functions)
        self.window = (memory_map.ecam.start, memory_map.ecam.size)
        self.counts = self.ffi.new("struct kh_fastpath_counts *")
        self._pages_read = self.ffi.new("uint8_t[]", -(-memory_map.ecam.size // 4096 // 8))
        self.counts.pages_read = self._pages_read

    @property
    def hole_reads(self) -> int:
        return self.counts.hole_reads

    def pages_read(self) -> list[int]:
        """The guest-physical page numbers of the functions hole reads touched."""
        bits, first = bytes(self.ffi.buffer(self._pages_read)), self.window[0] >> 12
        return [first + i * 8 + bit for i, byte in enumerate(bits) if byte
                for bit in range(8) if byte >> bit & 1]

    def run(self):
        ret = self.lib.kh_fastpath_run(self.vcpu.fd, self.run_struct, *self.window, self.present,
                                       self.n_present, self.counts)
        if ret in (-errno.EINTR, -errno.EAGAIN):
            return IntrExit()
        if ret < 0:
            raise KvmError("KVM_RUN", -ret)
        return self.vcpu.current_exit()
