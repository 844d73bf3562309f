"""The SVM host's kernel: Debian's own image of an installed headers release
(kernel/release.py: the default series, or the one asked for).

The image is fetched with `apt-get download`, unpacked and never installed, so the
probes inside meet exactly the kernel whose headers bcc compiles against. The .deb
has no modules.dep and the host has no kmod, so busybox's depmod builds one.
Everything is cached under /var/cache/kvmhole/svmhost/<version>.
"""

import lzma
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kvmhole import cache
from kvmhole.errors import KvmholeError
from kvmhole.kernel import release
from kvmhole.svmhost.errors import SvmHostError

CACHE = cache.ROOT / "svmhost"
BUSYBOX = Path("/bin/busybox")  # busybox-static: runs in the initramfs without a libc


@dataclass(frozen=True)
class KernelImage:
    version: str  # the release's ABI, e.g. 6.1.0-57-amd64: the `uname -r` inside
    root: Path    # the unpacked .deb

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.version}"

    @property
    def modules(self) -> Path:
        return self.root / "lib" / "modules" / self.version

    @staticmethod
    def _module_name(path: str) -> str:
        # dashes and underscores alike, as modprobe has it; 6.12 ships .ko.xz
        name = Path(path).name.removesuffix(".xz").removesuffix(".ko")
        return name.replace("-", "_")

    def is_builtin(self, name: str) -> bool:
        """Whether module `name` is built into the image (6.12 builds virtio in)."""
        builtin = self.modules / "modules.builtin"
        wanted = name.replace("-", "_")
        return builtin.is_file() and any(
            self._module_name(line) == wanted for line in builtin.read_text().splitlines())

    def _module_path(self, name: str) -> str | None:
        wanted = name.replace("-", "_")
        for line in (self.modules / "modules.dep").read_text().splitlines():
            path = line.split(":", 1)[0]
            if self._module_name(path) == wanted:
                return path
        return None

    def has_module(self, name: str) -> bool:
        return self._module_path(name) is not None

    def module(self, name: str) -> bytes:
        """The uncompressed .ko of module `name` (the initramfs's busybox insmod reads
        plain ELF)."""
        path = self._module_path(name)
        if path is None:
            raise SvmHostError(f"module {name} is not in {self.modules}")
        data = (self.modules / path).read_bytes()
        return lzma.decompress(data) if path.endswith(".xz") else data


def headers_version(series: str | None = None) -> str:
    """The ABI of the installed headers release of `series` (default: Debian's default
    series): the kernel the SVM host boots."""
    try:
        return release.resolve(series).abi
    except KvmholeError as error:
        raise SvmHostError(str(error)) from None


def _run(step: list[str], cwd: Path, what: str) -> None:
    try:
        done = subprocess.run(step, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise SvmHostError(f"{what}: {step[0]} is missing") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SvmHostError(f"{what} failed: {last}")


def kernel_image(series: str | None = None, progress=lambda message: None) -> KernelImage:
    """The unpacked kernel image of the installed headers release of `series` (default:
    Debian's default series), fetched once."""
    if platform.machine() != "x86_64":
        raise SvmHostError("the SVM host needs an x86_64 machine")
    try:
        kernel = release.resolve(series)
    except KvmholeError as error:
        raise SvmHostError(str(error)) from None
    version = kernel.abi
    image = KernelImage(version, CACHE / f"{version}_{kernel.package_version}")
    if (image.modules / "modules.dep").is_file() and image.vmlinuz.is_file():
        return image
    if not BUSYBOX.is_file():
        raise SvmHostError(f"{BUSYBOX} is missing: apt-get install busybox-static")
    # the image of the very Debian version of the headers, as the module build has it
    package = f"{kernel.image_package}={kernel.package_version}"
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
