"""Any file a writer of the registry directory can make: the reads every monitor and
VMM does (scan: `trace` and `export` at start and on SIGHUP; read_entry: the inotify
watcher and the guests' first poll; clean: `run` before it starts a guest) return
entries or say why a file is none, and never raise anything else."""

import json
import os
import socket
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvmhole.probes.complaints import RegistryComplaints
from kvmhole.vmm import registry

NOBODY = 65534
LIVE = os.getpid()  # a root process: entries naming it are root's to write

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                      st.floats(allow_nan=True), st.text(max_size=80))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20)
# entries close to valid ones, so the field checks are reached
entry_like = st.fixed_dictionaries(
    {"pid": st.one_of(st.just(LIVE), json_value),
     "start": st.one_of(st.just(registry.process_start(LIVE)), json_value)},
    optional={"name": json_value, "vmm": json_value, "strategy": json_value,
              "holes": st.one_of(json_value, st.lists(st.lists(st.integers(-1, 2**65),
                                                               max_size=3), max_size=70)),
              "ecam": json_value, "exited": json_value, "kvm_stats": json_value})
nested = st.builds(lambda depth, opener: (opener * depth).encode(),
                   st.integers(1, 40000), st.sampled_from(["[", '{"a":', "[{}, "]))
contents = st.one_of(
    st.binary(max_size=300),
    json_value.map(lambda v: json.dumps(v).encode()),
    entry_like.map(lambda v: json.dumps(v).encode()),
    nested,
    st.integers(registry.MAX_ENTRY_BYTES - 2, registry.MAX_ENTRY_BYTES + 2).map(
        lambda n: b"{" + b" " * (n - 2) + b"}"),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
names = st.one_of(st.just(f"{LIVE}.json"), st.integers(0, 2**40).map(lambda n: f"{n}.json"),
                  st.text(st.characters(blacklist_characters="/\0"), min_size=1,
                          max_size=40).map(lambda t: f"{t}.json"))
kinds = st.sampled_from(["file", "fifo", "symlink-zero", "symlink-file", "dangling",
                         "directory", "socket", "hardlink"])


def make(directory: Path, name: str, kind: str, data: bytes, owner: int) -> None:
    path = directory / name
    if len(os.fsencode(path.name)) > 255:
        return  # the file system refuses it: nothing a writer can make
    if kind == "file":
        path.write_bytes(data)
        os.chown(path, owner, owner)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink-zero":
        path.symlink_to("/dev/zero")
    elif kind == "symlink-file":
        (directory / "target").write_bytes(data)
        path.symlink_to(directory / "target")
    elif kind == "dangling":
        path.symlink_to(directory / "nothing")
    elif kind == "directory":
        path.mkdir()
    elif kind == "socket":
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(str(path))
    elif kind == "hardlink":
        (directory / "target").write_bytes(data)
        os.link(directory / "target", path)
    old = time.time() - registry.GRACE_S - 5  # half old enough for clean() to read them
    if kind != "socket" and hash(name) % 2:
        os.utime(path, (old, old), follow_symlinks=False)


@pytest.fixture
def monkeypatch_env(monkeypatch):
    """Point the registry at a directory (one per example: hypothesis reuses fixtures)."""
    return lambda directory: monkeypatch.setenv("KVMHOLE_RUN_DIR", str(directory))


files = st.lists(st.tuples(names, kinds, contents, st.sampled_from([0, NOBODY])),
                 min_size=1, max_size=6, unique_by=lambda f: f[0])


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(files)
def test_any_file_is_an_entry_or_one_warning(monkeypatch_env, made):
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        monkeypatch_env(directory)
        for name, kind, data, owner in made:
            make(directory, name, kind, data, owner)
        for path in directory.glob("*.json"):
            try:
                entry = registry.read_entry(path)
            except registry.BadEntry as error:
                assert str(error)
            else:  # a valid entry: named after its pid, root's or its process owner's
                assert entry is None or path.name == f"{entry['pid']}.json"
        complaints = RegistryComplaints()
        found = registry.scan(complaints.add)
        assert all(isinstance(entry["name"], str) for entry in found.values())
        complaints.say()
        registry.clean()


def test_a_forged_entry_for_a_root_process_is_refused(monkeypatch_env, tmp_path):
    monkeypatch_env(tmp_path)
    path = tmp_path / f"{LIVE}.json"
    path.write_text(json.dumps({"pid": LIVE, "start": registry.process_start(LIVE),
                                "name": "forged"}))
    assert registry.read_entry(path)["name"] == "forged"  # root's: trusted
    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(registry.BadEntry, match="neither root nor the owner"):
        registry.read_entry(path)
