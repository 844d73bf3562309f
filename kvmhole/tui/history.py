"""Per-guest rates over time, for the detail pane's sparklines and per-reason rates.

The snapshot carries only the rates of its last interval; the TUI keeps the last
few minutes itself. Points carry the snapshot's time, so a paused screen can show
the history as it was when it froze. A guest's history ends when it leaves the
snapshot.
"""

from collections import deque
from dataclasses import dataclass

from kvmhole.probes.snapshot import Snapshot
from kvmhole.tui.columns import COLUMNS

SERIES = tuple(c for c in COLUMNS if c.rate)  # the table's rate columns, plotted over time
POINTS = 120  # two minutes at the default 1 s interval; wider than any sparkline


@dataclass
class Point:
    ts: float
    rates: dict[str, float]  # a SERIES column's key -> per second
    reasons: dict[str, float]  # userspace exit reason -> per second


class History:
    def __init__(self, points: int = POINTS):
        self._points: dict[int, deque[Point]] = {}
        self._size = points

    def record(self, snapshot: Snapshot) -> None:
        present = {g.pid for g in snapshot.guests}
        for pid in set(self._points) - present:
            del self._points[pid]
        for g in snapshot.guests:
            point = Point(snapshot.ts, {c.key: c.rate(g.rates) for c in SERIES},
                          g.rates.by_reason)
            self._points.setdefault(g.pid, deque(maxlen=self._size)).append(point)

    def points(self, pid: int, until: float) -> list[Point]:
        """The guest's points up to and including time `until`, oldest first."""
        return [p for p in self._points.get(pid, ()) if p.ts <= until]
