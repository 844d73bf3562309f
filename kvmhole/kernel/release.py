"""Which Debian kernel: the one answer that the module build, the SVM host, the probes'
header tree and doctor share, taken from the installed header packages every time.

Debian moves its kernel ABI with every point release and security update (for example
6.1's went from -56 to -57 in one week), so no release is ever written down here: a
series ("6.1", "6.12") names what the user wants, and the installed packages say which
release of it this machine has. The default series is the one `linux-headers-amd64` (Debian's own
choice) depends on today.
"""

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kvmhole.errors import KvmholeError

# The series kvmhole supports: each has a patch series in kernel/pci-hole/patches/.
SERIES = ("6.1", "6.12")
FLAVOUR = "amd64"
DEFAULT_META = f"linux-headers-{FLAVOUR}"  # Debian's default kernel series, whatever it is
SOURCES = Path("/usr/src")
PATCH_ROOT = Path(__file__).resolve().parents[2] / "kernel" / "pci-hole" / "patches"
# Release packages: linux-headers-6.1.0-N-amd64, -6.12.M+debN-amd64; not -cloud-, -rt-.
_HEADERS = re.compile(rf"^linux-headers-((\d+\.\d+)\.\d+(?:-\d+|\+deb\d+))-{FLAVOUR}$")


@dataclass(frozen=True)
class Release:
    """One installed Debian kernel release (its headers are installed)."""
    series: str            # "6.1"
    abi: str               # `uname -r` of that kernel, of the form 6.1.0-N-amd64
    package_version: str   # the Debian version of its headers and image, e.g. "6.1.192-3"

    @property
    def headers_package(self) -> str:
        return f"linux-headers-{self.abi}"

    @property
    def headers_dir(self) -> Path:
        return SOURCES / self.headers_package

    @property
    def common_dir(self) -> Path:
        """Debian's architecture-independent half of the headers."""
        return SOURCES / f"linux-headers-{self.abi.removesuffix('-' + FLAVOUR)}-common"

    @property
    def image_package(self) -> str:
        return f"linux-image-{self.abi}"

    @property
    def source_package(self) -> str:
        return f"linux-source-{self.series}"

    @property
    def source_tarball(self) -> Path:
        return SOURCES / f"{self.source_package}.tar.xz"

    @property
    def patches(self) -> Path:
        return PATCH_ROOT / self.series

    def compiler(self) -> str:
        """The compiler Debian built this kernel with ("gcc-12"), from its .config:
        modules must be built with the same one."""
        config = (self.headers_dir / ".config").read_text()
        found = re.search(r'^CONFIG_CC_VERSION_TEXT="(\S+)', config, re.M)
        if not found:
            raise KvmholeError(f"{self.headers_dir}/.config names no compiler")
        return found.group(1)

    def to_dict(self) -> dict:
        return {"series": self.series, "abi": self.abi,
                "package_version": self.package_version}


def meta_package(series: str) -> str:
    """The package a user installs to get (and keep up to date) one series' headers."""
    return DEFAULT_META if series == _default_series_or_none() else \
        f"linux-headers-{series}-{FLAVOUR}"


def _dpkg(pattern: str, fields: str) -> list[list[str]]:
    done = subprocess.run(["dpkg-query", "-W", "-f", fields + r"\n", pattern],
                          capture_output=True, text=True)
    return [line.split("\t") for line in done.stdout.splitlines() if line]


def installed() -> list[Release]:
    """Every installed header release of the flavour, newest last within a series."""
    found = []
    for package, version, status in _dpkg("linux-headers-*",
                                          r"${Package}\t${Version}\t${db:Status-Status}"):
        match = _HEADERS.match(package)
        if match and status == "installed":
            found.append(Release(match.group(2), match.group(1) + f"-{FLAVOUR}", version))
    return sorted(found, key=lambda r: _version_key(r.package_version))


def _version_key(version: str) -> tuple:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.+~-]", version))


def _meta_choice() -> dict[str, str]:
    """{series: abi} that each installed headers metapackage depends on."""
    chosen = {}
    for _, status, depends in _dpkg(f"linux-headers-*{FLAVOUR}",
                                    r"${Package}\t${db:Status-Status}\t${Depends}"):
        for dep in depends.split(","):
            match = _HEADERS.match(dep.split("(")[0].strip())
            if status == "installed" and match:
                chosen[match.group(2)] = match.group(1) + f"-{FLAVOUR}"
    return chosen


def _default_series_or_none() -> str | None:
    rows = _dpkg(DEFAULT_META, r"${db:Status-Status}\t${Depends}")
    if not rows or rows[0][0] != "installed":
        return None
    match = _HEADERS.match(rows[0][1].split(",")[0].split("(")[0].strip())
    return match.group(2) if match else None


def default_series() -> str:
    series = _default_series_or_none()
    if series is None:
        raise KvmholeError(f"{DEFAULT_META} is not installed, so Debian's default kernel "
                           f"series is unknown: apt-get install {DEFAULT_META}")
    return series


def resolve(series: str | None = None) -> Release:
    """The installed release of `series` (default: Debian's default series): the one its
    metapackage depends on, else the newest installed. One clear error if none is."""
    series = series or default_series()
    if series not in SERIES:
        raise KvmholeError(f"kvmhole supports the kernel series {', '.join(SERIES)}, "
                           f"not {series}")
    releases = [r for r in installed() if r.series == series]
    if not releases:
        raise KvmholeError(f"no {FLAVOUR} headers of Linux {series} are installed: "
                           f"apt-get install {meta_package(series)}")
    wanted = _meta_choice().get(series)
    chosen = next((r for r in releases if r.abi == wanted), releases[-1])
    if not (chosen.headers_dir / "Makefile").is_file():
        raise KvmholeError(f"{chosen.headers_package} is installed but {chosen.headers_dir} "
                           f"is missing: apt-get install --reinstall {chosen.headers_package}")
    return chosen
