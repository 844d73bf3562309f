"""What the VMM does with one exit: handle_exit(exit, devices) -> the run loop's next step.

It touches only the devices (their registers and counts) and the exit's own reply:
no KVM, no clock, no sleeping. The run loop (run_loop.py) carries the actions out, so
this part is tested with exits made by hand (tests/test_exit_handler.py).
"""

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
from kvmhole.vmm.actions import RESUME, Action, Fail, Finish, Pause, Resume
from kvmhole.vmm.devices import ALL_ONES, Devices

__all__ = ["RESUME", "Action", "Fail", "Finish", "Pause", "Resume", "handle_exit"]


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
        device = devices.port_device(exit_.port)
        if device is not None and exit_.count == 1:
            exit_.respond(device.read(exit_.port, exit_.size))
        else:  # nothing decodes it (or a string read): the bus floats high
            devices.counts.unassigned_exits += 1
            exit_.respond(b"\xff" * (exit_.size * exit_.count))
        return RESUME
    if isinstance(exit_, PortOut):
        device = devices.port_device(exit_.port)
        if device is None:
            devices.counts.unassigned_exits += 1
            return RESUME
        return device.write(exit_.port, exit_.data[: exit_.size]) or RESUME
    if isinstance(exit_, IntrExit):
        return RESUME  # a signal: its Python handler runs now (timeout, Ctrl-C)
    return Fail(_why_it_stopped(exit_))


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
