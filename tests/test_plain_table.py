"""PlainTable yields exactly what the rich.Table it stands for yields, and measures the same,
whether it draws the table itself (plain cells that fit) or hands it to rich."""

import pytest
from rich.console import Console
from rich.measure import Measurement
from rich.style import Style
from rich.text import Text

from kvmhole.tui.plain_table import PlainTable

pytestmark = pytest.mark.pure  # no KVM, no root


def bar(n: int) -> Text:
    return Text("█" * n, style="green")


def table(headers, rows, title="a title") -> PlainTable:
    t = PlainTable(*headers, title=title)
    for row in rows:
        t.add_row(*row)
    return t


DRAWN = {  # by PlainTable itself, at a width they fit in
    "latency": table(("round trip ≤", "exits", ""),
                     [("4.1 µs", "24", bar(3)), ("8.2 µs", "1.4k", bar(20)),
                      ("+Inf", "0", bar(0))], title="p50 8.2 µs · p99 16.4 µs · mean 9.1 µs"),
    "reasons": table(("exit reason", "total", "/s"), [("MMIO", "1.6k", "225"), ("IO", "800", "0")],
                     title="userspace exits by reason"),
    "no reasons": table(("exit reason", "total", "/s"), [("none", "", "")]),
    "mechanisms": table(("hole reads", "kernel", "exited", "exits", "fns"),
                        [("ecam", "51.2k", "0", "0", "51.2k"), ("cf8", "3", "12.3M", "1", "2")],
                        title="absent-function config reads"),
    "no rows": table(("a", "bb"), []),
    "wide characters": table(("名前", "n"), [("日本語", "1")]),
    "text styles": table(("a", "b"), [(Text("x", style=Style(bold=True)), Text("y"))],
                         title="t"),
    "title wider than the table": table(("a",), [("b",)], title="a title longer than the table"),
    "title with markup": table(("a",), [("b",)], title="[bold]t[/bold]"),
    "no title": table(("a",), [("b",)], title=""),
}
HANDED_TO_RICH = {
    "an empty column": table(("a", ""), [("x", ""), ("yy", "")], title="t"),
    "markup": table(("a",), [("[bold]b[/bold]",)]),
    "emoji code": table(("a",), [(":smile:",)]),
    "line break": table(("a",), [("b\nc",)]),
    "text with spans": table(("a",), [(Text.assemble(("b", "red"), "c"),)]),
    "justified text": table(("a",), [(Text("b", justify="right"),)]),
}
CASES = DRAWN | HANDED_TO_RICH
CONSOLE = Console(width=160, force_terminal=True, color_system="truecolor")


@pytest.mark.parametrize("width", [160, 43, 30, 12, 3])
@pytest.mark.parametrize("name", CASES)
def test_draws_and_measures_as_rich(name, width):
    options = CONSOLE.options.update_width(width)
    plain = CASES[name]
    assert list(CONSOLE.render(plain, options)) == list(CONSOLE.render(plain.as_rich(), options))
    assert (Measurement.get(CONSOLE, options, plain)
            == Measurement.get(CONSOLE, options, plain.as_rich()))


@pytest.mark.parametrize("name", DRAWN)
def test_plain_tables_that_fit_are_drawn_without_rich(name, monkeypatch):
    monkeypatch.setattr(PlainTable, "as_rich", lambda self: pytest.fail("handed to rich"))
    list(CONSOLE.render(DRAWN[name]))
    Measurement.get(CONSOLE, CONSOLE.options, DRAWN[name])
