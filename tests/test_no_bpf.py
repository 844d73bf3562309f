"""Every command that loads the probes, on a host that cannot run them: one line
saying what is missing and how to fix it, exit code 1, no traceback."""

import pytest

from tests.broken_hosts import NO_HEADERS, NO_TRACEFS, as_nobody, in_namespace
from tests.conftest import KVMHOLE, assert_one_line_error

COMMANDS = {
    "trace": [*KVMHOLE, "trace", "--count", "1", "--interval", "0.1"],
    "export": [*KVMHOLE, "export", "--listen", "127.0.0.1:0"],
    "top": [*KVMHOLE, "top", "--interval", "0.1"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_not_root(command):
    assert_one_line_error(as_nobody(*COMMANDS[command]), "root")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_tracefs(command):
    assert_one_line_error(in_namespace(NO_TRACEFS, *COMMANDS[command]),
                          "tracefs", "mount -t tracefs")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_kernel_headers(command):
    assert_one_line_error(in_namespace(NO_HEADERS, *COMMANDS[command]), "linux-headers-amd64")


def test_top_points_at_the_doctor():
    assert_one_line_error(as_nobody(*COMMANDS["top"]), "root", "kvmhole doctor")
