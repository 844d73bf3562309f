"""The DSDT: dsdt.asl with the machine's numbers filled in, compiled by Debian's iasl
(acpica-tools) and cached by the source it was compiled from."""

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from string import Template

from kvmhole.errors import KvmholeError
from kvmhole.guests.toolchain import cache_dir
from kvmhole.vmm import power, uart
from kvmhole.vmm.pci import PciShape

SOURCE = Path(__file__).with_name("dsdt.asl")


def dsdt_source(shape: PciShape) -> str:
    return Template(SOURCE.read_text()).substitute(
        s5_type=power.S5_SLEEP_TYPE, ecam_base=f"{shape.ecam_base:#010x}",
        ecam_size=f"{shape.ecam_size:#010x}", buses=f"{shape.buses:#06x}",
        last_bus=f"{shape.buses - 1:#06x}", com1_port=f"{uart.COM1_PORT:#06x}",
        com1_irq=uart.COM1_IRQ)


def compile_dsdt(shape: PciShape) -> bytes:
    source = dsdt_source(shape)
    path = cache_dir() / "acpi" / hashlib.sha256(source.encode()).hexdigest()[:16] / "dsdt.aml"
    if not path.exists():
        _compile(source, path)
    return path.read_bytes()


def _compile(source: str, target: Path) -> None:
    if shutil.which("iasl") is None:
        raise KvmholeError("building the DSDT needs iasl: apt-get install acpica-tools")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        asl = Path(tmp) / "dsdt.asl"
        asl.write_text(source)
        done = subprocess.run(["iasl", "-p", str(Path(tmp) / "dsdt"), str(asl)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise KvmholeError(f"iasl could not compile the DSDT: {done.stdout[-2000:]}")
        os.replace(Path(tmp) / "dsdt.aml", target)  # atomic, as guest builds are
