"""The latest snapshot, shared by the poller thread (writer) and scrapes (readers)."""

import dataclasses
import threading

from kvmhole.probes.snapshot import GuestStats, Snapshot


class LatestSnapshot:
    """Holds the newest snapshot and keeps each exited guest for exactly one scrape.

    Polls and scrapes run on different clocks: a guest that exits between two
    scrapes may appear (alive=False) in one poll and be gone from the next, and
    its final counts would never reach Prometheus. So a guest that leaves the
    source, or is reported dead, is served by the next scrape with its last
    counts, then dropped; its series go stale in Prometheus after that.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._exited: dict[int, GuestStats] = {}  # pid -> final stats, not yet scraped
        self._gone: set[int] = set()  # exited pids already served once

    def update(self, snapshot: Snapshot) -> None:
        with self._lock:
            present = {g.pid for g in snapshot.guests}
            if self._snapshot is not None:
                for guest in self._snapshot.guests:
                    if guest.pid not in present and guest.pid not in self._gone:
                        self._exited[guest.pid] = dataclasses.replace(guest, alive=False)
            # A pid the source no longer reports cannot come back as the same guest.
            self._gone &= present
            self._snapshot = snapshot

    def probe_failed(self, message: str) -> None:
        """The source raised: keep the last counts but report the probe as down."""
        with self._lock:
            if self._snapshot is not None:
                probe = dataclasses.replace(self._snapshot.probe, up=False, message=message)
                self._snapshot = dataclasses.replace(self._snapshot, probe=probe)

    def peek(self) -> Snapshot | None:
        """The newest snapshot as the source gave it, without counting as a scrape."""
        with self._lock:
            return self._snapshot

    def for_scrape(self) -> Snapshot | None:
        """The snapshot one scrape serves; exited guests in it are then forgotten."""
        with self._lock:
            if self._snapshot is None:
                return None
            guests = [g for g in self._snapshot.guests if g.pid not in self._gone]
            listed = {g.pid for g in guests}
            guests += [g for pid, g in self._exited.items() if pid not in listed]
            for guest in guests:
                if not guest.alive:
                    self._gone.add(guest.pid)
            self._exited.clear()
            return dataclasses.replace(self._snapshot, guests=guests)
