"""`kvmhole bench --quick`: it runs, and its JSON is complete and self-consistent.
No timing thresholds: only structure and what must hold whatever the speed."""

import json

import pytest

from tests.conftest import kvmhole

MIB = 1 << 20


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    done = kvmhole("bench", "--quick", "--json", "--out", str(out), timeout=600)
    return json.loads(done.stdout), out


def _consistent(s: dict, reps: int) -> None:
    assert s["min"] <= s["median"] <= s["max"]
    assert s["n"] == reps


def test_access_cost_section(bench):
    report, _ = bench
    cost = report["access_cost"]
    expected = {"exit", "exit (C loop)", "alias", "dense"}
    if report["host"]["native_hole"]:
        expected.add("native")
    assert set(cost["strategies"]) == expected
    assert cost["native"]["available"] == report["host"]["native_hole"]
    for name, s in cost["strategies"].items():
        for key in ("per_read_us", "ram_per_read_us", "hole_cost_us"):
            _consistent(s[key], cost["reps"])
        exits = 1.0 if name.startswith("exit") else 0.0
        assert s["userspace_exits_per_read"] == exits, name
    head = cost["headline"]
    per_read = {k: v["per_read_us"]["median"] for k, v in cost["strategies"].items()}
    assert head["per_read_ratio_exit_vs_in_kernel"] == pytest.approx(
        per_read["exit"] / per_read[head["in_kernel_strategy"]])


def test_type1_section(bench):
    """Every strategy leaves type-1 reads to the VMM: two userspace exits each."""
    report, _ = bench
    type1 = report["type1"]
    assert set(type1["strategies"]) == set(report["access_cost"]["strategies"]) - {
        "exit (C loop)"}
    for s in type1["strategies"].values():
        _consistent(s["per_read_us"], type1["reps"])
        assert s["userspace_exits_per_read"] == 2.0


def test_memory_section(bench):
    report, _ = bench
    rows = report["memory"]
    sizes = sorted({r["hole_bytes"] for r in rows})
    assert len(rows) == 3 * len(sizes) and sizes[-1] == 256 * MIB
    for row in rows:
        hole = row["hole_bytes"]
        if row["strategy"] == "exit":
            assert row["memslots"] == 1 and row["rss_added_bytes"] == 0
        elif row["strategy"] == "dense":
            assert row["memslots"] == 2  # RAM + one run after the host bridge
        else:  # alias: one slot per MiB of window, plus RAM
            assert row["memslots"] == 1 + max(1, hole // MIB)


def test_qemu_section(bench):
    report, _ = bench
    qemu = report["qemu"]
    # The scan stops after `pages` all-ones reads; q35's present functions add a few.
    assert qemu["pages"] <= qemu["reads_per_scan"] < qemu["pages"] + 64
    for key in ("qemu_hole_us", "qemu_ram_us", "qemu_hole_cost_us", "qemu_boot_to_exit_s",
                "kvmhole_exit_boot_to_exit_s", "kvmhole_alias_boot_to_exit_s"):
        _consistent(qemu[key], qemu["reps"])
    strategies = report["access_cost"]["strategies"]
    assert qemu["versus_kvmhole"]["hole_cost_ratio_qemu_vs_kvmhole_exit"] == pytest.approx(
        qemu["qemu_hole_cost_us"]["median"] / strategies["exit"]["hole_cost_us"]["median"])


def test_probe_overhead_section(bench):
    report, _ = bench
    overhead = report["probe_overhead"]
    assert set(overhead["strategies"]) == {"exit", "alias"}
    _consistent(overhead["poll_ms"], 2 * overhead["reps"])
    for s, unit in [*((s, "s") for s in overhead["strategies"].values()),
                    (overhead["syscalls"], "ns")]:
        for runs in ("without", "with", "tracing_only"):
            _consistent(s[f"{runs}_{unit}"], overhead["reps"])
        # the median of the runs' paired ratios lies within what any pair could give
        for slowdown, runs in (("slowdown", "with"), ("tracing_only_slowdown", "tracing_only")):
            assert s[f"{runs}_{unit}"]["min"] / s[f"without_{unit}"]["max"] <= s[slowdown] \
                <= s[f"{runs}_{unit}"]["max"] / s[f"without_{unit}"]["min"]


def test_views_section(bench):
    report, _ = bench
    scrape = report["views"]["exporter"]
    assert scrape["guests"] == 64
    assert scrape["bytes"] > 64 * 1000  # every guest's series are in one scrape
    assert scrape["scrape_ms"]["n"] >= 1
    attack = report["views"]["exporter_under_attack"]
    assert attack["held"] == attack["trickling"] + attack["stalled"]  # scraped under attack
    assert attack["scrape_ms"]["n"] == scrape["scrape_ms"]["n"]
    tui = report["views"]["tui"]
    assert tui["guests"] == 64
    for key in ("apply_ms", "refresh_ms", "idle_repaint_ms"):
        assert tui[key]["n"] == scrape["scrape_ms"]["n"]
    assert tui["apply_ms"]["median"] <= tui["refresh_ms"]["median"]  # a part of the whole


def test_out_writes_report_and_plots(bench):
    report, out = bench
    assert json.loads((out / "report.json").read_text()) == report
    for name in ("access_cost.png", "memory.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
