"""The benchmark report as terminal tables (rich) and PNG plots (matplotlib)."""

from pathlib import Path

from rich.console import Console
from rich.table import Table

from kvmhole.vmm.strategies import STRATEGIES


def _spread(s: dict, scale: float = 1.0) -> str:
    """'median (min-max)' of a stats.spread() summary, times `scale`."""
    return f"{s['median'] * scale:.2f} ({s['min'] * scale:.2f}-{s['max'] * scale:.2f})"


def print_tables(report: dict, console: Console) -> None:
    h = report["host"]
    console.print(f"[bold]host[/]: {h['cpu']}, {h['cpus']} CPUs, kernel {h['kernel']}, "
                  f"virtualization {h['virtualization']}, native hole: {h['native_hole']}")
    _print_cost(report["access_cost"], "", console)
    _print_type1(report["type1"], report["access_cost"], console)
    _print_memory(report["memory"], "", console)
    _print_qemu(report["qemu"], console)
    _print_probe_overhead(report["probe_overhead"], console)
    scrape = report["views"]["exporter"]
    console.print(f"exporter, {scrape['guests']} guests: the first /metrics scrape after a "
                  f"poll {_spread(scrape['scrape_ms'])} ms, another before the next poll "
                  f"{_spread(scrape['scrape_again_ms'])} ms, {scrape['bytes'] / 1e3:.0f} kB")
    attack = report["views"]["exporter_under_attack"]
    console.print(f"exporter, {attack['guests']} guests, under attack ({attack['trickling']} "
                  f"clients trickling headers, {attack['stalled']} stalled connections, "
                  f"{attack['held']} still held at the end): a scrape "
                  f"{_spread(attack['scrape_ms'])} ms")
    tui = report["views"]["tui"]
    console.print(f"kvmhole top, {tui['guests']} guests, CPU time: taking a snapshot "
                  f"{_spread(tui['apply_ms'])} ms, snapshot and repaint "
                  f"{_spread(tui['refresh_ms'])} ms, idle repaint cycle "
                  f"{_spread(tui['idle_repaint_ms'])} ms")
    for name, show in (("scale", _print_scale), ("svm", _print_svm)):
        if "error" in report.get(name, {}):
            console.print(f"[bold red]{name}: not measured[/]: {report[name]['error']}")
        elif name in report:
            show(report[name], console)


def _print_memory(rows: list[dict], where: str, console: Console) -> None:
    mem = Table(title=f"host memory as the hole grows{where} (added over the exit strategy)")
    for column in ("strategy", "hole", "memslots", "RSS", "RSS added", "USS added"):
        mem.add_column(column, justify="right")
    for row in rows:
        mem.add_row(row["strategy"], f"{row['hole_bytes'] >> 20} MiB", str(row["memslots"]),
                    f"{row['rss_bytes'] / 1e6:.1f} MB", f"{row['rss_added_bytes'] / 1e6:.1f} MB",
                    f"{row['uss_added_bytes'] / 1e6:.1f} MB")
    console.print(mem)


def _print_cost(cost: dict, where: str, console: Console) -> None:
    table = Table(title=f"hole read cost{where}, ecam-scan {cost['pages']} reads x "
                        f"{cost['reps']} runs (median, min-max, µs)")
    for column in ("strategy", "per read", "RAM baseline per read", "hole cost per read",
                   "userspace exits per read"):
        table.add_column(column, justify="right")
    for name, s in cost["strategies"].items():
        table.add_row(name, _spread(s["per_read_us"]), _spread(s["ram_per_read_us"]),
                      _spread(s["hole_cost_us"]), f"{s['userspace_exits_per_read']:.2f}")
    console.print(table)
    head = cost["headline"]
    console.print(
        f"exit vs {head['in_kernel_strategy']}: {_times(head['per_read_ratio_exit_vs_in_kernel'])} "
        f"per read, {_times(head['hole_cost_ratio_exit_vs_in_kernel'])} hole cost; Python's "
        f"share of one exit: {head['python_share_of_exit_us']:.2f} µs")


def _times(ratio: float | None) -> str:
    """A ratio, or why there is none (stats.ratio gives None for a cost at or below 0)."""
    return "n/a (cost within noise)" if ratio is None else f"{ratio:.2f}x"


