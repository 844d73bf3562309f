"""The SVM host's kernel: Debian's own image for the headers this host has installed.

The image is fetched with `apt-get download`, unpacked and never installed, so the
probes inside meet exactly the kernel whose headers bcc compiles against. The .deb
has no modules.dep and the host has no kmod, so busybox's depmod builds one.
Everything is cached under /var/cache/kvmhole/svmhost/<version>.
"""

import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kvmhole.probes import host
from kvmhole.svmhost.errors import SvmHostError

CACHE = host.HEADER_CACHE / "svmhost"
BUSYBOX = Path("/bin/busybox")  # busybox-static: runs in the initramfs without a libc


@dataclass(frozen=True)
class KernelImage:
    version: str  # e.g. 6.1.0-56-amd64, the `uname -r` inside
    root: Path    # the unpacked .deb

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.version}"

    @property
    def modules(self) -> Path:
        return self.root / "lib" / "modules" / self.version

    def module(self, name: str) -> Path:
        """The .ko of module `name` (dashes and underscores alike, as modprobe has it)."""
        wanted = name.replace("-", "_")
        for line in (self.modules / "modules.dep").read_text().splitlines():
            path = line.split(":", 1)[0]
            if Path(path).name.removesuffix(".ko").replace("-", "_") == wanted:
                return self.modules / path
        raise SvmHostError(f"module {name} is not in {self.modules}")


def headers_version() -> str:
    """The version of the newest installed Debian kernel headers (-common + -<arch>)."""
    pair = host._header_pair()
    if pair is None:
        raise SvmHostError(f"no Debian kernel headers in {host.HEADER_SOURCES}: "
                           "apt-get install linux-headers-amd64")
    return pair[1].name.removeprefix("linux-headers-")


def _run(step: list[str], cwd: Path, what: str) -> None:
    try:
        done = subprocess.run(step, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise SvmHostError(f"{what}: {step[0]} is missing") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SvmHostError(f"{what} failed: {last}")


def kernel_image(progress=lambda message: None) -> KernelImage:
    """The unpacked kernel image matching the installed headers, fetched once."""
    if platform.machine() != "x86_64":
        raise SvmHostError("the SVM host needs an x86_64 machine")
    version = headers_version()
    image = KernelImage(version, CACHE / version)
    if (image.modules / "modules.dep").is_file() and image.vmlinuz.is_file():
        return image
    if not BUSYBOX.is_file():
        raise SvmHostError(f"{BUSYBOX} is missing: apt-get install busybox-static")
    package = f"linux-image-{version}"
    progress(f"fetching and unpacking {package} (once; cached in {CACHE})")
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=CACHE, prefix=".fetch-"))
    try:
        # APT's sandbox user cannot write into a root-owned temporary directory
        _run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", package], work,
             f"apt-get download {package} (the kernel image for the installed headers)")
        deb = next(work.glob("*.deb"))
        _run(["dpkg-deb", "-x", str(deb), "root"], work, f"unpacking {deb.name}")
        _run([str(BUSYBOX), "depmod", "-b", str(work / "root"), version], work,
             f"depmod for {version}")
        try:
            (work / "root").rename(image.root)  # atomic: a concurrent fetch sees all or nothing
        except OSError:
            if not (image.modules / "modules.dep").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return image
