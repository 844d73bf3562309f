"""A session recorded with `kvmhole trace --snapshots` and played back by
`kvmhole top --replay`: the snapshot model survives JSON exactly, and the
replayed view shows what the live monitor counted."""

import asyncio
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmhole.probes.snapshot import (
    MECHANISMS,
    ROUNDTRIP_BOUNDS_S,
    TOP_BUSES,
    BusReads,
    ConfigCounts,
    GuestStats,
    Histogram,
    ProbeHealth,
    Snapshot,
    config_counts,
)
from kvmhole.tui.app import TopApp
from kvmhole.tui.source import read_recording, replay
from kvmhole.tui.table import GuestTable
from tests.conftest import assert_one_line_error, kvmhole
from tests.test_trace import lines, start_trace
from tests.tui_synthetic import SyntheticSource

counts = st.integers(min_value=0, max_value=2**63)
seconds = st.floats(min_value=0, max_value=1e6, allow_nan=False)
histograms = st.builds(
    Histogram, counts=st.lists(counts, min_size=len(ROUNDTRIP_BOUNDS_S) + 1,
                               max_size=len(ROUNDTRIP_BOUNDS_S) + 1), sum_s=seconds)
config_counts_st = st.builds(ConfigCounts, counts, counts, counts, counts, counts)
guests = st.builds(
    GuestStats, pid=st.integers(1, 2**22), name=st.text(max_size=20), vmm=st.text(max_size=8),
    strategy=st.sampled_from(["native", "alias", "dense", "exit", "unknown"]),
    holes=st.lists(st.tuples(counts, counts), max_size=3),
    config=st.builds(config_counts, ecam=config_counts_st, type1=config_counts_st),
    buses=st.lists(st.builds(BusReads, bus=st.integers(0, 255),
                             reads=st.fixed_dictionaries({m: counts for m in MECHANISMS})),
                   max_size=TOP_BUSES),
    userspace_exits=st.dictionaries(st.sampled_from(["MMIO", "IO", "HLT"]), counts),
    rates=st.dictionaries(st.text(max_size=20), seconds), roundtrip=histograms,
    kernel_time=st.none() | histograms,
    kvm_stats=st.none() | st.dictionaries(st.sampled_from(["exits", "mmio_exits"]), counts),
    alive=st.booleans())
snapshots = st.builds(
    Snapshot, ts=seconds, interval_s=seconds,
    probe=st.builds(ProbeHealth, path=st.sampled_from(["vmx/svm", "emulated"]),
                    up=st.booleans(), lost_events=counts,
                    tracepoints=st.lists(st.text(max_size=30), max_size=3),
                    message=st.text(max_size=40)),
    guests=st.lists(guests, max_size=4))


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
    (with_guest_field(holes=[[1]]).encode() + b"\n", ("a hole is not [start, end]",)),
    (with_guest_field(roundtrip={"bounds": [1.0], "counts": [1], "sum_s": 0}).encode()
     + b"\n", ("counts do not match",)),
    (with_guest_field(rates={"x": "fast"}).encode() + b"\n", ("a rate is not a number",)),
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
