"""Statics updated at every poll, without the work Static.update does regardless.

Static.update(table) lays the screen out again (whose cost grows with the guest
table) and renders the table twice: once to measure its height, once to paint it.
SizedStatic.show renders the new table once, at the width it will be painted at,
and asks for a layout only when the table's size differs from the one shown before.
update_line skips the update (a repaint of the widget and its screen region) of a
one-line Static that already shows the same thing.
"""

from rich.console import RenderableType
from rich.text import Text
from textual.strip import Strip
from textual.style import Style
from textual.visual import RenderOptions, RichVisual, Visual
from textual.widgets import Static


class RenderedOnce(RichVisual):
    """A rich renderable that keeps its lines per width and style, so measuring its
    height and painting it share one render. For renderables whose lines do not depend
    on the height they are given (tables, groups of them, text): the lines are
    rendered with no height, then cut to the painted height."""

    def __init__(self, widget: Static, renderable: RenderableType):
        super().__init__(widget, renderable)
        self._lines: dict[tuple[int, Style], list[Strip]] = {}
        self._optimal_widths: dict[int, int] = {}

    def _lines_at(self, width: int, style: Style, options: RenderOptions) -> list[Strip]:
        if (width, style) not in self._lines:
            self._lines[width, style] = super().render_strips(width, None, style, options)
        return self._lines[width, style]

    def render_strips(self, width: int, height: int | None, style: Style,
                      options: RenderOptions) -> list[Strip]:
        return self._lines_at(width, style, options)[:height]

    def get_height(self, rules, width: int) -> int:
        # rendered as the paint will: in the widget's style, with the options a widget
        # paints with (less a text selection, which a rich renderable does not show)
        widget = self._widget
        options = RenderOptions(widget._get_style, rules)
        return len(self._lines_at(width, widget.visual_style, options))

    def get_optimal_width(self, rules, container_width: int) -> int:
        if container_width not in self._optimal_widths:
            self._optimal_widths[container_width] = super().get_optimal_width(
                rules, container_width)
        return self._optimal_widths[container_width]


class SizedStatic(Static):
    """A Static whose show(renderable) renders once and lays out only on a new size.
    update() is Static's own, for content that is not shown every poll."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._shown: RenderedOnce | None = None
        # tables of numbers have no links, and looking for them restyles every line of
        # a paint
        self.auto_links = False

    def render(self) -> Visual:
        return self._shown if self._shown is not None else super().render()

    def update(self, content="", *, layout: bool = True) -> None:
        self._shown = None
        super().update(content, layout=layout)

    def show(self, renderable: RenderableType) -> None:
        """Show renderable (kept as self.content, as update would).

        The size a layout gives the content follows from its visual's height at the
        content width and, when the width is auto, its optimal width in the parent:
        the new visual is asked the same questions as the one on screen."""
        new, old = RenderedOnce(self, renderable), self.render()
        rules, width = self.styles, self.content_size.width
        resized = new.get_height(rules, width) != old.get_height(rules, width)
        if not resized and self.styles.width is not None and self.styles.width.is_auto:
            container = self.parent.content_size.width
            resized = (new.get_optimal_width(rules, container)
                       != old.get_optimal_width(rules, container))
        super().update(renderable, layout=resized)
        self._shown = new


def update_line(static: Static, content: str | Text) -> None:
    """Static.update(content, layout=False) for a one-line Static (its size never
    changes), unless it shows that already."""
    if _look(static.content) != _look(content):
        static.update(content, layout=False)


def _look(content) -> object:
    if isinstance(content, Text):  # Text's == compares only the characters and spans
        return (content.plain, content.spans, content.style, content.justify,
                content.overflow, content.no_wrap)
    return content
