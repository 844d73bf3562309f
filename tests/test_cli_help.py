"""Every command explains itself: listed with a summary, and `--help` works."""

import pytest

from kvmhole.cli import COMMANDS
from tests.conftest import kvmhole

pytestmark = pytest.mark.pure  # no KVM, no root


def test_every_command_is_listed_with_a_summary():
    listing = kvmhole("--help").stdout.split("Commands:", 1)[1].splitlines()
    summaries = {line.split()[0]: line.split(None, 1)[1:] for line in listing if line.strip()}
    assert set(summaries) == set(COMMANDS)
    for name, summary in summaries.items():
        assert summary and summary[0].strip(), f"kvmhole {name} has no help text"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help(command):
    out = kvmhole(command, "--help").stdout
    assert out.startswith(f"Usage: kvmhole {command}")
