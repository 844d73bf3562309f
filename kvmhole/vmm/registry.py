"""The registry: each kvmhole VMM publishes who it is, so monitors can name its guest
and classify its accesses. One JSON file per VMM process, `<pid>.json`, written
atomically before the guest's first instruction.

A process is its pid *and* its start time (clock ticks after boot, from
/proc/PID/stat): once a VMM is gone its pid may belong to any other process, and
an entry must never name that one. When the VMM exits it rewrites its entry with
the time it exited and its final KVM stats, and leaves it there for GRACE_S: a
guest shorter than a monitor's poll is still named, with its stats, when the
monitor first reports it. Monitors and starting VMMs remove entries whose process
is gone and that are older than GRACE_S, those of VMMs killed outright included.

The directory may hold anything (it is a well-known path), so entries are read
without following links or blocking, bounded in size and nesting, checked field by
field, and taken only from root or from the user the VMM process they name runs as:
whoever can write the directory must not rename another user's guest or change how
its reads are classified. Every way a file can be wrong is one BadEntry, whose
message names the kind of fault and nothing of the file, so warnings can be summed
up per kind.
"""

import contextlib
import json
import os
import stat
import tempfile
import time
from pathlib import Path

from kvmhole.errors import ConfigError
from kvmhole.text import MAX_NAME
from kvmhole.vmm.memmap import MAX_HOLE_RUNS

DEFAULT_DIR = "/run/kvmhole"
GRACE_S = 60.0  # how long an exited VMM's entry stays: longer than any monitor's poll
MAX_ENTRY_BYTES = 64 << 10
MAX_PID = 1 << 22  # the kernel's PID_MAX_LIMIT


class BadEntry(ValueError):
    """A file in the registry directory that is not a valid entry (the message says why)."""


def registry_dir() -> Path:
    path = Path(os.environ.get("KVMHOLE_RUN_DIR") or DEFAULT_DIR)
    if not path.is_absolute():  # a relative one would follow each process's cwd
        raise ConfigError(f"KVMHOLE_RUN_DIR must be an absolute path, not {str(path)!r}")
    return path


def _stat(pid: int | str) -> list[bytes] | None:
    """/proc/PID/stat from its third field (the state) on; None when there is no such
    process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:  # not Path: called per guest per poll
            stat_line = stat.read()
    except OSError:
        return None
    return stat_line[stat_line.rindex(b")") + 2:].split()  # the name may hold spaces


def entry_path(pid: int) -> Path:
    """Where the VMM with this (host) pid publishes its entry."""
    return registry_dir() / f"{pid}.json"


def process_state(pid: int | str) -> str | None:
    """The state letter of process `pid` (R, S, T: stopped, Z: zombie...); None if gone."""
    fields = _stat(pid)
    return None if fields is None else fields[0].decode()


def process_start(pid: int | str) -> int | None:
    """When process `pid` started (ticks after boot); None when it is gone or a zombie:
    the one test of liveness every part of kvmhole uses."""
    fields = _stat(pid)
    return None if fields is None or fields[0] in (b"Z", b"X") else int(fields[19])


def host_pid() -> int:
    """This process's pid as the host sees it. In a pid namespace os.getpid() is the
    namespace's number; /proc/self/status lists the pid at each level, the /proc
    mount's own first (the host's when the host's /proc is visible)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("NSpid:"):
                return int(line.split()[1])
    return os.getpid()


def running(entry: dict) -> bool:
    """The entry's VMM still runs: not marked exited, and its pid is the same process."""
    return "exited" not in entry and process_start(entry["pid"]) == entry["start"]


class Registration:
    """Context manager: the entry is live exactly while the `with` block runs, then marked
    exited with whatever `final` holds (the VMM's last KVM stats)."""

    def __init__(self, entry: dict):
        pid = host_pid()
        self.entry = {**entry, "pid": pid, "start": process_start("self"),
                      "started": time.time()}
        self.final: dict = {}
        self.path = entry_path(pid)

    def __enter__(self):
        directory = self.path.parent
        try:
            if not directory.is_dir():
                directory.mkdir(parents=True, exist_ok=True)
                directory.chmod(0o755)  # readable by monitors whatever our umask
            clean()  # no monitor may be running: clean up after VMMs that were killed
            self._write(self.entry)
        except OSError as error:
            raise ConfigError(
                f"cannot write the guest registry in {directory}: {error.strerror} "
                "(run as root or set KVMHOLE_RUN_DIR)"
            ) from None
        return self

    def __exit__(self, *exc):
        try:
            self._write({**self.entry, **self.final, "exited": time.time()})
        except OSError:
            self.path.unlink(missing_ok=True)

    def _write(self, entry: dict) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "w") as out:
            json.dump(entry, out)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.path)


