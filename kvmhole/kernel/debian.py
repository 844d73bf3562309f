"""The Debian packages the build reads: which versions are installed, which package owns a
file, and the stock kvm modules of the kernel image (downloaded, never installed)."""

import shutil
import subprocess
import tempfile
from pathlib import Path

from kvmhole.errors import KvmholeError

KERNEL_RELEASE = "6.1.0-56-amd64"
HEADERS_PACKAGE = f"linux-headers-{KERNEL_RELEASE}"
IMAGE_PACKAGE = f"linux-image-{KERNEL_RELEASE}"
SOURCE_PACKAGE = "linux-source-6.1"
HEADERS_DIR = Path("/usr/src") / HEADERS_PACKAGE
SOURCE_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")
COMPILER = "gcc-12"
KVM_DIR = "kernel/arch/x86/kvm"
# Keyed by package version, so never stale; shared by every build cache.
STOCK_CACHE = Path("/var/cache/kvmhole/stock")


def installed_version(package: str) -> str | None:
    done = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", package],
                          capture_output=True, text=True)
    status, _, version = done.stdout.partition(" ")
    return version if done.returncode == 0 and status == "installed" else None


def owner(path: Path) -> str | None:
    """The package that installed `path`, or None."""
    done = subprocess.run(["dpkg-query", "-S", str(path)], capture_output=True, text=True)
    return done.stdout.split(":")[0] if done.returncode == 0 else None


def stock_kvm_modules(version: str, cache: Path = STOCK_CACHE) -> Path:
    """The directory holding the stock kvm*.ko of IMAGE_PACKAGE `version`, extracted once
    from the .deb (apt-get download) into `cache`; the running kernel may be another."""
    target = cache / f"{IMAGE_PACKAGE}_{version}"
    if (target / "kvm.ko").exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        # _apt cannot write into root's private cache: download as root, no sandbox.
        fetch = subprocess.run(["apt-get", "download", "-q", "-o",
                                "APT::Sandbox::User=root", f"{IMAGE_PACKAGE}={version}"],
                               cwd=scratch, capture_output=True, text=True)
        debs = list(Path(scratch).glob("*.deb"))
        if fetch.returncode != 0 or not debs:
            raise KvmholeError(f"apt-get download {IMAGE_PACKAGE}={version} failed (needed "
                               f"to compare vermagic): {fetch.stderr.strip()}")
        files = Path(scratch) / "files"
        files.mkdir()
        with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(debs[0])],
                              stdout=subprocess.PIPE) as deb:
            subprocess.run(["tar", "-x", "-C", str(files), "--wildcards",
                            f"./lib/modules/*/{KVM_DIR}/*"], stdin=deb.stdout, check=True)
        found = list(files.glob(f"lib/modules/*/{KVM_DIR}"))
        partial = Path(scratch) / "kvm"
        shutil.move(found[0], partial)
        partial.rename(target)
    return target
