"""The exporter's HTTP(S) server: one event loop, so no client can hold a worker.

A thread per connection (prometheus_client's server) or a small pool of them
(what kvmhole had) belongs to whoever connects: four clients trickling a header
byte every few seconds, or a TLS ClientHello sent to a plain port, held all the
workers and Prometheus' scrapes timed out. Here one asyncio loop owns every
connection, and a connection costs a file descriptor and a few KB until it has
sent its whole request head within REQUEST_DEADLINE_S of connecting (TLS handshake
included); past MAX_PENDING such connections the oldest is dropped. Only complete,
authenticated requests reach the handler, which runs in a small thread pool (a
render takes milliseconds once per poll; scrapes in between serve cached bytes),
and the answer must be taken within RESPONSE_DEADLINE_S. Password checks (bcrypt,
deliberately slow) run in a pool of their own, at most MAX_AUTH_CHECKS waiting,
and a credential that passed is remembered, so password guessing cannot delay
Prometheus' scrapes either. One request per connection (Connection: close).
"""

import asyncio
import base64
import binascii
import contextlib
import resource
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus

import bcrypt

BACKLOG = 128
REQUEST_DEADLINE_S = 10.0  # from connecting to the end of the request head
RESPONSE_DEADLINE_S = 10.0  # for the client to take the whole answer
MAX_HEAD_BYTES = 16 << 10  # request line and headers
MAX_PENDING = 512  # connections still sending their request head
RENDER_WORKERS = 2
MAX_AUTH_CHECKS = 8  # bcrypt checks queued at once; more get 503
# bcrypt of a password no user has: unknown users cost the same time as known ones
_NO_USER_HASH = bcrypt.hashpw(b"no user", bcrypt.gensalt(4))


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


class BasicAuth:
    """HTTP basic auth against bcrypt hashes (user -> hash), as exporter-toolkit does it."""

    def __init__(self, users: dict[str, bytes]):
        self.users = users
        self._passed: set[bytes] = set()  # Authorization values already checked

    def known(self, header: str) -> bool:
        return header.encode() in self._passed

    def check(self, header: str) -> bool:
        """Slow (bcrypt): run it off the event loop."""
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        hashed = self.users.get(user.decode("utf-8", "replace"))
        ok = bcrypt.checkpw(password, hashed or _NO_USER_HASH) and hashed is not None
        if ok and sep:
            self._passed.add(header.encode())
        return ok and bool(sep)


