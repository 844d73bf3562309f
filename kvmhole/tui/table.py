"""The guest table: one row per guest, keyed by pid, changed cell by cell.

A refresh touches only the cells whose text changed and re-sorts only when the
order changed, so 64 guests at 1 s cost little and the cursor stays on its guest.
"""

from rich.text import Text
from textual.cache import LRUCache
from textual.widgets import DataTable

from kvmhole.probes.snapshot import GuestStats
from kvmhole.tui.columns import COLUMNS, Column


def _cell(g: GuestStats, column: Column) -> Text:
    return Text(column.cell(g), style="" if g.alive else "dim",
                justify="right" if column.numeric else "left", no_wrap=True,
                overflow="ellipsis")


class GuestTable(DataTable):
    def __init__(self, **kwargs):
        # Rendered cells by what they show. DataTable keys its own render caches on a
        # counter that every update_cell bumps, so one changed cell re-renders every
        # visible cell (most of a refresh's cost with 64 guests); this cache keeps the
        # cells whose text did not change. Made first: DataTable's init clears caches.
        self._rendered = LRUCache(maxsize=4096)
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
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
        for key, g in wanted.items():
            shown = (g.alive, tuple(c.cell(g) for c in COLUMNS))
            before = self._shown.get(key)
            if before is None:
                self.add_row(*(_cell(g, c) for c in COLUMNS), key=key)
            elif before != shown:
                for column, old, new in zip(COLUMNS, before[1], shown[1], strict=True):
                    if old != new or before[0] != g.alive:
                        self.update_cell(key, column.key, _cell(g, column))
            self._shown[key] = shown
        rank = {key: i for i, key in enumerate(wanted)}
        if [row.key.value for row in self.ordered_rows] != list(wanted):
            self.sort("pid", key=lambda pid: rank[pid.plain])
        if selected is not None and str(selected) in wanted:
            self.move_cursor(row=self.get_row_index(str(selected)), animate=False)

    # Overrides DataTable's private renderer (textual is pinned in pyproject.toml): a
    # guest cell is looked up by its text, alive state, place and style.
    def _render_cell(self, row_index: int, column_index: int, base_style, width: int,
                     cursor: bool = False, hover: bool = False):
        if row_index < 0 or column_index < 0:  # the header: DataTable's own cache
            return super()._render_cell(row_index, column_index, base_style, width,
                                        cursor, hover)
        alive, cells = self._shown[self._row_locations.get_key(row_index).value]
        key = (row_index, column_index, cells[column_index], alive, base_style, width, cursor,
               hover, self._show_hover_cursor, self._pseudo_class_state)
        lines = self._rendered.get(key)
        if lines is None:
            lines = super()._render_cell(row_index, column_index, base_style, width,
                                         cursor, hover)
            self._rendered[key] = lines
        return lines

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._rendered.clear()

    def notify_style_update(self) -> None:
        self._rendered.clear()  # before DataTable's own clear, which repaints
        super().notify_style_update()
