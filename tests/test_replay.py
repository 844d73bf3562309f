"""A session recorded with `kvmhole trace --snapshots` and played back by
`kvmhole top --replay`: the replayed view shows what the live monitor counted (the
model's JSON itself: tests/test_snapshot.py)."""

import asyncio
import json

import pytest

from kvmhole.tui.app import TopApp
from kvmhole.tui.source import read_recording, replay
from kvmhole.tui.table import GuestTable
from tests.conftest import kvmhole
from tests.test_trace import lines, start_trace
from tests.tui_synthetic import SyntheticSource


@pytest.fixture(scope="module")
def recording(tmp_path_factory, run_dir_module):
    """A real monitor recording beside a real alias guest, and the guest's own report."""
    trace = start_trace("--snapshots", "--interval", "0.5")
    run = json.loads(kvmhole("run", "ecam-scan", "--hole", "alias", "--json").stdout)
    path = tmp_path_factory.mktemp("recording") / "session.ndjson"
    path.write_text("\n".join(json.dumps(line) for line in lines(trace)) + "\n")
    return path, run


@pytest.fixture(scope="module")
def run_dir_module(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KVMHOLE_RUN_DIR", str(tmp_path_factory.mktemp("run")))
        yield


def test_recording_holds_the_guests_own_count(recording):
    path, run = recording
    seen = [s.guest(run["pid"]) for s in read_recording(path) if s.guest(run["pid"])]
    assert seen, "the guest is in no recorded snapshot"
    assert seen[-1].hole_reads_in_kernel == run["guest_hole_reads"] == 8192
    assert seen[-1].name == run["name"] and not seen[-1].alive


def test_replay_without_a_terminal_prints_the_last_snapshot(recording, tmp_path):
    path, run = recording
    # cut the recording where the guest was last reported
    kept = path.read_text().splitlines()
    while str(run["pid"]) not in kept[-1]:
        kept.pop()
    cut = tmp_path / "cut.ndjson"
    cut.write_text("\n".join(kept) + "\n")
    out = kvmhole("top", "--replay", str(cut)).stdout.splitlines()
    row = next(line.split() for line in out if line.startswith(run["name"]))
    pid = row.index(str(run["pid"]))
    assert row[pid:pid + 3] == [str(run["pid"]), "kvmhole", "alias"]
    assert "100.0%" in row  # every hole read served in the kernel


def test_replay_in_the_app_shows_the_recorded_guest(recording):
    path, run = recording
    recorded = [s for s in read_recording(path) if s.guest(run["pid"])]

    async def main():
        app = TopApp(None)
        async with app.run_test(size=(120, 36)) as pilot:
            app.apply_snapshot(recorded[0])
            await pilot.pause()
            table = app.query_one(GuestTable)
            return [str(table.get_cell(row.key, "name")) for row in table.ordered_rows]

    assert any(name.startswith(run["name"]) for name in asyncio.run(main()))


def test_replay_gives_every_snapshot_then_keeps_the_last():
    source = SyntheticSource()
    recorded = [source() for _ in range(3)]
    play = replay(recorded)
    assert [play() for _ in range(5)] == [*recorded, recorded[-1], recorded[-1]]


def test_replay_goes_without_watch_options(tmp_path):
    done = kvmhole("top", "--replay", str(tmp_path / "x"), "--demo", check=False)
    assert done.returncode == 2 and "--replay shows a recording" in done.stderr


