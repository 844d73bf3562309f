"""Keep one idle VM open in the SVM host for the whole job, so KVM's static keys stay put.

KVM flips two static keys when the first VM (or vCPU without an in-kernel LAPIC)
appears and when the last one goes: `preempt_notifier_key`, patched into
__schedule, and `kvm_has_noapic_vcpu`. Every kvmhole guest in an otherwise empty
SVM host is such a first and last one, so the kernel live-patched __schedule
(int3, then the new bytes) twice per guest while the other vCPU ran it. Under
QEMU's multi-threaded TCG that other vCPU could keep executing a stale translation
holding the int3 and loop in the int3 handler forever while holding the runqueue
lock, and the SVM host hung with nothing on its console (seen through QEMU's
monitor: hang.py). One VM with one LAPIC-less vCPU, held from the job's start,
keeps both keys on and the code unpatched. It never runs, so no probe sees it.

`python -m kvmhole.svmhost.keeper` (machine.HOLD_VM) returns once the VM exists and
leaves a child holding it until the SVM host powers off, or until machine.RELEASE_VM
(before unloading KVM's modules, which a held VM keeps in use).
"""

import os
import signal
import sys

from kvmhole.kvm import System
from kvmhole.svmhost.machine import KEEPER_PID_FILE as PID_FILE


def keep() -> None:
    system = System()
    vm = system.create_vm()
    vcpu = vm.create_vcpu(0)  # no KVM_CREATE_IRQCHIP: this is what holds kvm_has_noapic_vcpu
    child = os.fork()
    if child:  # the job goes on once the holder's pid is known
        PID_FILE.write_text(f"{child}\n")
        os._exit(0)
    os.setsid()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            signal.pause()
    finally:  # let go before saying so: the modules can be unloaded once the file is gone
        vcpu.close()
        vm.close()
        system.close()
        PID_FILE.unlink()


if __name__ == "__main__":
    keep()
