"""kvmhole export on bad input: one line on stderr, exit code 1, no traceback.
(Hosts that cannot run the probes: test_no_bpf.py.)"""

import socket
import subprocess

import pytest

from tests.conftest import KVMHOLE, assert_one_line_error, kvmhole, wait_for


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


def test_plain_http_beyond_loopback_is_warned_about(tmp_path):
    """Once bound (an address that fails stays one error line): stopped after it says so."""
    log = tmp_path / "export.err"
    with log.open("w") as err:
        export = subprocess.Popen([*KVMHOLE, "export", "--listen", "0.0.0.0:0"], stderr=err)
    try:
        wait_for("the warning", lambda: "warning: serving 0.0.0.0:0 in plain HTTP"
                 in log.read_text())
    finally:
        export.terminate()
        export.wait(timeout=60)
    # on loopback (the default) there is nothing to warn about
    quiet = kvmhole("export", "-p", "4194304", check=False, timeout=60)
    assert "plain HTTP" not in quiet.stderr, quiet.stderr
