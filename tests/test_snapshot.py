"""The snapshot model (kvmhole/probes/snapshot.py) and its one JSON line: a snapshot
survives JSON exactly, and a recording anyone may have edited or cut is one clear
error naming the bad value, or loses only a cut last line."""

import dataclasses
import json
import types
import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmhole.probes import paths
from kvmhole.probes.snapshot import Histogram, ProbeHealth, Snapshot
from tests.conftest import assert_one_line_error, kvmhole
from tests.tui_synthetic import SyntheticSource

pytestmark = pytest.mark.pure  # no KVM, no root


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


@pytest.mark.parametrize(("content", "words"), [
    ("not json\n", ("session.ndjson:1 is not a kvmhole snapshot", "trace --snapshots")),
    ("", ("holds no snapshots",)),
])
def test_a_bad_recording_is_one_line(tmp_path, content, words):
    path = tmp_path / "session.ndjson"
    path.write_text(content)
    assert_one_line_error(kvmhole("top", "--replay", str(path), check=False), *words)


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
