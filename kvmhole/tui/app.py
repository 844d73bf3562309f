"""kvmhole top: the Textual app. One snapshot in, the table, detail and status out.

A thread worker polls the source (Monitor.poll takes milliseconds of BPF map
reads) and posts each snapshot to the app, so the UI never waits for it.
"""

import gc

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Input, Static
from textual.worker import get_current_worker

from kvmhole.probes.snapshot import Snapshot
from kvmhole.tui.columns import COLUMN, COLUMNS, matches, ordered
from kvmhole.tui.detail import DetailPane
from kvmhole.tui.help import HelpScreen
from kvmhole.tui.history import History
from kvmhole.tui.source import SnapshotSource, poll_every
from kvmhole.tui.statics import update_line
from kvmhole.tui.table import GuestTable


class TopApp(App):
    TITLE = "kvmhole top"
    ENABLE_COMMAND_PALETTE = False  # every action has its own key
    CSS = """
    #status { height: 1; padding: 0 1; background: $boost; }
    GuestTable { height: 1fr; }
    #filter { display: none; }
    #filter.active { display: block; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        # Textual's Ctrl-C would only hint at Ctrl-Q; here it quits like everywhere else
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("p,space", "toggle_pause", "Pause"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("s", "sort_next", "Sort"),
        Binding("r", "sort_reverse", "Reverse"),
        Binding("question_mark", "help", "Help"),
    ]

    class Polled(Message):
        def __init__(self, snapshot: Snapshot):
            super().__init__()
            self.snapshot = snapshot

    def __init__(self, source: SnapshotSource | None, interval: float = 1.0):
        """source: called every `interval` s in a worker thread; None: no polling, the
        caller feeds snapshots with apply_snapshot (tests, benchmarks)."""
        super().__init__()
        self.source = source
        self.interval = interval
        self.history = History()
        self.latest: Snapshot | None = None  # the newest snapshot, kept even while paused
        self.shown: Snapshot | None = None  # the one on screen
        self.paused = False
        self.sort_column = COLUMN["name"]
        self.sort_reverse = False
        self.filter_text = ""
        self._dead: set[int] = set()  # reported exited once already: not shown again

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("waiting for the first snapshot...", id="status")
        yield GuestTable(id="guests")
        yield DetailPane()
        yield Input(placeholder="filter: part of a name, pid, VMM or strategy", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        # What exists now (Textual, rich, the widgets) lives as long as the app: out of
        # the collector's reach, a full collection no longer walks it at every refresh.
        gc.freeze()
        self.query_one(GuestTable).focus()
        if self.source is not None:
            self._poll()

    @work(thread=True, exclusive=True, name="poll")
    def _poll(self) -> None:
        poll_every(self.source, self.interval, lambda s: self.post_message(self.Polled(s)),
                   get_current_worker().cancelled_event)

    def on_top_app_polled(self, message: Polled) -> None:
        # Quitting: the screen is torn down, the detail pane's lines before the table
        # (seen on a loaded host), while the poll worker may still be posting.
        if not (self.query(GuestTable) and self.query("#detail-title")):
            return
        self.apply_snapshot(message.snapshot)

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Take one snapshot: record its rates and, unless paused, show it.

        The one entry point for data: the poll worker calls it through a message;
        tests and benchmarks call it directly on the app's thread (inside
        `async with app.run_test() as pilot:`, then `await pilot.pause()` to let
        Textual repaint). From another thread use app.call_from_thread.
        """
        # A guest that keeps being reported after its alive=False row was shown
        # (a replayed or buggy source) stays gone; a live pid is a new guest.
        guests = [g for g in snapshot.guests if g.alive or g.pid not in self._dead]
        self._dead = {g.pid for g in snapshot.guests if not g.alive}
        self.latest = Snapshot(snapshot.ts, snapshot.interval_s, snapshot.probe, guests)
        self.history.record(self.latest)
        if not self.paused:
            self.shown = self.latest
            self._render()

    def _render(self) -> None:
        """Show self.shown under the current filter and sort (also used when they change)."""
        if self.shown is not None:
            guests = [g for g in self.shown.guests if matches(g, self.filter_text)]
            self.query_one(GuestTable).show(ordered(guests, self.sort_column, self.sort_reverse))
            self._show_detail()
        self._show_status()

    def _show_detail(self) -> None:
        if self.shown is None:
            return
        pid = self.query_one(GuestTable).selected_pid
        guest = None if pid is None else self.shown.guest(pid)
        points = [] if pid is None else self.history.points(pid, until=self.shown.ts)
        self.query_one(DetailPane).show(guest, points, self.shown.probe.path)

    def _show_status(self) -> None:
        parts = []
        if self.shown is not None:
            probe = self.shown.probe
            rows = self.query_one(GuestTable).row_count
            parts.append(f"{rows} of {len(self.shown.guests)} guests" if self.filter_text
                         else f"{rows} guests")
            parts.append(f"probes {probe.path}" + ("" if probe.up else " DOWN")
                         + f" (in-kernel = {probe.kernel_counts})")
            parts.append(f"lost events {probe.lost_events}")
            if full := {name: n for name, n in probe.map_full.items() if n}:
                parts.append("map full, not counted: " + ", ".join(
                    f"{name} {n}" for name, n in full.items()))
        parts.append(f"every {self.interval:g} s")
        parts.append(f"sort {self.sort_column.label} {'↓' if self.sort_reverse else '↑'}")
        if self.filter_text:
            parts.append(f"filter '{self.filter_text}'")
        status = Text(" · ".join(parts))  # Text, not markup: the filter may hold a "["
        if self.paused:
            status.append("  PAUSED ", style="bold reverse")
        update_line(self.query_one("#status", Static), status)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        column = COLUMN[event.column_key.value]
        self._sort(column, not self.sort_reverse if column is self.sort_column
                   else column.numeric)

    def _sort(self, column, reverse: bool) -> None:
        self.sort_column, self.sort_reverse = column, reverse
        self._render()

    def action_sort_next(self) -> None:
        column = COLUMNS[(COLUMNS.index(self.sort_column) + 1) % len(COLUMNS)]
        self._sort(column, column.numeric)

    def action_sort_reverse(self) -> None:
        self._sort(self.sort_column, not self.sort_reverse)

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused:
            self.shown = self.latest  # catch up with what was polled meanwhile
        self._render()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("active")
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self._render()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._close_filter(keep=True)

    def action_clear_filter(self) -> None:
        self._close_filter(keep=False)

    def _close_filter(self, keep: bool) -> None:
        box = self.query_one("#filter", Input)
        if not keep:
            box.value = ""  # posts Input.Changed, which re-renders unfiltered
        if not box.value:
            box.remove_class("active")
        self.query_one(GuestTable).focus()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())
