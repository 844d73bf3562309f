"""A stock Linux boot's config reads of absent functions, inside the SVM host: QEMU q35
with kvm_amd booting Debian's kernel into an initramfs that powers off
(kvmhole.svmhost.linux_guest), watched by the probes, one row per way to boot.

The rows answer "what would it save": the default boot (Intel-branded vCPU), the
same with pci=lastbus=0 (what a firmware table with fewer buses does: Linux's
peer-bridge scan runs to the MCFG's last bus) and an AMD-branded vCPU (its
northbridge scan adds reads). Boot times are TCG times: compare ratios only.
"""

import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from kvmhole.svmhost.linux_guest import INTEL_CPU, Boot, powered_off, start

BOOTS = {
    "default": Boot(),
    "pci=lastbus=0": Boot(append="pci=lastbus=0"),
    "AMD vCPU": Boot(cpu=INTEL_CPU.replace("GenuineIntel", "AuthenticAMD")),
}


def measure() -> dict:
    from kvmhole.probes.monitor import Monitor

    rows = {}
    with Monitor() as monitor:
        for label, boot in BOOTS.items():
            with tempfile.TemporaryDirectory() as work:
                started = time.monotonic()
                qemu = start(boot, Path(work), name=f"linux-{len(rows)}")
                _, err = qemu.communicate(timeout=600)
                seconds = time.monotonic() - started
                if qemu.returncode != 0 or not powered_off(Path(work)):
                    raise RuntimeError(f"the Linux guest ({label}) did not boot: {err}")
                guest = monitor.poll().guest(qemu.pid)
            rows[label] = {
                "append": boot.append, "cpu": boot.cpu, "boot_s": seconds,
                "config": {m: asdict(c) for m, c in guest.config.items()},
                "buses": [{"bus": b.bus, **b.reads} for b in guest.buses],
                "userspace_exits": guest.userspace_exits,
                "cost_estimates": {m: e.to_dict() for m, e in guest.cost_estimates().items()},
            }
    return rows
