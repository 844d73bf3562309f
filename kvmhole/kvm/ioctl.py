"""The single place where ioctls are issued, so every failure names its ioctl."""

import errno
import os

from kvmhole.errors import KvmholeError
from kvmhole.kvm._kvm_cffi import ffi, lib


class KvmError(KvmholeError, OSError):
    """An ioctl on /dev/kvm, a VM or a vCPU failed."""

    def __init__(self, request: str, err: int, detail: str = ""):
        what = f" ({detail})" if detail else ""
        name = errno.errorcode.get(err, err)
        super().__init__(f"{request}{what} failed: {name} ({os.strerror(err)})")
        # set after OSError.__init__, which resets errno for one-argument construction
        self.request = request
        self.errno = err

    @property
    def strerror_name(self) -> str:
        return errno.errorcode.get(self.errno, str(self.errno))


def _checked(name: str, ret: int, detail: str) -> int:
    if ret < 0:
        raise KvmError(name, ffi.errno, detail)
    return ret


def ioctl(fd: int, name: str, arg=ffi.NULL, detail: str = "") -> int:
    """ioctl(fd, KVM_<name>, pointer) -> non-negative result, or KvmError."""
    return _checked(name, lib.kh_ioctl(fd, getattr(lib, name), arg), detail)


def ioctl_val(fd: int, name: str, value: int = 0, detail: str = "") -> int:
    """ioctl(fd, KVM_<name>, integer) -> non-negative result, or KvmError."""
    return _checked(name, lib.kh_ioctl_val(fd, getattr(lib, name), value), detail)
