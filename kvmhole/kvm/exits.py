"""Typed vCPU exits: one class per exit kind the VMM handles, like kvm-ioctls' VcpuExit.

An access's direction is in its type. Only a read (MmioRead, PortIn) can answer the
guest, through respond(); a write (MmioWrite, PortOut) carries a copy of its data, so
no handler can write into the buffer of an access that was not a read.
"""

from dataclasses import dataclass, field

from kvmhole.kvm._kvm_cffi import lib

# KVM_EXIT_IO_OUT is a direction, not a reason (it is 1, KVM_EXIT_EXCEPTION's number).
EXIT_NAMES: dict[int, str] = {
    getattr(lib, name): name.removeprefix("KVM_EXIT_")
    for name in dir(lib)
    if name.startswith("KVM_EXIT_") and name != "KVM_EXIT_IO_OUT"
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
class MmioRead:
    """KVM_EXIT_MMIO for a load: the guest gets what respond() puts in kvm_run."""

    addr: int
    length: int
    reply: object  # writable: kvm_run's data field (in tests, a bytearray)

    reason = "MMIO"

    def respond(self, data: bytes) -> None:
        """The bytes the guest's load returns (the first `length` of `data`)."""
        self.reply[: self.length] = data[: self.length]


@dataclass(slots=True, frozen=True)
class MmioWrite:
    """KVM_EXIT_MMIO for a store: `data` is what the guest wrote."""

    addr: int
    data: bytes

    reason = "MMIO"

    @property
    def length(self) -> int:
        return len(self.data)

    @property
    def value(self) -> int:
        return int.from_bytes(self.data, "little")


@dataclass(slots=True)
class PortIn:
    """KVM_EXIT_IO, in: `count` transfers of `size` bytes, answered by respond()."""

    port: int
    size: int
    count: int
    reply: object  # writable: the transfer inside kvm_run (size * count bytes)

    reason = "IO"

    def respond(self, data: bytes) -> None:
        """The bytes the guest's IN returns, from the start of the transfer."""
        self.reply[: len(data)] = data[: len(self.reply)]


@dataclass(slots=True, frozen=True)
class PortOut:
    """KVM_EXIT_IO, out: `data` is the whole transfer (size * count bytes) the guest sent."""

    port: int
    size: int
    count: int
    data: bytes

    reason = "IO"

    @property
    def value(self) -> int:
        """The first transfer as a number (the guest protocol's ports send one)."""
        return int.from_bytes(self.data[: self.size], "little")


MmioExit = MmioRead | MmioWrite  # for isinstance: an MMIO exit, whichever direction


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
    MmioRead | MmioWrite | PortIn | PortOut | HltExit | ShutdownExit | IntrExit | FailEntryExit
    | InternalErrorExit | OtherExit
)
