"""A DataTable that repaints from what it drew before, for tables whose cells change
one at a time but every poll.

DataTable keys its render caches on a counter that every update_cell bumps, so one
changed cell re-renders every visible cell and line, through DataTable's per-line
styling and rich's per-cell layout. With 64 guests changing a cell each at every
poll, that was most of `kvmhole top`'s refresh. KeptTable keeps each cell's
segments per place and style, redraws a changed text into them when rich would
draw it the same way, keeps each row's style and end-of-row filler, and looks up
what a paint's lines share (the widget's style and size, the cursor) once a paint.

It overrides private DataTable methods and uses textual's line_crop; textual is
pinned in pyproject.toml, and tests/test_guest_table.py holds a table fed poll
after poll to a fresh one.
"""

from collections.abc import Hashable
from typing import NamedTuple

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual._segment_tools import line_crop
from textual.cache import LRUCache
from textual.coordinate import Coordinate
from textual.geometry import Offset
from textual.strip import Strip
from textual.widgets import DataTable


def _justified(text: str, width: int, right: bool) -> str:
    pad = " " * (width - cell_len(text))
    return pad + text if right else text + pad


def _retexted(lines, old: str, new: str, width: int, right: bool, padding: int):
    """A one-line cell's kept (simplified) segments showing `old` (in `width` cells,
    right-justified or not, `padding` spaces either side), made to show `new`; None
    unless rich would draw `new` the same way: it fits, and has no spaces at its ends
    (which rich strips or keeps) or characters it would escape or expand."""
    if len(lines) != 1 or not (new.isprintable() and new == new.strip()
                               and 0 < cell_len(new) <= width):
        return None
    line, pad = lines[0], " " * padding
    if len(line) != 1 or line[0].text != pad + _justified(old, width, right) + pad:
        return None  # not padding and text in one style (a dim text, say)
    return [[Segment(pad + _justified(new, width, right) + pad, line[0].style)]]


class _Paint(NamedTuple):
    """What stays the same over a paint, taken once rather than for every line:
    DOMNode.rich_style walks the styles of every ancestor, Widget.size asks the
    compositor, and the rest are reactive lookups."""

    style: Style
    width: int
    widths: tuple[int, ...]  # each column's, padding included
    scroll: Offset
    header: int  # lines above the rows
    cursor: Coordinate
    hover: Coordinate
    show_cursor: bool


class KeptTable(DataTable):
    """Assumes a row cursor, no row labels, no fixed rows or columns."""

    def __init__(self, **kwargs):
        # Made first: DataTable's init clears caches.
        self._rendered = LRUCache(maxsize=4096)  # place and style -> (text, segments)
        self._row_frames = LRUCache(maxsize=1024)  # row place and state -> style, filler
        super().__init__(cursor_type="row", **kwargs)
        self._paint: _Paint | None = None  # taken by render_lines

    def cell_shows(self, row_index: int, column_index: int) -> tuple[str, Hashable, bool]:
        """A data cell's text, what else sets its look (say, a dim style), and whether
        the text is right-justified."""
        raise NotImplementedError

    def update_cells(self, cells: list[tuple[str, str, object]]) -> None:
        """update_cell for each (row key, column key, value), with one repaint for all:
        update_cell repaints the whole table each time. Writes DataTable's private cell
        data as update_cell does."""
        for row_key, column_key, value in cells:
            self._data[row_key][column_key] = value
        if cells:
            self._update_count += 1
            self.refresh()

    # Overrides DataTable's private cell renderer: kept per place and style with the
    # text shown, a changed text redrawn into the kept segments when it can be.
    def _render_cell(self, row_index: int, column_index: int, base_style, width: int,
                     cursor: bool = False, hover: bool = False):
        if column_index < 0:  # row labels, which KeptTable has none of
            return super()._render_cell(row_index, column_index, base_style, width,
                                        cursor, hover)
        if row_index < 0:  # the header: kept, never redrawn in place
            text, look, right = self.ordered_columns[column_index].label.plain, None, None
        else:
            text, look, right = self.cell_shows(row_index, column_index)
        place = (row_index, column_index, look, base_style, width, cursor, hover,
                 self._show_hover_cursor, self._pseudo_class_state)
        kept = self._rendered.get(place)
        if kept is not None and kept[0] == text:
            return kept[1]
        lines = None
        if kept is not None and right is not None:
            padding = self.cell_padding
            lines = _retexted(kept[1], kept[0], text, width - 2 * padding, right, padding)
        if lines is None:
            # simplified, as DataTable's lines are in the end: a line of merged cells
            # is a third as many segments to crop, measure and filter
            lines = [list(Segment.simplify(line)) for line in super()._render_cell(
                row_index, column_index, base_style, width, cursor, hover)]
        self._rendered[place] = (text, lines)
        return lines

    def _take_paint(self) -> _Paint:
        self._paint = _Paint(self.rich_style, self.size.width,
                             tuple(c.get_render_width(self) for c in self.ordered_columns),
                             self.scroll_offset, self.header_height if self.show_header else 0,
                             self.cursor_coordinate, self.hover_coordinate, self.show_cursor)
        return self._paint

    def render_lines(self, crop):
        self._take_paint()
        return super().render_lines(crop)

    # Overrides DataTable.render_line for a table without fixed rows, as of the latest
    # paint (what the line on screen was painted as, should Textual ask for a line
    # between paints).
    def render_line(self, y: int) -> Strip:
        paint = self._paint or self._take_paint()
        scroll_x, scroll_y = paint.scroll
        if y >= paint.header:
            y += scroll_y
        return self._render_line(y, scroll_x, scroll_x + paint.width, paint.style)

    # Overrides DataTable's private line renderer for a row's line: its cells (kept
    # above) plus the style and end-of-row filler DataTable computed for that row
    # position and state, which do not depend on the cells; then cropped, padded and
    # simplified as DataTable does.
    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        paint = self._paint
        try:
            row_key, line_no = self._get_offsets(y)
        except LookupError:
            return Strip.blank(paint.width, base_style)
        row_index = self._row_locations.get(row_key)
        if row_index is None:  # the header
            return super()._render_line(y, x1, x2, base_style)
        cursor, hover = paint.cursor.row == row_index, paint.hover.row == row_index
        key = (row_index, line_no, base_style, cursor, hover, paint.show_cursor,
               self._show_hover_cursor, self._pseudo_class_state, paint.width, paint.widths)
        frame = self._row_frames.get(key)
        if frame is None:
            _, scrollable = self._render_line_in_row(row_key, line_no, base_style,
                                                     paint.cursor, paint.hover)
            frame = self._row_frames[key] = (self._get_row_style(row_index, base_style),
                                             scrollable[-1])
        row_style, filler = frame
        segments = [segment for column_index, width in enumerate(paint.widths)
                    for segment in self._render_cell(row_index, column_index, row_style,
                                                     width, cursor, hover)[line_no]]
        segments += filler
        return Strip(line_crop(segments, x1, x2, paint.width)).adjust_cell_length(
            paint.width, base_style).simplify()

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._rendered.clear()
        self._row_frames.clear()

    def notify_style_update(self) -> None:
        self._rendered.clear()  # before DataTable's own clear, which repaints
        self._row_frames.clear()
        super().notify_style_update()
