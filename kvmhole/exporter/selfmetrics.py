"""The exporter's own health: how long its BPF polls and its scrapes take, and how
many guests it serves. Polls run on the poller's clock and scrapes on Prometheus',
so both are summaries (count and sum): rate(sum) / rate(count) is the mean."""

import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric, SummaryMetricFamily

from kvmhole.probes.snapshot import Snapshot


class SelfMetrics:
    def __init__(self):
        self._lock = threading.Lock()
        self._polls = [0, 0.0]  # count, seconds
        self._scrapes = [0, 0.0]
        # Served as of the latest poll: every render of one snapshot (text, OpenMetrics,
        # gzipped) must hold the same numbers.
        self._scrapes_at_poll = [0, 0.0]

    def _observe(self, totals: list, seconds: float) -> None:
        with self._lock:
            totals[0] += 1
            totals[1] += seconds

    def timed(self, source: Callable[[], Snapshot]) -> Callable[[], Snapshot]:
        """`source` with every call, failed or not, counted as a poll."""
        def poll() -> Snapshot:
            start = time.perf_counter()
            try:
                return source()
            finally:
                self._observe(self._polls, time.perf_counter() - start)
                with self._lock:
                    self._scrapes_at_poll = list(self._scrapes)
        return poll

    def scraped(self, seconds: float) -> None:
        self._observe(self._scrapes, seconds)

    def families(self, snapshot: Snapshot) -> Iterator[Metric]:
        with self._lock:
            polls, scrapes = list(self._polls), list(self._scrapes_at_poll)
        yield SummaryMetricFamily("kvmhole_exporter_poll_duration_seconds",
                                  "Time taken to read the BPF maps into a snapshot.",
                                  count_value=polls[0], sum_value=polls[1])
        yield SummaryMetricFamily("kvmhole_exporter_scrape_duration_seconds",
                                  "Time taken to render /metrics (once per new snapshot; "
                                  "scrapes in between serve those bytes), up to the last poll.",
                                  count_value=scrapes[0], sum_value=scrapes[1])
        yield GaugeMetricFamily("kvmhole_exporter_guests", "Guests served in this scrape.",
                                value=len(snapshot.guests))