def read_entry(path: Path) -> dict | None:
    """The checked entry in `path`; None if it was removed meanwhile; BadEntry if invalid."""
    if not (path.stem.isascii() and path.stem.isdigit() and path.suffix == ".json"):
        raise BadEntry("not named PID.json")  # isdigit alone takes '²', which int() refuses
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
                     | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:  # ELOOP: a symbolic link
        raise BadEntry(f"cannot open it: {error.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BadEntry("not a regular file")
        data = os.read(fd, MAX_ENTRY_BYTES + 1)
    except OSError as error:  # EIO, or a file system that refuses reads
        raise BadEntry(f"cannot read it: {error.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_ENTRY_BYTES:
        raise BadEntry(f"larger than {MAX_ENTRY_BYTES} bytes")
    try:
        raw = json.loads(data)
    except ValueError:  # UnicodeDecodeError included
        raise BadEntry("not JSON") from None
    except RecursionError:  # [[[...]]]: a 60 KB file nests deeper than Python recurses
        raise BadEntry("JSON nested too deeply") from None
    entry = check_entry(raw, int(path.stem))
    _check_owner(info.st_uid, entry["pid"])
    return entry


def _check_owner(writer: int, pid: int) -> None:
    """Root's entries, and those of the user VMM `pid` runs as, are trusted; a process
    gone already names no running guest, so its entry is left to the start-time check."""
    try:
        owner = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return
    if writer not in (0, owner):
        raise BadEntry("written by a user who is neither root nor the owner of the VMM "
                       "process it names")


def _int(value, low: int, high: int, what: str) -> int:
    if type(value) is not int or not low <= value <= high:
        raise BadEntry(f"{what} is not an integer in [{low}, {high}]")
    return value


def _text(raw: dict, key: str, default: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or len(value) > MAX_NAME:
        raise BadEntry(f"{key} is not a string of at most {MAX_NAME} characters")
    return value


def check_entry(raw, pid: int) -> dict:
    """The fields monitors use, checked; BadEntry names the first that is wrong."""
    if not isinstance(raw, dict):
        raise BadEntry("not a JSON object")
    if _int(raw.get("pid"), 1, MAX_PID, "pid") != pid:
        raise BadEntry("its pid is not the one in its name")
    entry = {"pid": pid, "start": _int(raw.get("start"), 0, 2**63, "start"),
             "name": _text(raw, "name", "") or f"kvmhole-{pid}",
             "vmm": _text(raw, "vmm", "kvmhole"), "strategy": _text(raw, "strategy", "unknown")}
    holes = raw.get("holes", [])
    if not isinstance(holes, list) or len(holes) > MAX_HOLE_RUNS:
        raise BadEntry(f"holes is not a list of at most {MAX_HOLE_RUNS} ranges")
    entry["holes"] = []
    for pair in holes:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise BadEntry("a hole range is not [start, end]")
        start, end = (_int(a, 0, 2**64, "a hole address") for a in pair)
        if start >= end:
            raise BadEntry("a hole range ends before it starts")
        entry["holes"].append((start, end))
    ecam = raw.get("ecam")  # the window the holes are cut from: function addresses
    if ecam is not None:
        if not (isinstance(ecam, list) and len(ecam) == 2):
            raise BadEntry("ecam is not [start, end]")
        entry["ecam"] = tuple(_int(a, 0, 2**64, "an ECAM address") for a in ecam)
        if entry["ecam"][0] >= entry["ecam"][1]:
            raise BadEntry("the ECAM window ends before it starts")
    if "exited" in raw:
        if type(raw["exited"]) not in (int, float):
            raise BadEntry("exited is not a time")
        entry["exited"] = raw["exited"]
    stats = raw.get("kvm_stats")
    if stats is not None:
        if not isinstance(stats, dict):
            raise BadEntry("kvm_stats is not an object")
        entry["kvm_stats"] = {str(k): _int(v, 0, 2**64, "a KVM stat") for k, v in stats.items()}
    return entry


def scan(warn=None) -> dict[int, dict]:
    """pid -> entry for every valid entry, live or exited; removes the stale ones.
    warn(path, reason) hears of each file that is not a valid entry."""
    found: dict[int, dict] = {}
    directory = registry_dir()
    try:
        paths = list(directory.glob("*.json"))
    except OSError:
        return found
    for path in paths:
        try:
            entry = read_entry(path)
        except BadEntry as error:
            if warn is not None:
                warn(path, str(error))
            continue
        if entry is None:
            continue
        if not running(entry) and _age(path) > GRACE_S:
            with contextlib.suppress(OSError):  # another user's registry: theirs to clean
                path.unlink(missing_ok=True)
            continue
        found[entry["pid"]] = entry
    return found


def clean() -> None:
    """Remove the stale entries only: an entry younger than GRACE_S is kept whatever it
    says, so only old files are read (a fleet of VMMs starting at once reads few)."""
    for path in registry_dir().glob("*.json"):
        if _age(path) <= GRACE_S:
            continue
        try:
            entry = read_entry(path)
        except BadEntry:
            continue  # not ours to remove
        if entry is not None and not running(entry):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


def _age(path: Path) -> float:
    try:
        return time.time() - path.lstat().st_mtime
    except OSError:
        return 0.0


def entries(warn=None) -> dict[int, dict]:
    """pid -> entry for every running kvmhole VMM."""
    return {pid: entry for pid, entry in scan(warn).items() if running(entry)}
