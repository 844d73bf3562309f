"""kvmhole export on bad input and on hosts that cannot run the probes: one line
on stderr, exit code 1, no traceback. The broken hosts are the real ones of
test_doctor.py (setpriv drops root; a private mount namespace hides tracefs or
the kernel headers)."""

import socket
import subprocess

import pytest

from tests.conftest import KVMHOLE, kvmhole
from tests.test_doctor import assert_one_line_error, in_namespace

EXPORT = [*KVMHOLE, "export", "--listen", "127.0.0.1:0"]


def test_port_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        done = kvmhole("export", "--listen", listen, check=False)
    assert_one_line_error(done, listen, "in use", "--listen")


@pytest.mark.parametrize(("listen", "words"), [
    ("17330", ("bad listen address '17330'", "HOST:PORT")),
    ("127.0.0.1:http", ("bad listen address", "HOST:PORT")),
    ("127.0.0.1:65536", ("bad listen address", "HOST:PORT")),
    ("no-such-host.invalid:17330", ("bad listen address", "no-such-host.invalid")),
    ("192.0.2.1:17330", ("cannot listen on 192.0.2.1:17330", "assign")),  # not ours
])
def test_bad_listen_address(listen, words):
    assert_one_line_error(kvmhole("export", "--listen", listen, check=False), *words)


def test_not_root():
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           *EXPORT], capture_output=True, text=True, timeout=120)
    assert_one_line_error(done, "root")


def test_no_tracefs():
    done = in_namespace("mount -t tmpfs -o ro tmpfs /sys/kernel", *EXPORT)
    assert_one_line_error(done, "tracefs", "mount -t tracefs")


def test_no_kernel_headers():
    setup = "mount -t tmpfs tmpfs /usr/src; mkdir -p /var/cache/kvmhole; " \
            "mount -t tmpfs tmpfs /var/cache/kvmhole"
    assert_one_line_error(in_namespace(setup, *EXPORT), "linux-headers-amd64")
