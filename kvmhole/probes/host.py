"""What bcc needs from the host, set up by kvmhole itself: root, tracefs, kernel headers.

Every failure raises ProbeUnavailable with one line saying how to fix it, the same
advice `kvmhole doctor` prints.
"""

import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from kvmhole import cache
from kvmhole.errors import KvmholeError
from kvmhole.kernel import release
from kvmhole.probes import ProbeUnavailable

TRACEFS = Path("/sys/kernel/tracing")
# Every BPF program kvmhole compiles gets these: Debian 12's bcc compiles with clang 14,
# which warns on 6.12's headers (nocf_check without -fcf-protection, __seg_gs declared
# twice in current.h) through every command's stderr; the programs are unaffected.
CLANG_QUIET = ["-Wno-macro-redefined", "-Wno-ignored-attributes",
               "-Wno-duplicate-decl-specifier"]
HEADER_CACHE = cache.ROOT
HEADER_SOURCES = release.SOURCES


def require_root() -> None:
    if os.geteuid() != 0:
        raise ProbeUnavailable("loading BPF programs needs root (CAP_BPF and CAP_PERFMON): "
                               "run kvmhole as root, e.g. with sudo")


def _tracefs_ready() -> bool:
    # the event formats themselves, not /proc/mounts: a mount can be hidden by another
    return (TRACEFS / "events" / "kvm").is_dir()


def ensure_tracefs() -> Path:
    """Mount tracefs if it is not (a fresh machine has none): bcc reads formats from it."""
    if _tracefs_ready():
        return TRACEFS
    done = subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)],
                          capture_output=True, text=True)
    if done.returncode != 0 or not _tracefs_ready():
        why = (done.stderr.strip().splitlines() or ["no kvm events in it: is kvm loaded?"])[0]
        raise ProbeUnavailable(f"tracefs is not mounted at {TRACEFS} and mounting it failed "
                               f"({why}): mount -t tracefs nodev {TRACEFS} as root")
    return TRACEFS


def _default_pair() -> tuple[Path, Path] | None:
    """Debian's default release's (-common, -<arch>) header directories, if installed:
    the same release the module build and the SVM host use (kernel/release.py)."""
    try:
        chosen = release.resolve()
    except KvmholeError:
        return None
    if chosen.common_dir.is_dir() and chosen.headers_dir.is_dir():
        return chosen.common_dir, chosen.headers_dir
    return None


def _is_complete(tree: Path) -> bool:
    """bcc compiles against a tree that has both halves: kconfig.h (Debian's -common) and
    the generated headers (Debian's -<arch>)."""
    return ((tree / "include" / "linux" / "kconfig.h").is_file()
            and (tree / "include" / "generated").is_dir())


def _running_kernel_pair() -> tuple[Path, Path] | None:
    """The running kernel's own headers as (source, build), when Debian split them:
    /lib/modules/$(uname -r)/build is the -<arch> half only, `source` the -common half."""
    modules = Path("/lib/modules") / platform.release()
    build, source = modules / "build", modules / "source"
    if (build / "include").is_dir() and (source / "include").is_dir():
        return source.resolve(), build.resolve()
    return None


def kernel_source() -> Path:
    """A kernel header tree bcc can compile against, building a merged one if needed.

    The running kernel's own headers win: /lib/modules/$(uname -r)/build when it is a
    whole tree, else a merge of its Debian `source` (-common) and `build` (-<arch>)
    halves. bcc would merge those itself only with BCC_KERNEL_SOURCE unset, and kvmhole
    sets it. Without own headers, Debian's default release: tracepoint programs take
    their argument layout from tracefs, so another kernel's headers are fine (a newer
    series' headers make this host's clang warn, so the newest is not the choice).
    """
    own = Path("/lib/modules") / platform.release() / "build"
    if _is_complete(own):
        return own
    pair = _running_kernel_pair() or _default_pair()
    if pair is None:
        raise ProbeUnavailable(
            f"no kernel headers for bcc: neither {own} nor Debian's default headers in "
            f"{HEADER_SOURCES}: apt-get install {release.DEFAULT_META} (any version works)")
    return _merged(*pair)


def _merged(common: Path, flavour: Path) -> Path:
    """One tree of Debian's two header halves: a symlink farm cached in HEADER_CACHE."""
    merged = HEADER_CACHE / f"headers-{flavour.name.removeprefix('linux-headers-')}"
    if _is_complete(merged):
        return merged
    try:
        HEADER_CACHE.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=HEADER_CACHE, prefix=".headers-"))
        tree = tmp / "tree"
        steps = (["cp", "-as", str(common), str(tree)],
                 ["cp", "-as", "--remove-destination", f"{flavour}/.", f"{tree}/"])
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode != 0:
                raise ProbeUnavailable(f"merging kernel headers into {merged} failed: "
                                       f"{done.stderr.strip()}")
        try:
            tree.rename(merged)  # atomic: a concurrent monitor sees all or nothing
        except OSError:
            if not _is_complete(merged):
                raise
        shutil.rmtree(tmp, ignore_errors=True)
    except OSError as error:
        raise ProbeUnavailable(f"cannot build the merged kernel header tree in {HEADER_CACHE}: "
                               f"{error.strerror}: run as root") from None
    return merged


def prepare() -> None:
    """Everything bcc needs before BPF(...) is called."""
    require_root()
    ensure_tracefs()
    os.environ["BCC_KERNEL_SOURCE"] = str(kernel_source())
