"""KVM binary statistics (KVM_GET_STATS_FD): names and values, read with pread."""

import os
from collections.abc import Collection

from kvmhole.kvm._kvm_cffi import ffi

# Bounds of a real header (KVM has ~80 vCPU stats, KVM_STATS_NAME_SIZE is 48): what
# lies beyond is not a stats fd, and must not make us allocate gigabytes.
MAX_DESCS = 4096
MAX_NAME_SIZE = 256


def _pread_exact(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise ValueError(f"fd {fd} ends before its KVM stats do")
    return data


class StatsFd:
    """One binary stats file descriptor (a VM's or a vCPU's).

    The descriptors are read once; `read()` re-reads only the data block.
    Histograms are summed to a single count so every stat is one integer.
    """

    def __init__(self, fd: int):
        self.fd = fd
        header = ffi.new("struct kvm_stats_header *")
        ffi.buffer(header)[:] = _pread_exact(fd, ffi.sizeof(header[0]), 0)
        if not (0 < header.num_desc <= MAX_DESCS and 0 < header.name_size <= MAX_NAME_SIZE):
            raise ValueError(f"fd {fd} has no KVM stats header ({header.num_desc} "
                             f"descriptors, names of {header.name_size} bytes)")
        desc_size = ffi.sizeof("struct kvm_stats_desc") + header.name_size
        raw = _pread_exact(fd, desc_size * header.num_desc, header.desc_offset)
        self._fields: list[tuple[str, int, int]] = []  # name, offset, count
        for i in range(header.num_desc):
            chunk = ffi.from_buffer(raw[i * desc_size : (i + 1) * desc_size])
            desc = ffi.cast("struct kvm_stats_desc *", chunk)
            name = ffi.string(desc.name).decode()
            self._fields.append((name, desc.offset, desc.size))
        self._data_offset = header.data_offset
        self._data_size = max(off + n * 8 for _, off, n in self._fields) if self._fields else 0
        # offsets are in bytes into the data block; every element is a u64
        self.names = [name for name, _, _ in self._fields]

    def read(self, names: Collection[str] | None = None) -> dict[str, int]:
        """Every stat, or only those in `names` (a monitor polling hundreds of guests
        wants four of ~80)."""
        data = os.pread(self.fd, self._data_size, self._data_offset)
        values = memoryview(data).cast("Q")  # u64s, in the host's byte order
        return {name: sum(values[off // 8:off // 8 + n]) for name, off, n in self._fields
                if names is None or name in names}

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_stats(fd: int) -> StatsFd:
    """KVM_GET_STATS_FD's result as a StatsFd; the fd is closed if it does not read as one."""
    try:
        return StatsFd(fd)
    except BaseException:
        os.close(fd)
        raise


def sum_stats(readings: list[dict[str, int]]) -> dict[str, int]:
    """Add up per-vCPU readings into one dict (stats are named alike on each)."""
    total: dict[str, int] = {}
    for reading in readings:
        for name, value in reading.items():
            total[name] = total.get(name, 0) + value
    return total

