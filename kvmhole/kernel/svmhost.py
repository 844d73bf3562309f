"""Run a command in an SVM host whose KVM is the KVM_MEM_PCI_HOLE port.

The SVM host boots Debian's own 6.1.0-56-amd64 kernel with the stock kvm_amd loaded;
the patched modules replace it before the command runs, so `--hole native` works
there. The modules come from `build()` (cached) and are reached through the SVM
host's root, which is this machine's `/`.
"""

from kvmhole.kernel.build import build
from kvmhole.svmhost import SvmResult, hang, run
from kvmhole.svmhost.kernel import BUSYBOX
from kvmhole.svmhost.machine import HOLD_VM

SWAP_FAILED = 125  # the command's exit code when the patched modules did not load


def swap_script(modules: dict) -> str:
    """Shell commands that replace the stock kvm_amd and kvm by `modules`."""
    return (f"{BUSYBOX} rmmod kvm_amd kvm && {BUSYBOX} insmod {modules['kvm']} && "
            f"{BUSYBOX} insmod {modules['kvm-amd']}")


def run_patched(command: list[str], progress=lambda message: None, **kwargs) -> SvmResult:
    """svmhost.run(command), with the patched kvm and kvm-amd loaded first."""
    modules = build(progress=progress).modules
    script = (f"{swap_script(modules)} || {{ echo 'kvmhole: loading the KVM_MEM_PCI_HOLE "
              f"modules failed' >&2; exit {SWAP_FAILED}; }}\n"
              f"{hang.save_symbols()}\n"  # the new modules' addresses, for a hang's report
              f"{HOLD_VM} || exit {SWAP_FAILED}\n"
              f"exec \"$@\"")
    return run(["/bin/sh", "-c", script, "pci-hole-kvm", *command], kvm="stock",
               hold_vm=False, progress=progress, **kwargs)
