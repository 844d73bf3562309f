"""top's columns (kvmhole/tui/columns.py) are the one place a column is defined: its
cell, its sort, its rate history and its line in the help screen follow from it."""

import pytest

from kvmhole.tui.columns import COLUMNS
from kvmhole.tui.help import HELP
from kvmhole.tui.history import SERIES

pytestmark = pytest.mark.pure
IDENTITY = {"name", "pid", "vmm", "strategy"}  # who the guest is, not a measurement


@pytest.mark.parametrize("column", [c for c in COLUMNS if c.key not in IDENTITY],
                         ids=lambda c: c.key)
def test_every_measured_column_is_explained_in_the_help(column):
    assert column.help
    assert f"  {column.label:15} {column.help.split()[0]}" in HELP


def test_the_history_plots_exactly_the_rate_columns():
    assert [c.key for c in SERIES] == [c.key for c in COLUMNS if c.rate is not None]
    assert [c.key for c in SERIES] == ["kernel", "exits", "other"]
