"""The help screen: keys and what each column means."""

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
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
  in-kernel/s     hole accesses KVM served itself, no exit to the VMM: reads where
                  KVM emulates them, faults on VMX/SVM (a mapped page faults once)
  hole exits/s    hole reads and writes that exited to the VMM in userspace
  other exits/s   every other userspace exit: device MMIO, port I/O, ...
  in kernel       share of hole reads kept in the kernel since the monitor started
  time saved      in-kernel hole reads x this guest's median userspace round trip

[dim]Esc, q or ? closes this screen[/dim]"""


class HelpScreen(ModalScreen):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Static { width: auto; height: auto; padding: 1 2; border: round $primary;
                          background: $surface; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "app.pop_screen", "Close")]

    def compose(self) -> ComposeResult:
        yield Static(HELP)
