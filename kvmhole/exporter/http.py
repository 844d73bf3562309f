"""The HTTP server under /metrics: bounded however many clients connect.

prometheus_client's own server listens with a backlog of 5 (eight concurrent
scrapers saw 1-2 s SYN retries) and gives every connection a thread with no
timeout (500 idle connections: 504 threads). Here one thread accepts and waits,
with a selector, until a connection has sent something: an idle connection costs
a file descriptor, not a thread, and is closed after IDLE_TIMEOUT_S (the oldest
first beyond MAX_WAITING). Requests that have arrived are answered by a small
pool, each with a socket timeout, one request per connection (HTTP/1.0).
"""

import selectors
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

BACKLOG = 128
IDLE_TIMEOUT_S = 10.0  # to send a request once connected
IO_TIMEOUT_S = 10.0  # for each read or write while answering
MAX_WAITING = 256  # connections that have sent nothing yet: well under the fd limit
WORKERS = 4


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass  # one line per scrape on stderr would drown the exporter's own messages


class MetricsServer(WSGIServer):
    request_queue_size = BACKLOG

    def __init__(self, host: str, port: int, app):
        self._stop_r, self._stop_w = socket.socketpair()  # first: a failed bind closes them
        self.address_family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        super().__init__((host, port), _QuietHandler)
        self.set_app(app)
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="kvmhole-http")
        self._thread = threading.Thread(target=self._serve, name="kvmhole-http-accept",
                                        daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        waiting: dict[socket.socket, tuple[float, object]] = {}  # conn -> (since, address)
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ, "accept")
            selector.register(self._stop_r, selectors.EVENT_READ, "stop")
            while True:
                for key, _ in selector.select(timeout=1.0):
                    if key.data == "stop":
                        for conn in waiting:
                            conn.close()
                        return
                    if key.data == "accept":
                        try:
                            conn, address = self.socket.accept()
                        except OSError:  # out of fds: make room, or accept would spin
                            if waiting:
                                oldest = next(iter(waiting))
                                selector.unregister(oldest)
                                del waiting[oldest]
                                oldest.close()
                            continue
                        selector.register(conn, selectors.EVENT_READ, "conn")
                        waiting[conn] = (time.monotonic(), address)
                    else:  # the request has begun: a worker reads and answers it
                        selector.unregister(key.fileobj)
                        _, address = waiting.pop(key.fileobj)
                        self._pool.submit(self._answer, key.fileobj, address)
                too_old = time.monotonic() - IDLE_TIMEOUT_S
                expired = [c for c, (since, _) in waiting.items() if since < too_old]
                expired += list(waiting)[:max(0, len(waiting) - MAX_WAITING)]
                for conn in set(expired):
                    selector.unregister(conn)
                    del waiting[conn]
                    conn.close()

    def _answer(self, conn: socket.socket, address) -> None:
        conn.settimeout(IO_TIMEOUT_S)
        try:
            self.finish_request(conn, address)
        except OSError:
            pass  # the client went away or stalled: nothing to answer
        finally:
            self.shutdown_request(conn)

    def shutdown(self) -> None:
        self._stop_w.send(b"x")
        self._thread.join()
        self._pool.shutdown(wait=True)

    def server_close(self) -> None:
        super().server_close()
        self._stop_r.close()
        self._stop_w.close()
