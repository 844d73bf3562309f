"""/metrics rendered once per poll, not once per scrape.

The snapshot only changes when the poller stores a new one, so every scrape in
between would render the same bytes again (12.6 ms for 64 guests). The page here
renders the exposition the first time a scrape asks for it after a change, per
format (Prometheus text or OpenMetrics, gzipped or not, as prometheus_client
chooses them from the request), and serves those bytes until the next change.
"""

import gzip
import threading

from prometheus_client.exposition import choose_encoder, gzip_accepted

from kvmhole.exporter.http import Request, Response
from kvmhole.exporter.store import LatestSnapshot


class CachedMetrics:
    def __init__(self, registry, store: LatestSnapshot):
        self.registry, self.store = registry, store
        self._lock = threading.Lock()
        self._rendered: dict[tuple[str, bool], bytes] = {}  # (content type, gzip) -> body
        self._version = -1

    def __call__(self, request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept"))
        zipped = gzip_accepted(request.headers.get("accept-encoding"))
        with self._lock:
            if self.store.version != self._version:
                self._rendered.clear()
                self._version = self.store.version
            key = (content_type, zipped)
            if key not in self._rendered:
                body = encoder(self.registry)
                self._rendered[key] = gzip.compress(body) if zipped else body
            body = self._rendered[key]
        headers = [("Content-Type", content_type)]
        if zipped:
            headers.append(("Content-Encoding", "gzip"))
        return Response(200, body, headers)
