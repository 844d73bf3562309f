"""The guest table keeps what it drew (cells, rows' frames) and redraws changed cells into
kept segments; after poll upon poll it must draw exactly what a fresh table draws."""

import asyncio

import pytest
from textual.geometry import Region

from kvmhole.bench.views import synthetic_snapshot
from kvmhole.probes.snapshot import Snapshot
from kvmhole.tui.app import TopApp
from kvmhole.tui.table import GuestTable

pytestmark = pytest.mark.pure  # no KVM, no root

GUESTS = 12


def snapshot(tick: int) -> Snapshot:
    """Counters that grow (texts change width: 950, 1.2k...), one guest exited at tick 5."""
    s = synthetic_snapshot(GUESTS, tick)
    if tick == 5:
        s.guests[3].alive = False
    return s


def table_lines(app: TopApp) -> list[list]:
    table = app.query_one(GuestTable)
    return [list(strip) for strip in table.render_lines(Region(0, 0, *table.size))]


def test_a_table_fed_poll_after_poll_draws_what_a_fresh_one_draws():
    async def main():
        polled, fresh = TopApp(None), TopApp(None)
        async with polled.run_test(size=(160, 30)) as polled_pilot:
            for tick in range(5):
                polled.apply_snapshot(snapshot(tick))
                await polled_pilot.pause()
            await polled_pilot.press("down", "down", "s")  # cursor on the third row, sorted
            for tick in range(5, 9):
                polled.apply_snapshot(snapshot(tick))
                await polled_pilot.pause()
            async with fresh.run_test(size=(160, 30)) as fresh_pilot:
                fresh.apply_snapshot(snapshot(8))
                await fresh_pilot.press("down", "down", "s")
                assert table_lines(polled) == table_lines(fresh)

    asyncio.run(main())
