"""An SVM host on a machine without hardware virtualisation, for tests and by hand.

QEMU TCG emulates an AMD vCPU with SVM and nested paging; Debian's own kernel (6.1 or
6.12, the release whose headers are installed) boots in it and loads kvm_amd, so
kvmhole meets the hardware path its users have: kvm_exit, kvm_page_fault and kvm_entry
fire, and that kernel's BPF verifier checks the probes. `run()` boots it, runs one
command inside with this machine's files, and returns the command's output and exit
code.
TCG timings are no hardware timings: compare ratios only.
"""

from kvmhole.svmhost.errors import SvmHostError, SvmHostTimeout
from kvmhole.svmhost.machine import CPU, SvmResult, run

__all__ = ["CPU", "SvmHostError", "SvmHostTimeout", "SvmResult", "run"]
