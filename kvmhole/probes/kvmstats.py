"""KVM's own exit counters for a guest, read from outside its VMM: the independent
check on what the probes count.

KVM refuses vCPU ioctls, KVM_GET_STATS_FD included, from any process but the
VMM (EIO: the caller's mm must be the VM's), and per-VM debugfs stats are not
readable on every host (EPERM on lockdown-restricted ones). A binary stats file
descriptor the VMM already holds, though, can be read by anyone who has it:
pidfd_getfd() copies it out of the VMM. kvmhole's VMM keeps its vCPUs' stats
fds open while the guest runs; QEMU opens them only for query-stats, so for
QEMU there is usually nothing to read. The copied fds keep the VM's stats
readable after the VMM exits, so an exited guest's final counts can be read.
"""

import ctypes
import os
import sys

from kvmhole.kvm.stats import StatsFd, sum_stats

SYS_PIDFD_GETFD = 438  # x86_64
VCPU_STATS_LINK = "anon_inode:kvm-vcpu-stats:"
# Exits and the reasons the probes split them into; the rest is not comparable.
KEPT = ("exits", "mmio_exits", "io_exits", "halt_exits")

_libc = ctypes.CDLL(None, use_errno=True)


class GuestKvmStats:
    """The vCPU stats fds of one VMM process, copied into this one."""

    def __init__(self, fds: list[StatsFd]):
        self.fds = fds

    def read(self) -> dict[str, int]:
        return kept(sum_stats([fd.read(KEPT) for fd in self.fds]))

    def close(self) -> None:
        for fd in self.fds:
            fd.close()
        self.fds = []


def kept(stats: dict[str, int] | None) -> dict[str, int] | None:
    """The stats comparable with the probes' counts."""
    return None if stats is None else {name: stats.get(name, 0) for name in KEPT}


def attach(pid: int) -> GuestKvmStats | None:
    """Copy the vCPU stats fds `pid` holds; None when it holds none or we may not."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    copies = []
    try:
        for fd in _vcpu_stats_fds(pid):
            copy = _libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
            if copy >= 0 and (stats := _checked(copy)) is not None:
                copies.append(stats)
    finally:
        os.close(pidfd)
    return GuestKvmStats(copies) if copies else None


def _checked(fd: int) -> StatsFd | None:
    """The copied fd as KVM stats, or None (closed) if it is anything else: the VMM may
    have closed the fd it listed and reused its number between readlink and the copy."""
    try:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(VCPU_STATS_LINK):
            return StatsFd(fd)
    except (OSError, ValueError) as error:
        print(f"kvmhole: warning: ignoring a KVM stats fd that does not read as one: {error}",
              file=sys.stderr, flush=True)
    os.close(fd)
    return None


def _vcpu_stats_fds(pid: int) -> list[int]:
    fds = []
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return fds
    for name in names:
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}").startswith(VCPU_STATS_LINK):
                fds.append(int(name))
        except OSError:
            continue  # closed meanwhile
    return fds
