"""Hostile HTTP clients, bounded and on loopback: what the exporter must shrug off.

`trickle` connections send a request head one byte per `period` and never finish
it (a slow-loris), one more sends a TLS ClientHello's first bytes (to a plain
port: no request ever ends), and `stall` connections send one byte and then
nothing. A thread drives them; `held()` says how many the server has not closed
yet, so a caller can check that scrapes were answered while the attack held.
"""

import contextlib
import socket
import threading

# Never ends: headers go on past any deadline kvmhole sets (20 bytes at 2/s: 10 s).
TRICKLED = b"GET /metrics HTTP/1.1\r\nHost: kvmhole\r\nX-Slow: " + b"a" * 4000
CLIENT_HELLO = bytes.fromhex("16030100c8010000c40303")  # TLS record, ClientHello, TLS 1.2


class SlowClients:
    def __init__(self, address: str, trickle: int = 20, stall: int = 200,
                 period: float = 0.5):
        host, _, port = address.rpartition(":")
        self.target = (host.strip("[]"), int(port))
        self.trickle, self.stall, self.period = trickle, stall, period
        self._stop = threading.Event()
        self._trickling: list[socket.socket] = []
        self._all: list[socket.socket] = []
        self._thread = threading.Thread(target=self._drive, name="slow-clients", daemon=True)

    def __enter__(self):
        for n in range(self.trickle + self.stall + 1):
            conn = socket.create_connection(self.target, timeout=10)
            conn.settimeout(None)  # blocking: recv(MSG_DONTWAIT) must not wait
            self._all.append(conn)
            if n < self.trickle:
                conn.sendall(TRICKLED[:1])
                self._trickling.append(conn)
            elif n == self.trickle:
                conn.sendall(CLIENT_HELLO)
            else:
                conn.sendall(b"G")
        self._thread.start()
        return self

    def _drive(self) -> None:
        sent = 1
        while not self._stop.wait(self.period):
            for conn in self._trickling:
                with contextlib.suppress(OSError):  # closed by the server: let go
                    conn.sendall(TRICKLED[sent:sent + 1])
            sent += 1

    def held(self) -> int:
        """Attacking connections the server has neither closed nor answered."""
        count = 0
        for conn in self._all:
            try:
                conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)  # b"": closed
            except BlockingIOError:
                count += 1  # open, and nothing said to it
            except OSError:
                pass  # reset
        return count

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        for conn in self._all:
            conn.close()
