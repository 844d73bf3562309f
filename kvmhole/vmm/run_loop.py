"""The run loop: enter the vCPU, hand each exit to handle_exit, carry out its action.

Hole reads (one per absent function the guest probes: the bulk of its exits) skip
handle_exit: they are answered in place in kvm_run, in Python or, with the C fast
path, without leaving KVM_RUN's C loop. `kvmhole bench` measures the two.
"""

import time

from kvmhole.errors import GuestError
from kvmhole.kvm import KVM_EXIT_INTR, KVM_EXIT_MMIO, IntrExit
from kvmhole.vmm.devices import Devices
from kvmhole.vmm.exit_handler import RESUME, Fail, Finish, Pause, handle_exit
from kvmhole.vmm.fastpath import CFastPath


def run_until_done(vcpu, devices: Devices, c_fastpath: bool = False) -> int:
    """Run the guest until it reports that it is done; its status. GuestError when it
    stops any other way."""
    if not c_fastpath:
        return _serve(_hole_reads_first(vcpu, devices), devices)
    fastpath = CFastPath(vcpu, devices.ecam.map, devices.ecam.functions)
    try:
        return _serve(fastpath.run, devices)
    finally:
        devices.counts.userspace_exits["MMIO"] += fastpath.hole_reads
        devices.counts.hole_read_exits += fastpath.hole_reads


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
    """vcpu.run for _serve, except that hole reads are answered in place from kvm_run,
    with no exit object or dispatch."""
    mmio, data, read_hole = vcpu.mmio, vcpu.mmio_data, devices.ecam.read_hole
    exits = devices.counts.userspace_exits

    def next_exit():
        while True:
            reason = vcpu.enter()
            if reason == KVM_EXIT_MMIO and not mmio.is_write and \
                    read_hole(mmio.phys_addr, mmio.len, data):
                exits["MMIO"] += 1
                continue
            return IntrExit() if reason == KVM_EXIT_INTR else vcpu.current_exit()
    return next_exit
