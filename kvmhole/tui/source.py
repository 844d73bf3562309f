"""Where the TUI's snapshots come from: any callable returning a Snapshot.

The live source is `Monitor.poll`; tests and benchmarks pass synthetic ones.
The view never reads BPF itself, so a recorded or made-up session looks the same.
"""

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kvmhole.errors import ConfigError
from kvmhole.probes.snapshot import Snapshot

SnapshotSource = Callable[[], Snapshot]


def poll_every(source: SnapshotSource, interval: float, deliver: Callable[[Snapshot], object],
               stop: threading.Event) -> None:
    """Call source now and then every `interval` s, hand each snapshot to deliver, until stop.

    Polls stay on a fixed grid, so the time a poll takes does not stretch the period;
    a poll slower than the interval delays the next one instead of queueing a burst.
    """
    due = time.monotonic()
    while not stop.is_set():
        deliver(source())
        due = max(due + interval, time.monotonic())
        stop.wait(max(0.0, due - time.monotonic()))


def read_recording(path: Path) -> list[Snapshot]:
    """The snapshots of a `kvmhole trace --snapshots` recording, oldest first. A last
    line cut short (the recorder was stopped mid-write) is skipped with a warning."""
    try:
        if not path.is_file():
            raise ConfigError(f"the recording {path} is not a regular file")
        lines = path.read_bytes().split(b"\n")
    except OSError as error:
        raise ConfigError(f"cannot read the recording {path}: {error.strerror}") from None
    cut = lines[-1] != b""  # no newline after the last line
    snapshots = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            snapshots.append(Snapshot.from_json(line.decode()))
        except (ValueError, KeyError, TypeError) as error:  # UnicodeDecodeError included
            if cut and number == len(lines):
                print(f"kvmhole: warning: {path}:{number}: skipped, the recording ends in "
                      "the middle of this line", file=sys.stderr, flush=True)
                continue
            why = "not UTF-8" if isinstance(error, UnicodeDecodeError) else error
            raise ConfigError(f"{path}:{number} is not a kvmhole snapshot ({why}); record "
                              "one with `kvmhole trace --snapshots > FILE`") from None
    if not snapshots:
        raise ConfigError(f"{path} holds no snapshots; record some with "
                          "`kvmhole trace --snapshots > FILE`")
    return snapshots


def replay(snapshots: list[Snapshot]) -> SnapshotSource:
    """A source that gives the recorded snapshots in order, then keeps the last one."""
    remaining = iter(snapshots)
    last = snapshots[-1]

    def next_snapshot() -> Snapshot:
        return next(remaining, last)

    return next_snapshot
