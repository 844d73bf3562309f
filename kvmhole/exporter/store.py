"""The latest snapshot, shared by the poller thread (writer) and scrapes (readers)."""

import dataclasses
import threading
import time

from kvmhole.probes.snapshot import GuestStats, Snapshot

# How long an exited guest's final counts are served: more than one scrape interval
# of any sane Prometheus, so every scraper (an HA pair scrapes independently) sees them.
RETAIN_S = 120.0


class LatestSnapshot:
    """Holds the newest snapshot, and each exited guest's final stats for RETAIN_S.

    Polls and scrapes run on different clocks: a guest that exits between two
    scrapes appears (alive=False) in one poll and is gone from the next, and its
    final counts would never reach Prometheus. So a guest that leaves the source,
    or is reported dead, is served with its last counts for a fixed time after
    that, whoever scrapes and however often; its series then go stale. Expiry
    runs on every poll, so memory stays bounded with no scraper at all.

    Each guest also gets its `guest` label once, when first seen: its name, or
    name/pid if another guest (live or retained) already holds that name in the
    same VMM kind. It keeps it for life, so series never change labels.
    """

    def __init__(self, retain_s: float = RETAIN_S, clock=time.monotonic):
        self.retain_s, self.clock = retain_s, clock
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._exited: dict[int, tuple[float, GuestStats]] = {}  # pid -> (left at, final)
        self._labels: dict[int, tuple[str, str, str]] = {}  # pid -> (name, vmm, label)
        self.version = 0  # changes whenever what a scrape would serve changes

    def update(self, snapshot: Snapshot) -> None:
        now = self.clock()
        with self._lock:
            reported = {g.pid: g for g in snapshot.guests}
            if self._snapshot is not None:
                for guest in self._snapshot.guests:
                    if guest.pid not in reported and guest.alive:
                        self._exited[guest.pid] = (now, dataclasses.replace(guest, alive=False))
            for guest in snapshot.guests:
                if not guest.alive:
                    self._exited[guest.pid] = (self._exited.get(guest.pid, (now,))[0], guest)
                elif guest.pid in self._exited:  # a live guest on a reused pid: another one
                    del self._exited[guest.pid]
                    self._labels.pop(guest.pid, None)
            for pid, (left, _) in list(self._exited.items()):
                if now - left > self.retain_s:
                    del self._exited[pid]
            kept = {g.pid for g in snapshot.guests if g.alive} | set(self._exited)
            self._labels = {pid: label for pid, label in self._labels.items() if pid in kept}
            for guest in snapshot.guests:
                self._label(guest)
            self._snapshot = snapshot
            self.version += 1

    def _label(self, guest: GuestStats) -> None:
        known = self._labels.get(guest.pid)
        if known is not None and known[:2] == (guest.name, guest.vmm):
            return
        taken = {(vmm, label) for _, vmm, label in self._labels.values()}
        label = guest.name if (guest.vmm, guest.name) not in taken else \
            f"{guest.name}/{guest.pid}"
        self._labels[guest.pid] = (guest.name, guest.vmm, label)

    def probe_failed(self, message: str) -> None:
        """The source raised: keep the last counts but report the probe as down."""
        with self._lock:
            if self._snapshot is not None:
                probe = dataclasses.replace(self._snapshot.probe, up=False, message=message)
                self._snapshot = dataclasses.replace(self._snapshot, probe=probe)
                self.version += 1

    def peek(self) -> Snapshot | None:
        """The newest snapshot as the source gave it."""
        with self._lock:
            return self._snapshot

    def for_scrape(self) -> Snapshot | None:
        """The snapshot a scrape serves: live guests and retained exited ones, each named
        by its stable label."""
        with self._lock:
            if self._snapshot is None:
                return None
            guests = [g for g in self._snapshot.guests if g.alive and g.pid not in self._exited]
            guests += [g for _, g in self._exited.values()]
            guests = [dataclasses.replace(g, name=self._labels[g.pid][2]) if g.pid in
                      self._labels else g for g in guests]
            return dataclasses.replace(self._snapshot, guests=sorted(guests,
                                                                     key=lambda g: g.pid))
