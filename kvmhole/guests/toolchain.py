"""Building a guest from C and assembly with gcc and objcopy, cached by what it is built
from: kvmhole's own guests (guests/__init__.py) and the multiboot scanner for QEMU."""

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from kvmhole.errors import KvmholeError


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(os.environ.get("KVMHOLE_CACHE", Path(base) / "kvmhole"))


def flat_binary(what: str, target: str, src: Path, cflags: list[str],
                inputs: list[str]) -> Path:
    """The flat binary gcc CFLAGS links from INPUTS (sources in src, and options that
    only name them), built now unless the cache has one from the same src files and
    flags; `target` is its path in the cache, `what` names it in errors."""
    digest = hashlib.sha256(" ".join(cflags).encode())
    for path in sorted(src.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    folder, name = Path(target).parent, Path(target).name
    path = cache_dir() / folder / digest.hexdigest()[:16] / name
    if not path.exists():
        _build(what, [*cflags, *inputs], path)
    return path


def _build(what: str, gcc_args: list[str], target: Path) -> None:
    for tool in ("gcc", "objcopy"):
        if shutil.which(tool) is None:
            raise KvmholeError(f"building {what} needs {tool}: apt-get install gcc binutils")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        elf, flat = Path(tmp) / "guest.elf", Path(tmp) / "guest.bin"
        for step in (["gcc", *gcc_args, "-o", str(elf)],
                     ["objcopy", "-O", "binary", str(elf), str(flat)]):
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode != 0:
                raise KvmholeError(f"building {what} failed: {done.stderr.strip()[-2000:]}")
        os.replace(flat, target)  # atomic: a concurrent build never sees half a file
