"""Where the TUI's snapshots come from: any callable returning a Snapshot.

The live source is `Monitor.poll`; tests and benchmarks pass synthetic ones.
The view never reads BPF itself, so a recorded or made-up session looks the same.
"""

import threading
import time
from collections.abc import Callable

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
