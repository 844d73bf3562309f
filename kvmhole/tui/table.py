"""The guest table: one row per guest, keyed by pid, changed cell by cell.

A refresh touches only the cells whose text changed and re-sorts only when the
order changed, so 64 guests at 1 s cost little and the cursor stays on its guest.
"""

from rich.text import Text

from kvmhole.probes.snapshot import GuestStats
from kvmhole.tui.columns import COLUMNS, Column
from kvmhole.tui.kept_table import KeptTable


def _cell(text: str, alive: bool, column: Column) -> Text:
    return Text(text, style="" if alive else "dim",
                justify="right" if column.numeric else "left", no_wrap=True,
                overflow="ellipsis")


class GuestTable(KeptTable):
    def __init__(self, **kwargs):
        super().__init__(zebra_stripes=True, **kwargs)
        self._shown: dict[str, tuple[bool, tuple[str, ...]]] = {}  # row key -> alive, cells

    def on_mount(self) -> None:
        for column in COLUMNS:
            self.add_column(Text(column.label, justify="right" if column.numeric else "left"),
                            width=column.width, key=column.key)

    @property
    def selected_pid(self) -> int | None:
        if not self.row_count:
            return None
        return int(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def show(self, guests: list[GuestStats]) -> None:
        """Make the rows exactly `guests`, in that order."""
        selected = self.selected_pid
        wanted = {str(g.pid): g for g in guests}
        for key in [k for k in self._shown if k not in wanted]:
            self.remove_row(key)
            del self._shown[key]
        changed = []
        for key, g in wanted.items():
            shown = (g.alive, tuple(c.cell(g) for c in COLUMNS))
            before = self._shown.get(key)
            if before is None:
                self.add_row(*(_cell(text, g.alive, c) for c, text
                               in zip(COLUMNS, shown[1], strict=True)), key=key)
            elif before != shown:
                changed += [(key, column.key, _cell(new, g.alive, column)) for column, old, new
                            in zip(COLUMNS, before[1], shown[1], strict=True)
                            if old != new or before[0] != g.alive]
            self._shown[key] = shown
        self.update_cells(changed)
        rank = {key: i for i, key in enumerate(wanted)}
        if [row.key.value for row in self.ordered_rows] != list(wanted):
            self.sort("pid", key=lambda pid: rank[pid.plain])
        if selected is not None and str(selected) in wanted:
            self.move_cursor(row=self.get_row_index(str(selected)), animate=False)

    def cell_shows(self, row_index: int, column_index: int) -> tuple[str, bool, bool]:
        alive, cells = self._shown[self._row_locations.get_key(row_index).value]
        return cells[column_index], alive, COLUMNS[column_index].numeric
