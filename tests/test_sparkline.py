"""kvmhole's Sparkline draws exactly what Textual's draws, for any data, width and height."""

import asyncio
import random

import pytest
from textual import widgets
from textual.app import App, ComposeResult
from textual.geometry import Region

from kvmhole.tui.sparkline import Sparkline

pytestmark = pytest.mark.pure  # no KVM, no root

rng = random.Random(16)
DATA = {
    "none": [],
    "one point": [3.0],
    "two points": [1.0, 2.0],
    "constant": [5.0] * 30,
    "rates": [rng.uniform(0, 5000) for _ in range(40)],
    "more points than cells": [rng.uniform(0, 1) for _ in range(200)],
    "integers": [rng.randrange(-10, 10) for _ in range(25)],
}
SIZES = [(1, 1), (7, 2), (40, 2), (40, 3)]


class Pair(App):
    """Textual's sparkline and kvmhole's, the same size on the same background."""

    def __init__(self, width: int, height: int):
        super().__init__()
        self.css = f"Sparkline {{ width: {width}; height: {height}; }}"

    def compose(self) -> ComposeResult:
        yield widgets.Sparkline(id="textual")
        yield Sparkline(id="kvmhole")

    def on_mount(self) -> None:
        self.stylesheet.add_source(self.css)


def test_draws_what_textual_draws():
    async def main():
        for width, height in SIZES:
            app = Pair(width, height)
            async with app.run_test(size=(60, 10)) as pilot:
                theirs, ours = app.query_one("#textual"), app.query_one("#kvmhole")
                await pilot.pause()
                assert (ours.size.width, ours.size.height) == (width, height)
                for name, data in DATA.items():
                    theirs.data, ours.data = data, data
                    await pilot.pause()
                    region = Region(0, 0, width, height)
                    assert ([list(s) for s in ours.render_lines(region)]
                            == [list(s) for s in theirs.render_lines(region)]), (name, width)

    asyncio.run(main())