def raise_fd_limit() -> None:
    """Open connections are bounded by MAX_PENDING, not by the soft fd limit (1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class HttpServer:
    """Serves handler(Request) -> Response on (host, port) from a background thread."""

    def __init__(self, host: str, port: int, handler: Callable[[Request], Response],
                 tls: ssl.SSLContext | None = None, auth: BasicAuth | None = None):
        self.handler, self.tls, self.auth = handler, tls, auth
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        self.socket = socket.create_server((host, port), family=family, backlog=BACKLOG)
        self.server_address = self.socket.getsockname()
        raise_fd_limit()
        self._render = ThreadPoolExecutor(RENDER_WORKERS, thread_name_prefix="kvmhole-render")
        self._bcrypt = ThreadPoolExecutor(1, thread_name_prefix="kvmhole-auth")
        self._auth_checks = 0
        self._pending: dict[asyncio.Task, None] = {}  # oldest first
        self._clients: set[asyncio.Task] = set()
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(_quiet_about_clients)
        self._server = self.loop.run_until_complete(asyncio.start_server(
            self._client, sock=self.socket, ssl=tls, limit=MAX_HEAD_BYTES, backlog=BACKLOG,
            ssl_handshake_timeout=REQUEST_DEADLINE_S if tls else None))
        self._thread = threading.Thread(target=self.loop.run_forever, name="kvmhole-http",
                                        daemon=True)
        self._thread.start()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        task = asyncio.current_task()
        self._clients.add(task)
        try:
            request = await self._read_request(task, reader)
            if isinstance(request, Response):  # malformed: said so
                await self._send(writer, request, head_only=False)
            elif request is not None:
                await self._send(writer, await self._respond(request),
                                 head_only=request.method == "HEAD")
        except (asyncio.CancelledError, TimeoutError, ConnectionError, ssl.SSLError):
            pass  # dropped: too slow, too many, or the client went away
        finally:
            self._clients.discard(task)
            writer.transport.abort()  # nothing left to say; a TLS goodbye may never come

    async def _read_request(self, task, reader) -> Request | Response | None:
        """The request head, within the deadline; a Response for one that is malformed."""
        self._pending[task] = None
        if len(self._pending) > MAX_PENDING:
            next(iter(self._pending)).cancel()
        try:
            async with asyncio.timeout(REQUEST_DEADLINE_S):
                head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None  # closed before a whole request
        except asyncio.LimitOverrunError:
            return plain_response(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
        finally:
            self._pending.pop(task, None)
        return parse_request(head)

    async def _respond(self, request: Request) -> Response:
        if self.auth is not None and not await self._authorised(request):
            return plain_response(HTTPStatus.UNAUTHORIZED,
                          [("WWW-Authenticate", 'Basic realm="kvmhole", charset="UTF-8"')])
        return await self.loop.run_in_executor(self._render, self.handler, request)

    async def _authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header:
            return False
        if self.auth.known(header):
            return True
        if self._auth_checks >= MAX_AUTH_CHECKS:
            return False  # a flood of guesses: refused without hashing
        self._auth_checks += 1
        try:
            return await self.loop.run_in_executor(self._bcrypt, self.auth.check, header)
        finally:
            self._auth_checks -= 1

    async def _send(self, writer: asyncio.StreamWriter, response: Response,
                    head_only: bool) -> None:
        status = HTTPStatus(response.status)
        lines = [f"HTTP/1.1 {status.value} {status.phrase}",
                 *(f"{name}: {value}" for name, value in response.headers),
                 f"Content-Length: {len(response.body)}", "Connection: close", "", ""]
        writer.write("\r\n".join(lines).encode("latin-1"))
        if not head_only:  # HEAD: the same headers, Content-Length included, no body
            writer.write(response.body)
        async with asyncio.timeout(RESPONSE_DEADLINE_S):
            await writer.drain()

    def shutdown(self) -> None:
        def stop():
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            self.loop.call_soon(self.loop.stop)  # after the cancelled tasks have run

        self.loop.call_soon_threadsafe(stop)
        self._thread.join()
        self._render.shutdown(wait=True)
        self._bcrypt.shutdown(wait=True)

    def server_close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.loop.run_until_complete(self._server.wait_closed())
        self.loop.close()
        self.socket.close()


def parse_request(head: bytes) -> Request | Response:
    """A request head (request line and headers, CRLF-terminated) as a Request, or the
    400 Response it deserves."""
    try:
        text = head.decode("latin-1")  # header bytes above 0x7f are opaque, never decoded
        request_line, *header_lines = text.split("\r\n")[:-2]
        method, target, version = request_line.split(" ")
        if not (method.isalpha() and method.isupper() and version in ("HTTP/1.0",
                                                                      "HTTP/1.1")):
            raise ValueError
        headers = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise ValueError
            headers[name.lower()] = value.strip()
        path = urllib.parse.urlsplit(target).path
    except ValueError:
        return plain_response(HTTPStatus.BAD_REQUEST)
    return Request(method, path, headers)


def plain_response(status: HTTPStatus,
                   headers: list[tuple[str, str]] | None = None) -> Response:
    """An error page: the status in words."""
    return Response(status.value, f"{status.value} {status.phrase}\n".encode(),
                    [("Content-Type", "text/plain; charset=utf-8"), *(headers or [])])


def _quiet_about_clients(loop, context) -> None:
    """A client's broken TLS handshake or reset is its own business, not stderr's."""
    if isinstance(context.get("exception"), OSError | ssl.SSLError | TimeoutError):
        return
    loop.default_exception_handler(context)
