"""What the VMM does with one exit: handle_exit(exit, devices) -> the run loop's next step.

It touches only the devices (their registers and counts) and the exit's own reply:
no KVM, no clock, no sleeping. The run loop (run_loop.py) carries the actions out, so
this part is tested with exits made by hand (tests/test_exit_handler.py).
"""

from dataclasses import dataclass

from kvmhole.guests import protocol
from kvmhole.kvm import (
    FailEntryExit,
    HltExit,
    InternalErrorExit,
    IntrExit,
    MmioRead,
    MmioWrite,
    PortIn,
    PortOut,
    ShutdownExit,
    VcpuExit,
)
from kvmhole.vmm.devices import ALL_ONES, Devices


@dataclass(frozen=True)
class Resume:
    """Enter the guest again."""


@dataclass(frozen=True)
class Pause:
    """The guest asked to wait this long (PORT_SLEEP), then go on."""

    seconds: float


@dataclass(frozen=True)
class Finish:
    """The guest reported that it is done (PORT_DONE), with this status."""

    status: int


@dataclass(frozen=True)
class Fail:
    """The guest cannot go on: the run ends with a GuestError saying why."""

    reason: str


Action = Resume | Pause | Finish | Fail
RESUME = Resume()


def handle_exit(exit_: VcpuExit, devices: Devices) -> Action:
    devices.counts.userspace_exits[exit_.reason] += 1
    if isinstance(exit_, MmioRead):
        if exit_.addr in devices.ecam:
            exit_.respond(devices.ecam.read(exit_.addr, exit_.length))
        else:  # nothing decodes it: reads float high, as on a real bus
            devices.counts.unassigned_exits += 1
            exit_.respond(ALL_ONES)
        return RESUME
    if isinstance(exit_, MmioWrite):
        if exit_.addr in devices.ecam:
            devices.ecam.write(exit_.addr, exit_.data)
        else:
            devices.counts.unassigned_exits += 1
        return RESUME
    if isinstance(exit_, PortIn):
        if exit_.port in devices.config_ports:
            exit_.respond(devices.config_ports.read(exit_.port, exit_.size))
        else:
            devices.counts.unassigned_exits += 1
            exit_.respond(b"\xff" * (exit_.size * exit_.count))
        return RESUME
    if isinstance(exit_, PortOut):
        return _port_out(exit_, devices)
    if isinstance(exit_, IntrExit):
        return RESUME  # a signal: its Python handler runs now (timeout, Ctrl-C)
    return Fail(_why_it_stopped(exit_))


def _port_out(exit_: PortOut, devices: Devices) -> Action:
    """A config port, or the guest protocol's ports (done, sleep, progress)."""
    if exit_.port in devices.config_ports:
        devices.config_ports.write(exit_.port, exit_.data[: exit_.size])
    elif exit_.port == protocol.PORT_DONE:
        return Finish(exit_.value)
    elif exit_.port == protocol.PORT_SLEEP:
        return Pause(exit_.value / 1e6)
    elif exit_.port != protocol.PORT_PROGRESS:
        devices.counts.unassigned_exits += 1
    return RESUME


def _why_it_stopped(exit_: VcpuExit) -> str:
    if isinstance(exit_, HltExit):
        return "the guest halted without reporting that it finished"
    if isinstance(exit_, ShutdownExit):
        return "the guest triple-faulted (KVM_EXIT_SHUTDOWN)"
    if isinstance(exit_, InternalErrorExit):
        return f"KVM internal error: {exit_.description} {exit_.data}"
    if isinstance(exit_, FailEntryExit):
        return (f"KVM could not enter the guest (hardware reason {exit_.hardware_reason:#x} "
                f"on cpu {exit_.cpu})")
    return f"unexpected exit {exit_.reason}"
