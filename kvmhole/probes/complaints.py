"""Warnings about files in the guest registry, summed up per kind of fault.

The registry directory can hold thousands of files no VMM wrote; a line for each
would bury everything else on stderr. Faults are gathered while the directory is
read and said once per kind (the registry's BadEntry messages name the kind, not
the file): how many files, and one of them as an example.
"""

import sys
import threading
from collections import Counter
from pathlib import Path

from kvmhole.text import printable


class RegistryComplaints:
    def __init__(self):
        self._lock = threading.Lock()  # the registry watcher's thread adds too
        self._counts: Counter[str] = Counter()
        self._examples: dict[str, Path] = {}

    def add(self, path: Path, reason: str) -> None:
        with self._lock:
            self._counts[reason] += 1
            self._examples.setdefault(reason, path)

    def say(self) -> None:
        """One warning line per kind gathered since the last call."""
        with self._lock:
            gathered = [(reason, count, self._examples[reason])
                        for reason, count in self._counts.items()]
            self._counts.clear()
            self._examples.clear()
        for reason, count, example in gathered:
            files = f"{count} files" if count > 1 else "1 file"
            more = ", ..." if count > 1 else ""
            print(f"kvmhole: warning: ignoring {files} in the guest registry "
                  f"{printable(str(example.parent))}: {reason} ({printable(example.name)}"
                  f"{more})", file=sys.stderr, flush=True)
