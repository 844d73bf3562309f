"""The registry: each running kvmhole VMM publishes who it is, so monitors can name
its guest and classify its accesses. One JSON file per VMM process, written
atomically and removed when the VMM exits; files of dead processes are ignored.
"""

import json
import os
import tempfile
import time
from pathlib import Path

from kvmhole.errors import ConfigError

DEFAULT_DIR = "/run/kvmhole"


def registry_dir() -> Path:
    return Path(os.environ.get("KVMHOLE_RUN_DIR", DEFAULT_DIR))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Registration:
    """Context manager: the file exists exactly while the `with` block runs."""

    def __init__(self, entry: dict):
        self.entry = {**entry, "pid": os.getpid(), "started": time.time()}
        self.path = registry_dir() / f"{os.getpid()}.json"

    def __enter__(self):
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
        except OSError as error:
            raise ConfigError(
                f"cannot write the guest registry in {directory}: {error.strerror} "
                "(run as root or set KVMHOLE_RUN_DIR)"
            ) from None
        with os.fdopen(fd, "w") as out:
            json.dump(self.entry, out)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.path)
        return self

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)


def entries() -> dict[int, dict]:
    """pid -> entry for every live kvmhole VMM."""
    found = {}
    directory = registry_dir()
    if not directory.is_dir():
        return found
    for path in directory.glob("*.json"):
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced or removed right now
        if isinstance(entry, dict) and _alive(int(entry.get("pid", -1))):
            found[entry["pid"]] = entry
    return found
