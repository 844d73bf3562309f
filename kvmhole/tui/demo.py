"""kvmhole top --demo: a few endless `mixed` guests, one per hole strategy.

They belong to this process: stopped (SIGTERM, so each removes its registry
file) when the `with` block ends, however it ends. If kvmhole top itself is
killed, the kernel sends them SIGTERM (PR_SET_PDEATHSIG), and --timeout ends
them in any case.
"""

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import IO

from kvmhole.errors import KvmholeError
from kvmhole.vmm import registry
from kvmhole.vmm.strategies import STRATEGIES as ALL_STRATEGIES

# one guest per strategy that runs on any kernel
STRATEGIES = tuple(name for name, s in ALL_STRATEGIES.items() if not s.needs_patch)
BACKSTOP_S = 6 * 3600  # --timeout: the last resort if no stop ever reaches a guest
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """In the child before exec: SIGTERM when the parent dies (kept across exec)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the prctl took effect
        os._exit(1)


class DemoGuests:
    """Context manager: one `mixed` guest per strategy in STRATEGIES, named demo-STRATEGY."""

    def __init__(self):
        self.processes: dict[str, subprocess.Popen] = {}
        self._stderr: dict[str, IO[bytes]] = {}

    @property
    def pids(self) -> set[int]:
        return {p.pid for p in self.processes.values()}

    def __enter__(self):
        parent = os.getpid()
        try:
            for strategy in STRATEGIES:
                err = self._stderr[strategy] = tempfile.TemporaryFile()
                self.processes[strategy] = subprocess.Popen(
                    [sys.executable, "-m", "kvmhole", "run", "mixed", "--hole", strategy,
                     "--name", f"demo-{strategy}", "--timeout", str(BACKSTOP_S)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                    # own session: a Ctrl-C on the terminal reaches kvmhole top only,
                    # which then stops the guests in order
                    start_new_session=True, preexec_fn=lambda: _die_with_parent(parent))
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until every guest has published its registry entry (it is then running)."""
        deadline = time.monotonic() + timeout
        waiting = dict(self.processes)
        while waiting:
            for strategy, process in list(waiting.items()):
                if process.poll() is not None:
                    raise KvmholeError(f"demo guest demo-{strategy} exited "
                                       f"({process.returncode}): {self._last_error(strategy)}")
                if registry.entry_path(process.pid).exists():
                    del waiting[strategy]
            if time.monotonic() > deadline:
                raise KvmholeError(f"demo guests {', '.join(waiting)} did not start within "
                                   f"{timeout:g} s")
            time.sleep(0.05)

    def _last_error(self, strategy: str) -> str:
        err = self._stderr[strategy]
        err.seek(0)
        lines = err.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no message"

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            # a guest killed outright cannot remove its own entry
            registry.entry_path(process.pid).unlink(missing_ok=True)
        for err in self._stderr.values():
            err.close()
        self.processes.clear()
        self._stderr.clear()
