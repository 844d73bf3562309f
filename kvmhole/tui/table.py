"""The guest table: one row per guest, keyed by pid, changed cell by cell.

A refresh touches only the cells whose text changed and re-sorts only when the
order changed, so 64 guests at 1 s cost little and the cursor stays on its guest.
"""

from rich.text import Text
from textual.cache import LRUCache
from textual.strip import Strip
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
        # Per row position and state: the row's style and the filler to the right edge.
        self._row_frames = LRUCache(maxsize=1024)
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
    # cell is looked up by what it shows (a guest's text and alive state, or a column
    # label), its place and its style.
    def _render_cell(self, row_index: int, column_index: int, base_style, width: int,
                     cursor: bool = False, hover: bool = False):
        if column_index < 0:  # row labels, which GuestTable has none of
            return super()._render_cell(row_index, column_index, base_style, width,
                                        cursor, hover)
        if row_index < 0:
            shows = self.ordered_columns[column_index].label.plain
        else:
            alive, cells = self._shown[self._row_locations.get_key(row_index).value]
            shows = (cells[column_index], alive)
        key = (row_index, column_index, shows, base_style, width, cursor, hover,
               self._show_hover_cursor, self._pseudo_class_state)
        lines = self._rendered.get(key)
        if lines is None:
            lines = super()._render_cell(row_index, column_index, base_style, width,
                                         cursor, hover)
            self._rendered[key] = lines
        return lines

    def render_lines(self, crop):
        # Taken once per paint rather than once per line: DOMNode.rich_style walks the
        # styles of every ancestor, and a column's width is a reactive lookup.
        self._paint_style = self.rich_style
        self._paint_widths = tuple(c.get_render_width(self) for c in self.ordered_columns)
        return super().render_lines(crop)

    # Overrides DataTable.render_line (textual is pinned in pyproject.toml) for a table
    # without fixed rows, as GuestTable is, in the style of the latest paint (what the
    # line on screen was painted in, should Textual ask for a line between paints).
    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        if y >= (self.header_height if self.show_header else 0):
            y += scroll_y
        return self._render_line(y, scroll_x, scroll_x + self.size.width, self._paint_style)

    # Overrides DataTable's private row renderer (textual is pinned in pyproject.toml).
    # DataTable re-derives a line's styles and filler after any cell changed, and with
    # every guest changing a cell each poll that was most of a repaint. A guest's line is
    # its cells (cached above) plus the style and filler DataTable computed for that row
    # position and state, which do not depend on the cells. Assumes what GuestTable
    # sets up: a row cursor, no row labels, no fixed columns.
    def _render_line_in_row(self, row_key, line_no: int, base_style, cursor_location,
                            hover_location):
        row_index = self._row_locations.get(row_key)
        if row_index is None:  # the header
            return super()._render_line_in_row(row_key, line_no, base_style,
                                               cursor_location, hover_location)
        cursor, hover = cursor_location.row == row_index, hover_location.row == row_index
        widths = self._paint_widths
        key = (row_index, line_no, base_style, cursor, hover, self.show_cursor,
               self._show_hover_cursor, self._pseudo_class_state, self.size.width, widths)
        frame = self._row_frames.get(key)
        if frame is None:
            fixed, scrollable = super()._render_line_in_row(row_key, line_no, base_style,
                                                            cursor_location, hover_location)
            self._row_frames[key] = (self._get_row_style(row_index, base_style), scrollable[-1])
            return fixed, scrollable
        row_style, filler = frame
        cells = [self._render_cell(row_index, column_index, row_style, width, cursor,
                                   hover)[line_no]
                 for column_index, width in enumerate(widths)]
        return [], [*cells, filler]

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._rendered.clear()
        self._row_frames.clear()

    def notify_style_update(self) -> None:
        self._rendered.clear()  # before DataTable's own clear, which repaints
        self._row_frames.clear()
        super().notify_style_update()
