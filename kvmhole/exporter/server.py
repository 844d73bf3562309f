"""Serve the exporter's pages from a LatestSnapshot on a listen address, with errors
meant for users: a landing page at /, the metrics at /metrics, 404 elsewhere, and
405 for methods other than GET and HEAD."""

import errno
import html
import socket
from contextlib import contextmanager
from http import HTTPStatus
from importlib.metadata import version

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import GaugeMetricFamily

from kvmhole.errors import ConfigError, KvmholeError
from kvmhole.exporter.cache import CachedMetrics
from kvmhole.exporter.collector import SnapshotCollector
from kvmhole.exporter.http import HttpServer, Request, Response, plain_response
from kvmhole.exporter.selfmetrics import SelfMetrics
from kvmhole.exporter.store import LatestSnapshot
from kvmhole.exporter.webconfig import WebConfig

# Outside 9100-9999 (Prometheus' exporter port registry, fully allocated) and its
# 10000+ overflow, and below the ephemeral port range.
DEFAULT_PORT = 17330
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"
METHODS = ("GET", "HEAD")
VERSION = version("kvmhole")

LANDING_PAGE = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>kvmhole exporter</title></head>
<body><h1>kvmhole exporter</h1>
<p>Per-guest config reads of absent PCI functions (hole reads), served in the kernel
or exited to userspace, and the exits they cost.</p>
<p><a href="metrics">Metrics</a></p>
<p>Version {html.escape(VERSION)}</p>
</body></html>
""".encode()


class BuildInfo:
    def collect(self):
        info = GaugeMetricFamily("kvmhole_build_info", "The kvmhole version serving these "
                                 "metrics; always 1.", labels=("version",))
        info.add_metric((VERSION,), 1)
        yield info


def pages(store: LatestSnapshot, self_metrics: SelfMetrics | None = None):
    """The request handler: path and method -> the page."""
    registry = CollectorRegistry()
    registry.register(BuildInfo())
    registry.register(ProcessCollector(registry=None))  # process_*: memory, CPU, fds
    registry.register(SnapshotCollector(store, self_metrics))
    metrics = CachedMetrics(registry, store)
    routes = {"/": lambda _: Response(200, LANDING_PAGE,
                                      [("Content-Type", "text/html; charset=utf-8")]),
              "/metrics": metrics}

    def handle(request: Request) -> Response:
        page = routes.get(request.path)
        if page is None:
            return plain_response(HTTPStatus.NOT_FOUND)
        if request.method not in METHODS:
            return plain_response(HTTPStatus.METHOD_NOT_ALLOWED,
                                  [("Allow", ", ".join(METHODS))])
        return page(request)

    return handle


def parse_listen(text: str) -> tuple[str, int]:
    """'HOST:PORT', '[V6]:PORT' or ':PORT' (localhost) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"bad listen address {text!r}: expected HOST:PORT, e.g. "
                          f"{DEFAULT_LISTEN} (port 0 picks a free one)")
    host = host.removeprefix("[").removesuffix("]") or "127.0.0.1"
    return host, int(port)


def bind(listen: str, store: LatestSnapshot, self_metrics: SelfMetrics | None = None,
         web: WebConfig | None = None) -> HttpServer:
    """Start the HTTP(S) server (a daemon thread) for `store`; returns the server."""
    host, port = parse_listen(listen)
    handler = pages(store, self_metrics)
    web = web or WebConfig(tls=None, auth=None)
    try:
        return HttpServer(host, port, handler, tls=web.tls, auth=web.auth)
    except socket.gaierror as error:
        raise ConfigError(f"bad listen address {listen!r}: {error.strerror}") from None
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise KvmholeError(f"cannot listen on {listen}: the port is in use "
                               "(choose another with --listen)") from None
        raise KvmholeError(f"cannot listen on {listen}: {error.strerror}") from None


@contextmanager
def listening(listen: str, store: LatestSnapshot, self_metrics: SelfMetrics | None = None,
              web: WebConfig | None = None):
    """Serve `store` on `listen` while the block runs; yields the bound 'host:port'
    (port 0 asks the kernel for a free port)."""
    server = bind(listen, store, self_metrics, web)
    try:
        host, port = server.server_address[:2]
        yield f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