def _print_scale(scale: dict, console: Console) -> None:
    table = Table(title=f"one monitor, idle guests plus two busy ones ({scale['busy_pages']} "
                        "hole reads each; median, min-max)")
    for column in ("idle guests", "busy counted exactly", "all idle listed", "poll, ms",
                   "scrape, ms", "scrape, kB", "top refresh, CPU ms", "monitor RSS, MB",
                   "monitor CPU"):
        table.add_column(column, justify="right")
    for row in scale["rows"]:
        table.add_row(str(row["idle_guests"]), "yes" if row["busy_exact"] else "NO",
                      "yes" if row["idle_all_listed"] else "NO", _spread(row["poll_ms"]),
                      _spread(row["exporter"]["scrape_ms"]),
                      f"{row['exporter']['bytes'] / 1e3:.0f}", _spread(row["tui"]["refresh_ms"]),
                      f"{row['monitor_rss_bytes'] / 1e6:.0f}",
                      f"{row['monitor_cpu_share'] * 100:.1f}%")
    console.print(table)
    capacity = scale["map_capacity"]
    console.print(f"BPF maps hold {capacity['guests']} guests and {capacity['vcpus']} vCPU "
                  "threads at once")


def _print_type1(type1: dict, cost: dict, console: Console) -> None:
    table = Table(title=f"type-1 config reads (port 0xCF8/0xCFC) by hole strategy, "
                        f"{type1['pages']} reads x {type1['reps']} runs (median, min-max, µs)")
    for column in ("strategy", "type-1 per read", "userspace exits per read",
                   "ECAM per read (above)"):
        table.add_column(column, justify="right")
    for name, s in type1["strategies"].items():
        ecam = cost["strategies"].get(name)
        table.add_row(name, _spread(s["per_read_us"]), f"{s['userspace_exits_per_read']:.2f}",
                      _spread(ecam["per_read_us"]) if ecam else "-")
    console.print(table)
    console.print("[italic]no strategy serves type-1 reads in the kernel: port I/O has no "
                  "memslot and always exits to the VMM[/]")


def _print_svm(svm: dict, console: Console) -> None:
    h = svm["host"]
    _print_cost(svm["access_cost"], f" in the SVM host (kernel {h['kernel']}, "
                f"{h['virtualization']})", console)
    if "memory" in svm:
        _print_memory(svm["memory"], " in the SVM host", console)
    console.print(f"[italic]{svm['caveat']}[/]")
    if "linux_boot" in svm:
        _print_linux_boot(svm["linux_boot"], console)


def _print_linux_boot(rows: dict, console: Console) -> None:
    table = Table(title="a stock Linux boot (QEMU q35, SeaBIOS, kvm_amd in the SVM host): "
                        "config reads of absent functions")
    for column in ("boot", "type-1 reads", "type-1 exits", "type-1 functions", "ECAM reads",
                   "est. userspace time", "boot s (TCG)"):
        table.add_column(column, justify="right")
    for label, row in rows.items():
        t1, ecam = row["config"]["type1"], row["config"]["ecam"]
        cost = row["cost_estimates"]["type1"]["userspace_s"]
        table.add_row(label, str(t1["read_exits"] + t1["reads_in_kernel"]), str(t1["exits"]),
                      str(t1["functions"]), str(ecam["read_exits"] + ecam["reads_in_kernel"]),
                      "-" if cost is None else f"{cost * 1e3:.0f} ms", f"{row['boot_s']:.1f}")
    console.print(table)
    console.print("[italic]est. userspace time: type-1 exits x the median userspace round trip "
                  "(an estimate; TCG times)[/]")


def _print_qemu(qemu: dict, console: Console) -> None:
    table = Table(title=f"QEMU q35 -accel kvm, the same scan ({qemu['reads_per_scan']} ECAM "
                        f"reads x {qemu['reps']} runs, median, min-max)")
    for column in ("measure", "value"):
        table.add_column(column, justify="right")
    table.add_row("QEMU per read, µs", _spread(qemu["qemu_hole_us"]))
    table.add_row("QEMU RAM baseline per read, µs", _spread(qemu["qemu_ram_us"]))
    table.add_row("QEMU hole cost per read, µs", _spread(qemu["qemu_hole_cost_us"]))
    table.add_row("QEMU boot to exit, s", _spread(qemu["qemu_boot_to_exit_s"]))
    table.add_row("kvmhole run --hole exit, boot to exit, s",
                  _spread(qemu["kvmhole_exit_boot_to_exit_s"]))
    table.add_row("kvmhole run --hole alias, boot to exit, s",
                  _spread(qemu["kvmhole_alias_boot_to_exit_s"]))
    console.print(table)
    versus = qemu["versus_kvmhole"]
    console.print(f"QEMU's hole cost / kvmhole exit's: "
                  f"{versus['hole_cost_ratio_qemu_vs_kvmhole_exit']:.2f}x; QEMU per read / "
                  f"kvmhole in-kernel per read: {versus['per_read_ratio_qemu_vs_in_kernel']:.2f}x")


