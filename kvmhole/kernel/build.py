"""Build the KVM_MEM_PCI_HOLE port as kvm.ko, kvm-amd.ko and kvm-intel.ko for an installed
Debian kernel release (kernel/release.py: 6.1 or 6.12), from Debian's own
linux-source-<series> and the kernel's own Kbuild, with that series' patches.

The build itself is kernel/pci-hole/build-modules.sh, the very script DKMS runs: it
extracts only arch/x86/kvm, virt/kvm and the files the patches touch, applies the
patches with no fuzz, and runs Kbuild from the headers package with the tree's copies
of the patched headers first on the include path. Around it, kvmhole refuses a source
that is not the very version of the headers (another builds with the same vermagic and
silently differs), checks vermagic and CRCs against the stock modules, and caches the
result under a hash of everything it depends on: a rerun does no work.
"""

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kvmhole import cache
from kvmhole.errors import KvmholeError
from kvmhole.kernel import debian, modinfo, release
from kvmhole.kernel.release import Release

CACHE = Path(os.environ.get("KVMHOLE_CACHE_DIR", cache.ROOT)) / "kernel"
MODULES = ("kvm", "kvm-amd", "kvm-intel")
BUILD_CODE = ("build.py", "debian.py", "modinfo.py", "release.py")
# The build steps, shared with DKMS; it takes the modules' version from dkms.conf.
SCRIPT = release.PATCH_ROOT.parent / "build-modules.sh"
DKMS_CONF = release.PATCH_ROOT.parent / "dkms.conf"


@dataclass
class Build:
    directory: Path
    modules: dict[str, Path]
    vermagic: str
    cached: bool
    seconds: float

    def to_dict(self) -> dict:
        return {"directory": str(self.directory), "vermagic": self.vermagic,
                "cached": self.cached, "seconds": round(self.seconds, 1),
                "modules": {name: str(path) for name, path in self.modules.items()}}


def _stderr(line: str) -> None:
    print(f"kvmhole kernel: {line}", file=sys.stderr, flush=True)


def patch_files(patches: Path) -> list[Path]:
    found = sorted(patches.glob("*.patch"))
    if not found:
        raise KvmholeError(f"no patch series in {patches} (expected "
                           "kernel/pci-hole/patches/<series>/*.patch)")
    return found


def check_tools(kernel: Release, source: Path) -> None:
    """One line naming every missing package; nothing is installed behind the user's back."""
    compiler = kernel.compiler()
    missing = [pkg for pkg, present in (
        (kernel.source_package, source.exists()),
        (kernel.headers_package, (kernel.headers_dir / "Makefile").exists()),
        (compiler, shutil.which(compiler)),
        ("patch", shutil.which("patch")),
        ("make", shutil.which("make")),
    ) if not present]
    if missing:
        raise KvmholeError(f"missing {', '.join(missing)}: apt-get install {' '.join(missing)}")


def makefile_version(text: str) -> str:
    """'6.1.192' from a kernel top-level Makefile."""
    fields = dict(re.findall(r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION) = ?(\S*)", text,
                             re.M))
    return "{VERSION}.{PATCHLEVEL}.{SUBLEVEL}{EXTRAVERSION}".format(**fields)


def headers_version(kernel: Release) -> str:
    """The kernel version the headers package was made from (its -common Makefile)."""
    include = re.search(r"^include (\S+)",
                        (kernel.headers_dir / "Makefile").read_text(), re.M).group(1)
    return makefile_version(Path(include).read_text())


def tarball_version(source: Path) -> tuple[str, str]:
    """(top directory, kernel version) of a source tarball, reading only up to its
    Makefile."""
    with tarfile.open(source, "r|*") as tar:
        for member in tar:
            top, _, rest = member.name.partition("/")
            if rest == "Makefile":
                return top, makefile_version(tar.extractfile(member).read().decode())
    raise KvmholeError(f"{source} holds no kernel Makefile: not a Linux source tarball")


def source_identity(source: Path) -> dict:
    """Cheap facts that change whenever the tarball does (the cache key's part)."""
    stat = source.stat()
    package = debian.owner(source)
    return {"path": str(source), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "package": package,
            "package_version": package and debian.installed_version(package)}


def check_source(kernel: Release, identity: dict, kernel_version: str,
                 headers: dict) -> None:
    """Refuse a source that is not exactly the kernel of the headers: another version
    builds with the same vermagic and loads, but is not the kernel it claims to be."""
    if kernel_version != headers["kernel_version"]:
        raise KvmholeError(f"{identity['path']} is Linux {kernel_version} but "
                           f"{kernel.headers_package} is {headers['kernel_version']}: "
                           f"refusing a mismatched source")
    if identity["package"] != kernel.source_package:
        raise KvmholeError(f"{identity['path']} was not installed by "
                           f"{kernel.source_package}, so its Debian version cannot be "
                           "checked against the headers: refusing it")
    if identity["package_version"] != headers["package_version"]:
        raise KvmholeError(f"{kernel.source_package} {identity['package_version']} does not "
                           f"match {kernel.headers_package} {headers['package_version']} "
                           f"(apt-get install {kernel.source_package} brings the "
                           "archive's current pair): refusing a mismatched source")


