"""Textual's Sparkline, drawn straight to strips.

Textual's Sparkline renders a rich renderable: for each cell of each line a bar, a
blended colour and a new Style, after which the Visual wrapping it restyles every
segment and splits them into lines again. The detail pane redraws three at every
poll, which cost about 1 ms each. Sparkline here yields the very same strips
directly, working out each bucket's bar and style once for all the columns and
lines it covers; tests/test_sparkline.py holds it to Textual's. (blend_colors is
the renderable's own, from a private module: textual is pinned in pyproject.toml.)
"""

from rich.segment import Segment
from rich.style import Style as RichStyle
from textual import widgets
from textual.renderables._blend_colors import blend_colors
from textual.strip import Strip
from textual.style import Style
from textual.visual import RenderOptions, RichVisual


class _SparklineStrips(RichVisual):
    """The strips of Textual's sparkline renderable (measured, and drawn when it has
    fewer than two points, by rich as before)."""

    def render_strips(self, width: int, height: int | None, style: Style,
                      options: RenderOptions) -> list[Strip]:
        spark = self._renderable
        if len(spark.data) < 2:
            return super().render_strips(width, height, style, options)
        # What textual.renderables.sparkline.Sparkline.__rich_console__ draws, and the
        # style RichVisual gives each segment: the widget's, plus the bar's colour.
        width = spark.width or width
        bars = spark.BARS
        levels = len(bars) * (spark.height or 1) - 1
        minimum, maximum = min(spark.data), max(spark.data)
        extent = maximum - minimum or 1
        data, n = list(spark.data), len(spark.data)
        # the renderable's buckets, int(Fraction(n, width) * k) being n * k // width
        buckets = [part for k in range(width) if (part := data[n * k // width:
                                                              n * (k + 1) // width])]
        low, high = spark.min_color.color, spark.max_color.color
        base = style.rich_style
        columns = []  # per column: the bar's level and its styled colour
        bucket_index, step = 0.0, len(buckets) / width
        drawn = None
        for _ in range(width):
            if int(bucket_index) != drawn:  # a bucket spans columns when points are few
                drawn = int(bucket_index)
                ratio = (spark.summary_function(buckets[drawn]) - minimum) / extent
                colour = RichStyle.from_color(blend_colors(low, high, ratio))
                column = (int(ratio * levels), base + colour)
            columns.append(column)
            bucket_index += step
        lines = []
        for line in reversed(range(spark.height or 1)):
            bottom, top = line * len(bars), (line + 1) * len(bars)
            lines.append(Strip([
                Segment(" ", base) if level < bottom
                else Segment("█" if level >= top else bars[level % len(bars)], styled)
                for level, styled in columns]))
        return lines[:height]


class Sparkline(widgets.Sparkline):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # a sparkline has no links, and looking for them restyles every cell of a paint
        self.auto_links = False

    def render(self) -> _SparklineStrips:
        return _SparklineStrips(self, super().render())
