"""Which Debian kernel (kvmhole/kernel/release.py): resolved the way a user's machine has
it, and the chain that must agree on it (headers, source, image, build, SVM boot).

Debian moves the ABI under every release; these tests read dpkg's own records as the
ground truth, so a machine whose packages moved on is checked against what it has, and
a release written into the code anywhere fails here before it fails a user."""

import re
import subprocess
from pathlib import Path

import pytest

from kvmhole.errors import KvmholeError
from kvmhole.kernel import release

pytestmark = pytest.mark.pure
PROJECT = Path(__file__).parents[1]
# A Debian ABI as it appears in package and directory names: 6.1.0-57, 6.12.118+deb12.
ABI = re.compile(r"\b\d+\.\d+\.\d+(?:-\d+|\+deb\d+)-(?:amd64|common)\b|\b\d+\.\d+\.\d+-\d+\b")
# An example may name a release as an example: only where it says so on the line.
EXAMPLE = re.compile(r"example|e\.g\.", re.I)


def _dpkg_field(package: str, field: str) -> str:
    return subprocess.run(["dpkg-query", "-W", "-f", f"${{{field}}}", package],
                          capture_output=True, text=True, check=True).stdout


def test_the_default_release_is_what_linux_headers_amd64_depends_on():
    depends = _dpkg_field(release.DEFAULT_META, "Depends")
    wanted = re.match(r"linux-headers-(\S+)", depends).group(1)
    chosen = release.resolve()
    assert chosen.abi == wanted
    assert chosen.package_version == _dpkg_field(chosen.headers_package, "Version")
    assert chosen.series == release.default_series()
    assert (chosen.headers_dir / "Makefile").is_file() and chosen.common_dir.is_dir()


@pytest.mark.parametrize("series", release.SERIES)
def test_each_series_has_its_headers_source_and_patches_in_step(series):
    """The drift check: `make test` installs every supported series; headers and source
    must be the same Debian version (the build refuses anything else), and kvmhole must
    have a patch series for it."""
    chosen = release.resolve(series)
    assert chosen.abi.startswith(series + ".")
    source_version = _dpkg_field(chosen.source_package, "Version")
    assert source_version == chosen.package_version, (
        f"{chosen.source_package} {source_version} and {chosen.headers_package} "
        f"{chosen.package_version} differ: the archive moved one without the other")
    assert chosen.source_tarball.is_file()
    assert sorted(chosen.patches.glob("*.patch")), f"no patches for {series}"


def test_the_compiler_is_the_one_the_kernel_was_built_with():
    chosen = release.resolve()
    config = (chosen.headers_dir / ".config").read_text()
    assert f'CONFIG_CC_VERSION_TEXT="{chosen.compiler()} ' in config


def test_an_unsupported_series_is_one_clear_error():
    with pytest.raises(KvmholeError, match=r"supports the kernel series 6\.1, 6\.12, not 5\.10"):
        release.resolve("5.10")


@pytest.mark.parametrize("name, series", [
    ("linux-headers-6.1.0-57-amd64", "6.1"),          # examples of each series' names
    ("linux-headers-6.12.118+deb12-amd64", "6.12"),
])
def test_release_packages_are_recognised(name, series):
    match = release._HEADERS.match(name)
    assert match and match.group(2) == series


@pytest.mark.parametrize("name", [
    "linux-headers-amd64", "linux-headers-6.12-amd64",          # metapackages
    "linux-headers-6.1.0-57-cloud-amd64", "linux-headers-6.12.118+deb12-rt-amd64",
    "linux-headers-6.1.0-57-common",
])
def test_other_header_packages_are_not_releases(name):
    assert release._HEADERS.match(name) is None


def _tracked(*patterns: str) -> list[Path]:
    done = subprocess.run(["git", "ls-files", *patterns], cwd=PROJECT, capture_output=True,
                          text=True, check=True)
    return [PROJECT / line for line in done.stdout.splitlines()]


def test_no_release_is_written_into_code_help_or_docs():
    """Releases come from what is installed; a pinned one breaks the day Debian moves.
    Patch files (their index lines) and recorded bench reports are data, not choices."""
    offenders = []
    for path in _tracked("*.py", "*.sh", "*.c", "*.md", "Makefile", "*.service", "*.toml"):
        if path == Path(__file__) or path.name == "BENCHMARKS.md" or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if ABI.search(line) and not EXAMPLE.search(line):
                offenders.append(f"{path.relative_to(PROJECT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
