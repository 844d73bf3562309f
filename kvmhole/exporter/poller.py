"""The background thread that asks the snapshot source for a new snapshot every interval."""

import sys
import threading
from collections.abc import Callable

from kvmhole.exporter.store import LatestSnapshot
from kvmhole.probes.snapshot import Snapshot


class Poller:
    """Calls `source()` every `interval` seconds and publishes the result in `store`.

    A failing poll does not stop the exporter: the probe is reported down
    (kvmhole_probe_up 0) with the last good counts, and polling goes on, so a
    transient failure heals itself and a lasting one is visible in Prometheus.
    """

    def __init__(self, source: Callable[[], Snapshot], store: LatestSnapshot, interval: float):
        self.source, self.store, self.interval = source, store, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kvmhole-poller", daemon=True)
        self._last_error = ""

    def __enter__(self):
        # The first snapshot is taken here, so a source that cannot poll at all
        # fails the command instead of serving an empty page.
        self.store.update(self.source())
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.store.update(self.source())
                self._last_error = ""
            except Exception as error:  # any failure of the source means "probe down"
                message = f"polling the probes failed: {error}"
                if message != self._last_error:  # say it once, not every interval
                    print(f"kvmhole: warning: {message}", file=sys.stderr, flush=True)
                self._last_error = message
                self.store.probe_failed(message)
