"""Watch the kvmhole registry with inotify, so a guest is named from its registry
entry the moment it appears: a short guest can start and finish between two polls,
and by the next poll its entry is gone.
"""

import ctypes
import os
import select
import struct
import threading
from pathlib import Path

from kvmhole.probes import ProbeUnavailable
from kvmhole.text import printable

IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name

_libc = ctypes.CDLL(None, use_errno=True)


class RegistryWatcher:
    """Calls on_entry(path) from a background thread for each registry file written;
    what on_entry raises goes to warn(message), and the watching goes on."""

    def __init__(self, directory: Path, on_entry, warn):
        self.on_entry, self.warn = on_entry, warn
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ProbeUnavailable(f"cannot create the registry directory {directory}: "
                                   f"{error.strerror}") from None
        self.directory = directory
        self.fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0 or _libc.inotify_add_watch(
                self.fd, os.fsencode(directory), IN_CLOSE_WRITE | IN_MOVED_TO) < 0:
            raise ProbeUnavailable(f"cannot watch {directory} with inotify: "
                                   f"{os.strerror(ctypes.get_errno())}")
        self._stop_r, self._stop_w = os.pipe()
        self.thread = threading.Thread(target=self._run, name="kvmhole-registry", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            ready, _, _ = select.select([self.fd, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                data = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                continue
            offset = 0
            while offset < len(data):
                _, _, _, length = _EVENT.unpack_from(data, offset)
                raw = data[offset + _EVENT.size: offset + _EVENT.size + length]
                offset += _EVENT.size + length
                name = raw.split(b"\0")[0].decode(errors="replace")
                if name.endswith(".json") and not name.startswith("."):
                    try:
                        self.on_entry(self.directory / name)
                    except Exception as error:  # this thread names every later guest
                        self.warn(f"registry file {printable(name)}: {error!r}")

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self.thread.join()
        for fd in (self.fd, self._stop_r, self._stop_w):
            os.close(fd)
