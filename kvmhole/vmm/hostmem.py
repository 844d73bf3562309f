"""Host memory behind guest memory slots: anonymous RAM, all-ones pages, alias windows."""

import os

from kvmhole.errors import KvmholeError
from kvmhole.kvm._kvm_cffi import ffi, lib

PAGE = 4096
MAP_FAILED = ffi.cast("void *", -1)


class Mapping:
    """A region of this process's address space; `addr` is what a memslot points at."""

    def __init__(self, ptr, size: int, why: str):
        if ptr == MAP_FAILED:
            reason = os.strerror(ffi.errno)
            raise KvmholeError(f"mmap of {size:#x} bytes for {why} failed: {reason}")
        self.ptr, self.size = ptr, size

    @property
    def addr(self) -> int:
        return int(ffi.cast("uintptr_t", self.ptr))

    def buffer(self, offset: int = 0, length: int | None = None):
        """A writable Python buffer over part of the mapping (for guest RAM)."""
        length = self.size - offset if length is None else length
        return ffi.buffer(self.ptr + offset, length)

    def close(self) -> None:
        if self.ptr is not None:
            lib.munmap(self.ptr, self.size)
            self.ptr = None


def anonymous(size: int, why: str) -> Mapping:
    """Zero-filled private memory; pages cost RSS only once touched."""
    ptr = lib.mmap(ffi.NULL, size, lib.PROT_READ | lib.PROT_WRITE,
                   lib.MAP_PRIVATE | lib.MAP_ANONYMOUS | lib.MAP_NORESERVE, -1, 0)
    return Mapping(ptr, size, why)


def dense_all_ones(size: int) -> Mapping:
    """Real memory filled with 0xff: every page is resident (the 2020 patch's '32 MB' cost)."""
    mapping = anonymous(size, "a dense all-ones hole")
    ffi.memmove(mapping.ptr, b"\xff" * PAGE, PAGE)
    # double the filled prefix each step: log2(size) copies, no size-sized temporary
    filled = PAGE
    while filled < size:
        step = min(filled, size - filled)
        ffi.memmove(mapping.ptr + filled, mapping.ptr, step)
        filled += step
    return mapping


class AliasWindow(Mapping):
    """`size` bytes of address space in which every page is the same all-ones page.

    One memfd page, mapped read-only and shared at each page of the window:
    RSS is one page plus page tables, however many guest pages alias it.
    """

    def __init__(self, size: int):
        fd = lib.memfd_create(b"kvmhole-allones", lib.MFD_CLOEXEC)
        if fd < 0:
            raise KvmholeError(f"memfd_create failed: {os.strerror(ffi.errno)}")
        try:
            os.ftruncate(fd, PAGE)
            os.pwrite(fd, b"\xff" * PAGE, 0)
            reserve = lib.mmap(ffi.NULL, size, lib.PROT_NONE,
                               lib.MAP_PRIVATE | lib.MAP_ANONYMOUS | lib.MAP_NORESERVE, -1, 0)
            super().__init__(reserve, size, "the alias window")
            for offset in range(0, size, PAGE):
                page = lib.mmap(self.ptr + offset, PAGE, lib.PROT_READ,
                                lib.MAP_SHARED | lib.MAP_FIXED, fd, 0)
                if page == MAP_FAILED:
                    err = ffi.errno
                    self.close()
                    raise KvmholeError(
                        f"mapping the all-ones page {size // PAGE} times failed at "
                        f"{offset // PAGE}: {os.strerror(err)} (see vm.max_map_count)"
                    )
        finally:
            os.close(fd)
