"""/metrics rendered once per poll, not once per scrape.

The snapshot only changes when the poller stores a new one, so every scrape in
between would render the same bytes again (12.6 ms for 64 guests). The WSGI app
here renders the exposition the first time a scrape asks for it after a change,
per format (Prometheus text or OpenMetrics, gzipped or not, as prometheus_client
chooses them from the request), and serves those bytes until the next change.
"""

import gzip
import threading

from prometheus_client.exposition import choose_encoder, gzip_accepted

from kvmhole.exporter.store import LatestSnapshot


def cached_metrics_app(registry, store: LatestSnapshot):
    lock = threading.Lock()
    rendered: dict[tuple[str, bool], bytes] = {}  # (content type, gzip) -> body
    seen = {"version": -1}

    def app(environ, start_response):
        encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT"))
        zipped = gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING"))
        with lock:
            if store.version != seen["version"]:
                rendered.clear()
                seen["version"] = store.version
            key = (content_type, zipped)
            if key not in rendered:
                body = encoder(registry)
                rendered[key] = gzip.compress(body) if zipped else body
            body = rendered[key]
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if zipped:
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [body]

    return app
