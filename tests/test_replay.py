"""A session recorded with `kvmhole trace --snapshots` and played back by
`kvmhole top --replay`: the snapshot model survives JSON exactly, and the
replayed view shows what the live monitor counted."""

import asyncio
import dataclasses
import json
import types
import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmhole.probes import paths
from kvmhole.probes.snapshot import Histogram, ProbeHealth, Snapshot
from kvmhole.tui.app import TopApp
from kvmhole.tui.source import read_recording, replay
from kvmhole.tui.table import GuestTable
from tests.conftest import assert_one_line_error, kvmhole
from tests.test_trace import lines, start_trace
from tests.tui_synthetic import SyntheticSource

# What the declarations' types cannot say; everything else is derived from them.
finite = st.floats(allow_nan=False, allow_infinity=False)
histograms = st.integers(1, 4).flatmap(lambda n: st.builds(
    Histogram, bounds=st.lists(finite, min_size=n, max_size=n).map(tuple),
    counts=st.lists(st.integers(0, 2**63), min_size=n + 1, max_size=n + 1), sum_s=finite))
CONSTRAINED = {(ProbeHealth, "path"): st.sampled_from(list(paths.BY_NAME))}


def declared(kind) -> st.SearchStrategy:
    """Values of a snapshot type, built from its declaration field by field: a field
    added to the model is generated (and so round-tripped) with no change here."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(st.none() if a is type(None) else declared(a) for a in args))
    if kind is Histogram:
        return histograms
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        return st.builds(kind, **{f.name: CONSTRAINED.get((kind, f.name), declared(hints[f.name]))
                                  for f in dataclasses.fields(kind) if f.init})
    if origin is dict:
        return st.dictionaries(declared(args[0]), declared(args[1]), max_size=3)
    if origin is list:
        return st.lists(declared(args[0]), max_size=3)
    if origin is tuple:
        if args[-1] is Ellipsis:
            return st.lists(declared(args[0]), max_size=3).map(tuple)
        return st.tuples(*(declared(a) for a in args))
    return {int: st.integers(0, 2**63), float: finite, str: st.text(max_size=20),
            bool: st.booleans()}[kind]


snapshots = declared(Snapshot)


@given(snapshots)
def test_a_snapshot_survives_one_json_line(snapshot):
    line = snapshot.to_json()
    assert "\n" not in line
    assert Snapshot.from_json(line) == snapshot


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


@pytest.mark.parametrize(("content", "words"), [
    ("not json\n", ("session.ndjson:1 is not a kvmhole snapshot", "trace --snapshots")),
    ("", ("holds no snapshots",)),
])
def test_a_bad_recording_is_one_line(tmp_path, content, words):
    path = tmp_path / "session.ndjson"
    path.write_text(content)
    assert_one_line_error(kvmhole("top", "--replay", str(path), check=False), *words)


def test_replay_goes_without_watch_options(tmp_path):
    done = kvmhole("top", "--replay", str(tmp_path / "x"), "--demo", check=False)
    assert done.returncode == 2 and "--replay shows a recording" in done.stderr


def good_line() -> str:
    return SyntheticSource()().to_json()


def with_guest_field(**fields) -> str:
    raw = json.loads(good_line())
    raw["guests"][0].update(fields)
    return json.dumps(raw)


@pytest.mark.parametrize(("content", "words"), [
    (b"\x00\xff\xfe\xfd\n", ("session.ndjson:1 is not a kvmhole snapshot", "not UTF-8")),
    (b"[1, 2]\n", ("session.ndjson:1", "the snapshot is not dict")),
    (b'"text"\n', ("session.ndjson:1", "the snapshot is not dict")),
    (with_guest_field(name=7).encode() + b"\n", ("session.ndjson:1", "name is not str")),
    (with_guest_field(pid="1").encode() + b"\n", ("pid is not int",)),
    (with_guest_field(holes=[[1]]).encode() + b"\n", ("holes is not a list of 2",)),
    (with_guest_field(roundtrip={"bounds": [1.0], "counts": [1], "sum_s": 0}).encode()
     + b"\n", ("counts do not match",)),
    (with_guest_field(rates={"hole_reads_in_kernel": "fast"}).encode() + b"\n",
     ("rates.hole_reads_in_kernel is not a number",)),
    ((good_line() + "\n" + good_line()[:40] + "\n" + good_line() + "\n").encode(),
     ("session.ndjson:2",)),  # a cut line in the middle is an error, not a skip
])
def test_a_malformed_recording_is_one_line(tmp_path, content, words):
    path = tmp_path / "session.ndjson"
    path.write_bytes(content)
    assert_one_line_error(kvmhole("top", "--replay", str(path), check=False), *words)


def test_a_recording_cut_in_its_last_line_is_played_without_it(tmp_path):
    path = tmp_path / "session.ndjson"
    path.write_text(good_line() + "\n" + good_line()[:100])  # the recorder was killed
    done = kvmhole("top", "--replay", str(path))
    assert "demo-alias" in done.stdout
    assert done.stderr.strip() == (f"kvmhole: warning: {path}:2: skipped, the recording ends "
                                   "in the middle of this line")
