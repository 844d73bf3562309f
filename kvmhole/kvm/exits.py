"""Typed vCPU exits: one class per exit kind the VMM handles, like kvm-ioctls' VcpuExit."""

from dataclasses import dataclass, field

from kvmhole.kvm._kvm_cffi import ffi, lib

Buffer = ffi.buffer  # cffi buffers over kvm_run: slicing reads, slice assignment writes

EXIT_NAMES: dict[int, str] = {
    getattr(lib, name): name.removeprefix("KVM_EXIT_")
    for name in dir(lib)
    if name.startswith("KVM_EXIT_") and name not in ("KVM_EXIT_IO_IN", "KVM_EXIT_IO_OUT")
}

INTERNAL_ERROR_NAMES = {
    lib.KVM_INTERNAL_ERROR_EMULATION: "emulation failure",
    lib.KVM_INTERNAL_ERROR_SIMUL_EX: "exception while delivering an exception",
    lib.KVM_INTERNAL_ERROR_DELIVERY_EV: "event delivery failed",
    lib.KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON: "unexpected exit reason",
}


# The reason numbers a run loop's hot path compares Vcpu.enter()'s result with.
KVM_EXIT_MMIO = lib.KVM_EXIT_MMIO
KVM_EXIT_INTR = lib.KVM_EXIT_INTR


def exit_name(reason: int) -> str:
    return EXIT_NAMES.get(reason, f"UNKNOWN_{reason}")


@dataclass(slots=True)
class MmioExit:
    """KVM_EXIT_MMIO. For a read, the VMM fills `data` (a writable view into kvm_run)."""

    addr: int
    length: int
    is_write: bool
    data: Buffer  # writable, inside kvm_run

    reason = "MMIO"

    @property
    def value(self) -> int:
        return int.from_bytes(self.data[: self.length], "little")


@dataclass(slots=True)
class IoExit:
    """KVM_EXIT_IO: `data` is the whole transfer (size * count bytes) inside kvm_run."""

    port: int
    size: int
    is_write: bool
    count: int
    data: Buffer  # writable, inside kvm_run

    reason = "IO"

    @property
    def value(self) -> int:
        return int.from_bytes(self.data[: self.size], "little")


@dataclass(slots=True)
class HltExit:
    reason = "HLT"


@dataclass(slots=True)
class ShutdownExit:
    """The guest triple-faulted (or asked for a shutdown)."""

    reason = "SHUTDOWN"


@dataclass(slots=True)
class IntrExit:
    """KVM_RUN returned EINTR (a signal arrived) or KVM_EXIT_INTR."""

    reason = "INTR"


@dataclass(slots=True)
class FailEntryExit:
    hardware_reason: int
    cpu: int

    reason = "FAIL_ENTRY"


@dataclass(slots=True)
class InternalErrorExit:
    suberror: int
    data: list[int] = field(default_factory=list)

    reason = "INTERNAL_ERROR"

    @property
    def description(self) -> str:
        return INTERNAL_ERROR_NAMES.get(self.suberror, f"suberror {self.suberror}")


@dataclass(slots=True)
class OtherExit:
    """Any exit reason the VMM does not handle; `reason` carries its KVM name."""

    code: int
    hardware_reason: int = 0

    @property
    def reason(self) -> str:
        return exit_name(self.code)


VcpuExit = (
    MmioExit | IoExit | HltExit | ShutdownExit | IntrExit | FailEntryExit | InternalErrorExit
    | OtherExit
)
