"""Many idle guests on one host, as a production hypervisor has them.

An idle guest is the `mixed` guest made sparse: one hole read and one device read,
then it asks its VMM to sleep for a second, so it exits to userspace a few times
a second and its VMM sleeps in between. Each guest is its own VMM process (the
probes key guests by process), forked from one launcher after kvmhole is imported
and the guest image is built, so a guest costs a VM and a few MB of private
memory rather than a Python start-up. Run `python -m kvmhole.bench.fleet N`; it
prints one line per started guest ("pid name") and stops every guest on SIGTERM.
"""

import contextlib
import gc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

IDLE_RAM = 8 << 20  # the guest needs its image, tables and scratch page: 8 MiB holds them
IDLE_PAUSE_US = 1_000_000


def _guest(name: str) -> None:
    """In a forked child: run one idle guest until SIGTERM, then exit without cleanup
    handlers of the parent's (os._exit)."""
    from kvmhole.vmm import Machine, MachineConfig

    status = 0
    try:
        Machine(MachineConfig(guest="mixed", hole="exit", ram_size=IDLE_RAM, pages=1,
                              pause_us=IDLE_PAUSE_US, name=name)).run()
    except SystemExit:
        pass  # SIGTERM: the machine cleaned up its registry entry
    except BaseException as error:  # a guest that could not start says so, then goes
        print(f"fleet: {name}: {error}", file=sys.stderr, flush=True)
        status = 1
    os._exit(status)


def launch(count: int, prefix: str = "idle") -> None:
    """Fork `count` idle guests, report them, and stop them all on SIGTERM."""
    from kvmhole.guests import image

    image("mixed")  # built once, before forking
    import kvmhole.vmm  # noqa: F401  imported once, shared copy-on-write by every guest

    gc.freeze()  # the collector would otherwise touch, and so copy, every shared object
    children = []
    for i in range(count):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _guest(f"{prefix}-{i}")
        children.append(pid)
        print(pid, f"{prefix}-{i}", flush=True)
    stop = False

    def _stop(*_):
        nonlocal stop
        stop = True
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stop and any(_running(pid) for pid in children):
        time.sleep(0.2)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _running(pid: int) -> bool:
    done, _ = os.waitpid(pid, os.WNOHANG)
    return done == 0


class Fleet:
    """Context manager over a launcher process: `pids` maps each guest's pid to its name."""

    def __init__(self, count: int, prefix: str = "idle", env: dict | None = None):
        self.count, self.prefix, self.env = count, prefix, env
        self.pids: dict[int, str] = {}

    def __enter__(self):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kvmhole.bench.fleet", str(self.count), self.prefix],
            stdout=subprocess.PIPE, text=True, env=self.env)
        for _ in range(self.count):
            line = self.process.stdout.readline()
            if not line:
                self.__exit__()
                raise RuntimeError(f"the fleet launcher stopped after {len(self.pids)} guests")
            pid, name = line.split()
            self.pids[int(pid)] = name
        return self

    def registered(self, run_dir: Path) -> set[int]:
        """The fleet's guests that have published their registry entry."""
        return {pid for pid in self.pids if (run_dir / f"{pid}.json").exists()}

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=120)
        self.process.stdout.close()


if __name__ == "__main__":
    launch(int(sys.argv[1]), *(sys.argv[2:3]))
