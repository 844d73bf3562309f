"""kernel/pci-hole/ added to and built by DKMS for one kernel release, in a private DKMS
tree (--dkmstree/--sourcetree: nothing under /var/lib/dkms or /usr/src is touched), for
the SVM host to `dkms install` and `dkms remove` there.

`dkms build` is the real one (about as long as `kvmhole kernel build`), so a built tree
is kept under a hash of everything it depends on, as kvmhole's own build cache does:
the DKMS source tree (but its README), the kernel source, the headers, the compiler and
dkms itself.
"""

import fcntl
import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kvmhole.kernel import build, debian
from kvmhole.kernel.release import Release

TREE = build.SCRIPT.parent  # kernel/pci-hole: dkms.conf, build-modules.sh, patches/
CACHE = build.CACHE.parent / "dkms"


def conf(name: str) -> str:
    """A variable of dkms.conf, e.g. PACKAGE_VERSION."""
    for line in (TREE / "dkms.conf").read_text().splitlines():
        key, _, value = line.partition("=")
        if key == name:
            return value.strip('"')
    raise KeyError(name)


@dataclass(frozen=True)
class DkmsTree:
    root: Path

    @property
    def module(self) -> str:
        return f"{conf('PACKAGE_NAME')}/{conf('PACKAGE_VERSION')}"

    @property
    def options(self) -> list[str]:
        return ["--dkmstree", str(self.root / "dkms"), "--sourcetree", str(self.root / "src")]

    @property
    def env(self) -> dict[str, str]:
        """DKMS signs what it builds; the key it makes stays in the tree too."""
        return {"mok_signing_key": str(self.root / "mok.key"),
                "mok_certificate": str(self.root / "mok.pub")}


def _key(kernel: Release) -> str:
    digest = hashlib.sha256()
    facts = [build.source_identity(kernel.source_tarball),
             debian.installed_version(kernel.headers_package),
             debian.installed_version("dkms"),
             subprocess.run([kernel.compiler(), "--version"], capture_output=True,
                            text=True).stdout]
    digest.update(json.dumps(facts, sort_keys=True).encode())
    for path in sorted(p for p in TREE.rglob("*") if p.is_file() and p.suffix != ".md"):
        digest.update(str(path.relative_to(TREE)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def built(kernel: Release) -> DkmsTree:
    """`dkms add` and `dkms build -k <release>` into a private tree, once per content."""
    tree = DkmsTree(CACHE / f"{kernel.abi}-{_key(kernel)}")
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(f"{tree.root}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (tree.root / "built").exists():
            return tree
        # DKMS's trees hold absolute symlinks: build in place, mark it done last.
        shutil.rmtree(tree.root, ignore_errors=True)
        for d in ("dkms", "src"):
            (tree.root / d).mkdir(parents=True)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **tree.env}
        for step in (["add", str(TREE)], ["build", tree.module, "-k", kernel.abi]):
            done = subprocess.run(["dkms", *step, *tree.options], capture_output=True,
                                  text=True, env=env)
            if done.returncode != 0:
                log = next(tree.root.rglob("make.log"), None)
                raise AssertionError(f"dkms {step[0]} failed: {done.stdout}{done.stderr}"
                                     + (log.read_text()[-3000:] if log else ""))
        (tree.root / "built").write_text(kernel.abi + "\n")
        return tree
