"""The SVM host's initramfs: busybox, init.sh and the modules that reach the 9p root.

Written as a newc cpio archive directly (the kernel unpacks it uncompressed), so
building one needs neither cpio nor root and takes milliseconds.
"""

import stat
from pathlib import Path

from kvmhole.svmhost.kernel import BUSYBOX, KernelImage

INIT = Path(__file__).with_name("init.sh")
# What mounting the host's root over virtio-9p under an overlay needs, dependencies first.
# A module built into the image (6.12 builds virtio in) is not loaded.
MODULES = ("virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
           "virtio_pci", "netfs", "fscache", "9pnet", "9pnet_virtio", "9p", "overlay")
# Since 6.12 fscache is part of netfs: no module of its own, and nothing to load.
MERGED_AWAY = {"fscache": "netfs"}


def _entry(name: str, mode: int, data: bytes = b"", ino: int = 0) -> bytes:
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0)
    header = b"070701" + b"".join(b"%08X" % f for f in fields)
    padded = header + name.encode() + b"\0"
    padded += b"\0" * (-len(padded) % 4)
    return padded + data + b"\0" * (-len(data) % 4)


def archive(files: dict[str, tuple[int, bytes]]) -> bytes:
    """A newc archive of {path: (mode, data)}; parent directories are added first."""
    dirs = sorted({str(p) for name in files for p in Path(name).parents if str(p) != "."})
    out = [_entry(d, stat.S_IFDIR | 0o755, ino=i + 1) for i, d in enumerate(dirs)]
    out += [_entry(name, mode, data, ino=len(dirs) + i + 1)
            for i, (name, (mode, data)) in enumerate(sorted(files.items()))]
    out.append(_entry("TRAILER!!!", 0))
    return b"".join(out)


def _loadable(image: KernelImage, name: str) -> bool:
    if image.is_builtin(name):
        return False
    merged_into = MERGED_AWAY.get(name)
    # only where it really is gone: a 6.1 image without fscache.ko is a broken image
    return not (merged_into and not image.has_module(name) and image.has_module(merged_into))


def build(image: KernelImage, dest: Path) -> Path:
    """Write the initramfs for `image` to dest."""
    executable = stat.S_IFREG | 0o755
    modules = [name for name in MODULES if _loadable(image, name)]
    files = {
        "init": (executable, INIT.read_bytes()),
        "bin/busybox": (executable, BUSYBOX.read_bytes()),
        "modules/order": (stat.S_IFREG | 0o644, "\n".join(modules).encode() + b"\n"),
    }
    for name in modules:
        files[f"modules/{name}.ko"] = (stat.S_IFREG | 0o644, image.module(name))
    for directory in ("proc", "sys", "dev"):
        files[f"{directory}/.keep"] = (stat.S_IFREG | 0o644, b"")
    dest.write_bytes(archive(files))
    return dest
