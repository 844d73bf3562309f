"""Signals around the run loop: --timeout and a clean stop on SIGTERM or Ctrl-C."""

import signal
import threading

from kvmhole.errors import ConfigError, KvmholeError

STOPPING = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


class GuestTimeout(KvmholeError):
    pass


class GuestStopped(KvmholeError):
    """A stopping signal ended the run: reported with the counts so far, and the
    process exits 128 + signum as one killed by it would."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


class Deadline:
    """SIGALRM after `seconds`: KVM_RUN returns EINTR and the handler raises GuestTimeout.
    SIGTERM, SIGINT (Ctrl-C), SIGHUP (a closed terminal) and SIGQUIT raise GuestStopped,
    so the run ends with a result (the counts so far), the registry entry is marked
    exited and the mappings are released; only SIGKILL leaves it live."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.saved = {}

    def _expired(self, signum, frame):
        raise GuestTimeout(f"the guest did not finish within {self.seconds} s (--timeout)")

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            if self.seconds:
                raise ConfigError("a timeout needs the machine to run on the main thread")
            return self
        for signum in STOPPING:
            self.saved[signum] = signal.signal(signum, _terminate)
        if self.seconds:
            self.saved[signal.SIGALRM] = signal.signal(signal.SIGALRM, self._expired)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        if signal.SIGALRM in self.saved:
            signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in self.saved.items():
            signal.signal(signum, handler)


def _terminate(signum, frame):
    # One stopping signal is enough: another must not cut the cleanup short. They come
    # in bursts: PR_SET_PDEATHSIG fires once per thread of a dying multi-threaded parent.
    for stopping in STOPPING:
        signal.signal(stopping, signal.SIG_IGN)
    raise GuestStopped(signum)