def _print_probe_overhead(overhead: dict, console: Console) -> None:
    table = Table(title=f"probe overhead, ecam-scan {overhead['pages']} reads x "
                        f"{overhead['reps']} runs (median, min-max, ms)")
    for column in ("strategy", "without monitor", "with monitor", "slowdown",
                   "added per access", "empty programs", "their slowdown", "their added"):
        table.add_column(column, justify="right")
    for name, s in overhead["strategies"].items():
        table.add_row(name, _spread(s["without_s"], 1e3), _spread(s["with_s"], 1e3),
                      f"{s['slowdown']:.2f}x", f"{s['added_us_per_access']:.2f} µs",
                      _spread(s["tracing_only_s"], 1e3), f"{s['tracing_only_slowdown']:.2f}x",
                      f"{s['tracing_only_added_us_per_access']:.2f} µs")
    console.print(table)
    console.print(f"loading the probes: {overhead['load_s']:.2f} s; one poll: "
                  f"{_spread(overhead['poll_ms'])} ms; empty programs: the probes' events "
                  "traced with nothing done, the floor under any probe's overhead")
    calls = overhead["syscalls"]
    console.print(f"another process's syscalls (dd, 1-byte blocks), ns each: "
                  f"{_spread(calls['without_ns'])} without the probes, "
                  f"{_spread(calls['with_ns'])} with them ({calls['slowdown']:.2f}x), "
                  f"{_spread(calls['tracing_only_ns'])} with the empty programs "
                  f"({calls['tracing_only_slowdown']:.2f}x)")


def write_plots(report: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []

    per_read = {name: s["per_read_us"] for name, s in report["access_cost"]["strategies"].items()}
    per_read["QEMU q35"] = report["qemu"]["qemu_hole_us"]
    names = list(per_read)
    medians = [per_read[n]["median"] for n in names]
    errors = [[m - per_read[n]["min"] for n, m in zip(names, medians, strict=True)],
              [per_read[n]["max"] - m for n, m in zip(names, medians, strict=True)]]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(names, medians, yerr=errors, capsize=4, color="#4c72b0")
    baseline = report["access_cost"]["strategies"]["exit"]["ram_per_read_us"]["median"]
    ax.axhline(baseline, color="#dd8452", linestyle="--",
               label="same loop over RAM (the guest's own cost)")
    ax.legend(loc="upper center")
    ax.set_ylabel("µs per hole read (guest loop included)")
    ax.set_title("ecam-scan: cost of one hole read by strategy")
    written.append(_save(fig, out / "access_cost.png", plt))

    fig, ax = plt.subplots(figsize=(7, 4))
    for strategy in (name for name, s in STRATEGIES.items() if s.maps_memory):
        rows = [r for r in report["memory"] if r["strategy"] == strategy]
        ax.plot([r["hole_bytes"] >> 20 for r in rows], [r["rss_added_bytes"] / 1e6 for r in rows],
                marker="o", label=f"{strategy}: RSS added")
    ax.set_xscale("log", base=2)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylim(bottom=0)  # RSS added is never meaningfully negative: no empty half
    ax.set_xlabel("hole size (MiB)")
    ax.set_ylabel("MB over the exit strategy")
    ax.set_title("host memory cost of backing the hole")
    ax.legend()
    written.append(_save(fig, out / "memory.png", plt))
    if "rows" in report.get("scale", {}):
        written.append(_plot_scale(report["scale"]["rows"], out, plt))
    return written


def _plot_scale(rows: list[dict], out: Path, plt) -> Path:
    """What one monitor and its views cost as idle guests are added: the growth."""
    guests = [r["idle_guests"] for r in rows]
    fig, (times, memory) = plt.subplots(1, 2, figsize=(10, 4))
    for label, values in (("one poll", [r["poll_ms"] for r in rows]),
                          ("/metrics scrape", [r["exporter"]["scrape_ms"] for r in rows]),
                          ("top refresh (CPU)", [r["tui"]["refresh_ms"] for r in rows])):
        times.plot(guests, [v["median"] for v in values], marker="o", label=label)
    times.set_xlabel("idle guests (+2 busy)")
    times.set_ylabel("ms, median")
    times.set_title("monitor and views, per round")
    times.legend()
    memory.plot(guests, [r["monitor_rss_bytes"] / 1e6 for r in rows], marker="o",
                label="monitor RSS (MB)")
    memory.plot(guests, [r["monitor_cpu_share"] * 100 for r in rows], marker="o",
                label="monitor CPU at 1 poll/s (%)")
    memory.set_xlabel("idle guests (+2 busy)")
    memory.set_title("the monitor's footprint")
    memory.legend()
    return _save(fig, out / "scale.png", plt)


def _save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
