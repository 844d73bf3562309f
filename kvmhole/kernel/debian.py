"""The Debian packages the build reads: which versions are installed, which package owns a
file, and the stock kvm modules of a release's kernel image (downloaded, never
installed). Which release: kernel/release.py."""

import lzma
import shutil
import subprocess
import tempfile
from pathlib import Path

from kvmhole import cache
from kvmhole.errors import KvmholeError
from kvmhole.kernel.release import Release

KVM_DIR = "kernel/arch/x86/kvm"
# Keyed by package version, so never stale; shared by every build cache.
STOCK_CACHE = cache.ROOT / "stock"


def installed_version(package: str) -> str | None:
    done = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", package],
                          capture_output=True, text=True)
    status, _, version = done.stdout.partition(" ")
    return version if done.returncode == 0 and status == "installed" else None


def owner(path: Path) -> str | None:
    """The package that installed `path`, or None."""
    done = subprocess.run(["dpkg-query", "-S", str(path)], capture_output=True, text=True)
    return done.stdout.split(":")[0] if done.returncode == 0 else None


def stock_kvm_modules(release: Release, cache: Path = STOCK_CACHE) -> Path:
    """The directory holding the stock kvm*.ko of `release`'s image, extracted once from
    the .deb (apt-get download) into `cache` (6.12 ships them xz-compressed: they are
    kept decompressed); the running kernel may be another."""
    package, version = release.image_package, release.package_version
    target = cache / f"{package}_{version}"
    if (target / "kvm.ko").exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        # _apt cannot write into root's private cache: download as root, no sandbox.
        fetch = subprocess.run(["apt-get", "download", "-q", "-o",
                                "APT::Sandbox::User=root", f"{package}={version}"],
                               cwd=scratch, capture_output=True, text=True)
        debs = list(Path(scratch).glob("*.deb"))
        if fetch.returncode != 0 or not debs:
            raise KvmholeError(f"apt-get download {package}={version} failed (needed "
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
        for packed in partial.glob("*.ko.xz"):
            packed.with_suffix("").write_bytes(lzma.decompress(packed.read_bytes()))
            packed.unlink()
        partial.rename(target)
    return target