def cache_key(identity: dict, headers: dict, compiler: str, patches: list[Path]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([identity, headers, compiler], sort_keys=True).encode())
    # The code that decides how the build is done: a change to it rebuilds.
    for item in [*patches, SCRIPT, DKMS_CONF,
                 *(Path(__file__).with_name(f) for f in BUILD_CODE)]:
        digest.update(item.name.encode() + b"\0" + item.read_bytes())
    return digest.hexdigest()[:16]


def run_script(kernel: Release, source: Path, tree: Path, patch_only: bool = False,
               progress: Callable[[str], None] = _stderr) -> str:
    """kernel/pci-hole/build-modules.sh for `kernel` into `tree`; returns its output, and
    reports what it compiles as it goes."""
    command = ["sh", str(SCRIPT), "--source", str(source), "--headers",
               str(kernel.headers_dir), "--tree", str(tree),
               *(["--patch-only"] if patch_only else []), kernel.abi]
    start = time.monotonic()
    log = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        for line in proc.stdout:
            log.append(line.rstrip())
            step = re.match(r"\s+(CC \[M\]|LD \[M\])\s+(\S+)", line)
            if step:
                name = os.path.relpath(os.path.normpath(step.group(2)), tree)
                progress(f"[{time.monotonic() - start:4.0f} s] {step.group(1)} {name}")
    if proc.returncode != 0:
        mine = [line.removeprefix("build-modules: error: ") for line in log
                if line.startswith("build-modules: error: ")]
        errors = mine or [line for line in log if "error" in line.lower()] or log[-5:]
        raise KvmholeError(f"{SCRIPT.name} failed: " + " / ".join(errors[:5]))
    return "\n".join(log)


def verify(kernel: Release, built: dict[str, Path], stock: Path, tree_symvers: Path) -> str:
    """The checks the kernel makes at load time, against the stock modules and the
    headers' Module.symvers; returns the common vermagic."""
    exports = modinfo.exported_crcs(kernel.headers_dir / "Module.symvers")
    exports.update(modinfo.exported_crcs(tree_symvers))
    for name, path in built.items():
        ours = modinfo.modinfo(path)["vermagic"]
        theirs = modinfo.modinfo(stock / f"{name}.ko")["vermagic"]
        if ours != theirs:
            raise KvmholeError(f"{name}.ko vermagic {ours!r} differs from the stock "
                               f"module's {theirs!r}")
        wrong = [s for s, crc in modinfo.imported_crcs(path).items() if exports.get(s) != crc]
        if wrong:
            raise KvmholeError(f"{name}.ko imports {len(wrong)} symbols with CRCs the kernel "
                               f"does not export: {', '.join(wrong[:5])}")
    return ours


def build(kernel: Release | None = None, source: Path | None = None, cache: Path = CACHE,
          progress: Callable[[str], None] = _stderr) -> Build:
    """Build (or find in the cache) the patched modules for `kernel` (default: Debian's
    default release, kernel/release.py); raises KvmholeError with one line saying what
    is wrong."""
    start = time.monotonic()
    kernel = kernel or release.resolve()
    source = source or kernel.source_tarball
    check_tools(kernel, source)
    series = patch_files(kernel.patches)  # what the script applies, for the cache key
    identity = source_identity(source)
    headers = {"kernel_version": headers_version(kernel),
               "package_version": debian.installed_version(kernel.headers_package)}
    compiler = subprocess.run([kernel.compiler(), "--version"], capture_output=True,
                              text=True, check=True).stdout.splitlines()[0]
    key = cache_key(identity, headers, compiler, series)
    directory = cache / key
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a parallel build of the same key waits, then hits
        if (directory / "build.json").exists():
            return _load(directory, time.monotonic() - start)
        _, kernel_version = tarball_version(source)
        check_source(kernel, identity, kernel_version, headers)
        stock = debian.stock_kvm_modules(kernel)
        partial = cache / f"{key}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        tree = partial / "tree"
        progress(f"building {', '.join(m + '.ko' for m in MODULES)} for {kernel.abi} with "
                 f"{kernel.compiler()} from {source} (one to three minutes on 2 CPUs)")
        run_script(kernel, source, tree, progress=progress)
        kvm_dir = tree / "arch/x86/kvm"
        built = {m: kvm_dir / f"{m}.ko" for m in MODULES}
        vermagic = verify(kernel, built, stock, kvm_dir / "Module.symvers")
        for path in [*built.values(), kvm_dir / "Module.symvers"]:
            shutil.copy2(path, partial / path.name)
        shutil.rmtree(tree)  # ~100 MB of objects; the .ko files keep their debug info
        (partial / "build.json").write_text(json.dumps(
            {"vermagic": vermagic, "release": kernel.to_dict(), "source": identity,
             "headers": headers,
             "compiler": compiler, "patches": [p.name for p in series]}, indent=1))
        partial.rename(directory)
        progress(f"built in {time.monotonic() - start:.0f} s: {directory}")
        return _load(directory, time.monotonic() - start, cached=False)


def _load(directory: Path, seconds: float, cached: bool = True) -> Build:
    info = json.loads((directory / "build.json").read_text())
    return Build(directory=directory, vermagic=info["vermagic"], cached=cached,
                 seconds=seconds, modules={m: directory / f"{m}.ko" for m in MODULES})
