"""The detail pane's tables: rich.Table's look, drawn directly when the table is plain.

rich lays a Table out through its general machinery (every cell measured, padded,
wrapped and aligned as a renderable of its own), which cost more than the rest of
the detail pane at every poll. The detail tables are plain: one-line cells of text
in one style, columns that fit. For those, what rich.Table(..., box=None,
padding=(0, 1)) yields is regular (per cell: a space, the text padded to the
column's width, a space), and PlainTable yields the very same segments itself (the
title it has rich render, as rich.Table does); tests/test_plain_table.py holds it to
rich's. Any other table is handed to rich.Table whole.
"""

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text

PAD = Segment(" ", Style())  # the padding either side of a cell, as rich's Padding has it


def _plain(text: str) -> bool:
    """Shown as is by rich: no markup ("["), emoji codes (":"), line breaks or controls."""
    return text.isprintable() and "[" not in text and ":" not in text


class PlainTable:
    """rich.Table(*headers, title=title, box=None, padding=(0, 1)) for cells that are
    strings or Texts in one style (a bar)."""

    def __init__(self, *headers: str, title: str):
        self.headers = headers
        self.title = title
        self.rows: list[tuple[str | Text, ...]] = []

    def add_row(self, *cells: str | Text) -> None:
        self.rows.append(cells)

    def as_rich(self) -> Table:
        table = Table(*self.headers, box=None, padding=(0, 1), title=self.title,
                      title_justify="left")
        for row in self.rows:
            table.add_row(*row)
        return table

    def _widths(self, max_width: int) -> list[int] | None:
        """Each column's text width, or None when rich has to lay the table out: a cell
        is not plain, a column is empty or the table does not fit."""
        texts = [self.headers, *([c.plain if isinstance(c, Text) else c for c in row]
                                 for row in self.rows)]
        if not all(_plain(text) for row in texts for text in row):
            return None
        if not all(not c.spans and c.justify is None for row in self.rows for c in row
                   if isinstance(c, Text)):
            return None
        widths = [max(cell_len(row[i]) for row in texts) for i in range(len(self.headers))]
        if 0 in widths or sum(widths) + 2 * len(widths) > max_width:
            return None  # rich draws an empty column differently
        return widths

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widths = self._widths(options.max_width)
        if widths is None:
            return Measurement.get(console, options, self.as_rich())
        # a column is at least as wide as its longest word (rich wraps at spaces)
        columns = [[row[i].plain if isinstance(row[i], Text) else row[i]
                    for row in (self.headers, *self.rows)] for i in range(len(widths))]
        least = sum(max((cell_len(word) for text in column for word in text.split()),
                        default=0) + 2 for column in columns)
        return Measurement(least, sum(widths) + 2 * len(widths))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        widths = self._widths(options.max_width)
        if widths is None:
            yield self.as_rich()
            return
        table_width = sum(widths) + 2 * len(widths)
        if self.title:  # as rich.Table renders it: wrapped to the table's width
            title = console.render_str(self.title, style="table.title", highlight=False)
            yield from console.render(title, options.update(
                width=table_width, highlight=False, height=None, justify="left"))
        header = console.get_style("table.header")
        for width, text in zip(widths, self.headers, strict=True):
            yield from (Segment(" ", header), Segment(_ljust(text, width), header),
                        Segment(" ", header))
        yield Segment.line()
        for row in self.rows:
            for width, cell in zip(widths, row, strict=True):
                if isinstance(cell, Text):
                    style = console.get_style(cell.style) if cell.style else None
                    yield from (PAD, Segment(_ljust(cell.plain, width), style), PAD)
                else:
                    yield from (PAD, Segment(_ljust(cell, width)), PAD)
            yield Segment.line()


def _ljust(text: str, width: int) -> str:
    return text + " " * (width - cell_len(text))
