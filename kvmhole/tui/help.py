"""The help screen: keys and what each column means."""

import textwrap

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Static

from kvmhole.tui.columns import COLUMNS

_HELP = """\
[b]kvmhole top[/b]: per guest, PCI-hole reads served in the kernel vs exits to userspace

[b]Keys[/b]
  ↑ ↓ PgUp PgDn   select a guest (its detail is shown below the table)
  s               sort by the next column (numbers largest first); click a header too
  r               reverse the sort order
  /               filter by name, pid, VMM or strategy; Enter keeps it, Esc clears it
  p  space        pause: the screen freezes, polling goes on, nothing is lost
  ?               this help
  q  Ctrl-C       quit (guests started by --demo are stopped)

[b]Columns[/b]
{columns}

[dim]Esc, q or ? closes this screen[/dim]"""



def _column_help() -> str:
    """Every numeric column's label and meaning, from the columns themselves."""
    lines = []
    for column in COLUMNS:
        if column.help:
            words = textwrap.wrap(column.help, 62)
            lines.append(f"  {column.label:15} {words[0]}")
            lines += [f"  {'':15} {line}" for line in words[1:]]
    return "\n".join(lines)


HELP = _HELP.format(columns=_column_help())


class HelpScreen(ModalScreen):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Static { width: auto; height: auto; padding: 1 2; border: round $primary;
                          background: $surface; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "app.pop_screen", "Close")]

    def compose(self) -> ComposeResult:
        yield Static(HELP)
