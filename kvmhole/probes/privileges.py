"""Least privilege for monitors: once the probes are attached, keep only the
capabilities that reading them and naming new guests still need.

Attaching needs CAP_BPF and CAP_PERFMON (or root's whole set); afterwards a monitor
only reads and updates its BPF maps, which kernels with unprivileged BPF disabled
(Debian's default) gate on CAP_BPF for every bpf() call, and copies each new
guest's KVM stats fds out of its VMM with pidfd_getfd, which needs CAP_SYS_PTRACE.
Everything else (CAP_SYS_ADMIN, CAP_DAC_OVERRIDE, CAP_NET_ADMIN, CAP_PERFMON...) is
dropped from the effective, permitted, inheritable, ambient and bounding sets, so
neither this process nor anything it runs can take them back.
"""

import ctypes
import os

CAP_SYS_PTRACE = 19
CAP_BPF = 39
KEPT = {CAP_BPF: "CAP_BPF (reading and updating the probes' BPF maps)",
        CAP_SYS_PTRACE: "CAP_SYS_PTRACE (copying each new guest's KVM stats fds)"}
_CAPSET_VERSION_3 = 0x20080522
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4

_libc = ctypes.CDLL(None, use_errno=True)


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _last_cap() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def _get() -> tuple[int, int]:
    """(effective, permitted) of this process, as 64-bit masks."""
    header, data = _Header(_CAPSET_VERSION_3, 0), (_Data * 2)()
    if _libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    return (data[0].effective | data[1].effective << 32,
            data[0].permitted | data[1].permitted << 32)


def drop_all_but_kept() -> str:
    """Drop every capability but KEPT (those this process has); says what was kept."""
    _, permitted = _get()
    kept = {cap: why for cap, why in KEPT.items() if permitted >> cap & 1}
    mask = sum(1 << cap for cap in kept)
    for cap in range(_last_cap() + 1):  # the bounding set first: it needs CAP_SETPCAP
        if cap not in kept and _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 \
                and ctypes.get_errno() != 22:  # EINVAL: a cap this kernel does not have
            break  # no CAP_SETPCAP (not root): the set is what it is
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header, data = _Header(_CAPSET_VERSION_3, 0), (_Data * 2)()
    for i in range(2):
        data[i].effective = data[i].permitted = mask >> (32 * i) & 0xFFFFFFFF
    if _libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), f"capset: {os.strerror(ctypes.get_errno())}")
    if not kept:
        return "no capability kept (it had none of the ones reading the probes needs)"
    return "kept only " + " and ".join(kept.values()) + "; every other capability dropped"
