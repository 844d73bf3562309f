"""/dev/kvm itself: API version, capabilities, supported CPUID, creating VMs."""

import errno
import os

from kvmhole.errors import KvmholeError
from kvmhole.kvm._kvm_cffi import ffi, lib
from kvmhole.kvm.ioctl import KvmError, ioctl, ioctl_val

KVM_DEVICE = "/dev/kvm"


class KvmUnavailable(KvmholeError):
    """/dev/kvm is missing or not usable by this user."""


class System:
    def __init__(self, path: str = KVM_DEVICE):
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise KvmUnavailable(
                f"{path} does not exist: load the kvm module (modprobe kvm_intel or kvm_amd)"
            ) from None
        except PermissionError:
            raise KvmUnavailable(
                f"no permission to open {path}: run as root or join the 'kvm' group"
            ) from None
        try:
            self.api_version = ioctl_val(self.fd, "KVM_GET_API_VERSION")
            if self.api_version != lib.KVM_API_VERSION:
                raise KvmUnavailable(f"{path} speaks KVM API {self.api_version}, expected "
                                     f"{lib.KVM_API_VERSION}")
        except BaseException:  # no `with` has taken the fd over yet
            self.close()
            raise

    def check_extension(self, cap: str | int) -> int:
        number = getattr(lib, cap) if isinstance(cap, str) else cap
        return ioctl_val(self.fd, "KVM_CHECK_EXTENSION", number, detail=str(cap))

    def vcpu_mmap_size(self) -> int:
        return ioctl_val(self.fd, "KVM_GET_VCPU_MMAP_SIZE")

    def supported_cpuid(self):
        """KVM_GET_SUPPORTED_CPUID as a cffi struct kvm_cpuid2, grown until it fits."""
        nent = 64
        while True:
            cpuid = ffi.new("struct kvm_cpuid2 *", {"nent": nent, "entries": nent})
            cpuid.nent = nent
            try:
                ioctl(self.fd, "KVM_GET_SUPPORTED_CPUID", cpuid)
                return cpuid
            except KvmError as error:
                if error.errno != errno.E2BIG or nent >= 4096:
                    raise
                nent *= 2

    def create_vm(self):
        from kvmhole.kvm.vm import Vm

        return Vm(self, ioctl_val(self.fd, "KVM_CREATE_VM", 0))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
