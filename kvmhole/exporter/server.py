"""Serve /metrics from a LatestSnapshot on a listen address, with errors meant for users."""

import errno
import socket
from contextlib import contextmanager

from prometheus_client import CollectorRegistry

from kvmhole.errors import ConfigError, KvmholeError
from kvmhole.exporter.cache import cached_metrics_app
from kvmhole.exporter.collector import SnapshotCollector
from kvmhole.exporter.http import MetricsServer
from kvmhole.exporter.selfmetrics import SelfMetrics
from kvmhole.exporter.store import LatestSnapshot

# Outside 9100-9999 (Prometheus' exporter port registry, fully allocated) and its
# 10000+ overflow, and below the ephemeral port range.
DEFAULT_PORT = 17330
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"


def parse_listen(text: str) -> tuple[str, int]:
    """'HOST:PORT', '[V6]:PORT' or ':PORT' (localhost) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"bad listen address {text!r}: expected HOST:PORT, e.g. "
                          f"{DEFAULT_LISTEN} (port 0 picks a free one)")
    host = host.removeprefix("[").removesuffix("]") or "127.0.0.1"
    return host, int(port)


def bind(listen: str, store: LatestSnapshot, self_metrics: SelfMetrics | None = None):
    """Start the HTTP server (daemon threads) for `store`; returns the server."""
    host, port = parse_listen(listen)
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(store, self_metrics))
    try:
        server = MetricsServer(host, port, cached_metrics_app(registry, store))
    except socket.gaierror as error:
        raise ConfigError(f"bad listen address {listen!r}: {error.strerror}") from None
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise KvmholeError(f"cannot listen on {listen}: the port is in use "
                               "(choose another with --listen)") from None
        raise KvmholeError(f"cannot listen on {listen}: {error.strerror}") from None
    return server


@contextmanager
def listening(listen: str, store: LatestSnapshot, self_metrics: SelfMetrics | None = None):
    """Serve `store` on `listen` while the block runs; yields the bound 'host:port'
    (port 0 asks the kernel for a free port)."""
    server = bind(listen, store, self_metrics)
    try:
        host, port = server.server_address[:2]
        yield f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
