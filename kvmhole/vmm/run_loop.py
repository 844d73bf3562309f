"""The run loop: enter the vCPU, hand each exit to handle_exit, carry out its action.

Hole reads (one per absent function the guest probes: the bulk of its exits) skip
handle_exit: they are answered in place in kvm_run, in Python or, with the C fast
path, without leaving KVM_RUN's C loop. `kvmhole bench` measures the two.
"""

import time

from kvmhole.errors import GuestError
from kvmhole.kvm import KVM_EXIT_MMIO, IntrExit
from kvmhole.vmm.devices import ALL_ONES, Devices
from kvmhole.vmm.exit_handler import RESUME, Fail, Finish, Pause, handle_exit
from kvmhole.vmm.fastpath import CFastPath
from kvmhole.vmm.pci import FUNCTION_SIZE


def run_until_done(vcpu, devices: Devices, c_fastpath: bool = False) -> int:
    """Run the guest until it reports that it is done; its status. GuestError when it
    stops any other way."""
    if not c_fastpath:
        return _serve(_hole_reads_first(vcpu, devices), devices)
    fastpath = CFastPath(vcpu, devices.ecam.map, devices.ecam.functions)
    try:
        return _serve(fastpath.run, devices)
    finally:
        devices.counts.add_hole_read_exits(fastpath.hole_reads, fastpath.pages_read())


def _serve(next_exit, devices: Devices) -> int:
    while True:
        action = handle_exit(next_exit(), devices)
        if action is RESUME:
            continue
        if isinstance(action, Pause):
            time.sleep(action.seconds)
        elif isinstance(action, Finish):
            return action.status
        elif isinstance(action, Fail):
            raise GuestError(action.reason)


def _hole_reads_first(vcpu, devices: Devices):
    """vcpu.run for _serve, except that hole reads are answered in place in kvm_run,
    with no exit object or dispatch: per read one ioctl, one unpack of kvm_run's MMIO
    fields, one slice assignment and one set insertion (the function read, for the
    distinct count): the Python share `kvmhole bench` measures."""
    run_bytes, data_at = vcpu.run_bytes, vcpu.mmio_data_offset
    unpack, kvm_run = vcpu.mmio_exit.unpack_from, vcpu.kvm_run
    window, functions = devices.ecam.map.ecam, devices.ecam.functions
    base, size = window.start, window.end - window.start
    counts = devices.counts
    seen = counts.hole_functions.add

    def next_exit():
        reads = 0  # hole reads answered here, added to the counts once per other exit
        try:
            while True:
                if kvm_run() < 0:
                    vcpu.failed_entry()  # raises unless a signal interrupted KVM_RUN
                    return IntrExit()
                reason, addr, length, is_write = unpack(run_bytes)
                # a hole read: EcamWindow.read's rule (in the window, no function there)
                if reason == KVM_EXIT_MMIO and not is_write and 0 <= addr - base < size \
                        and (addr & -FUNCTION_SIZE) not in functions:
                    run_bytes[data_at:data_at + length] = ALL_ONES[:length]
                    seen(addr >> 12)
                    reads += 1
                    continue
                return vcpu.current_exit()
        finally:
            counts.add_hole_read_exits(reads)
    return next_exit
