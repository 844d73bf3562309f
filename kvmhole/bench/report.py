"""The benchmark report as terminal tables (rich) and PNG plots (matplotlib)."""

from pathlib import Path

from rich.console import Console
from rich.table import Table


def _us(s: dict) -> str:
    return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"


def print_tables(report: dict, console: Console) -> None:
    h = report["host"]
    console.print(f"[bold]host[/]: {h['cpu']}, {h['cpus']} CPUs, kernel {h['kernel']}, "
                  f"virtualization {h['virtualization']}, native hole: {h['native_hole']}")
    cost = report["access_cost"]
    table = Table(title=f"hole read cost, ecam-scan {cost['pages']} reads x {cost['reps']} runs "
                        "(median, min-max, µs)")
    for column in ("strategy", "per read", "RAM baseline per read", "hole cost per read",
                   "userspace exits per read"):
        table.add_column(column, justify="right")
    for name, s in cost["strategies"].items():
        table.add_row(name, _us(s["per_read_us"]), _us(s["ram_per_read_us"]),
                      _us(s["hole_cost_us"]), f"{s['userspace_exits_per_read']:.2f}")
    console.print(table)
    head = cost["headline"]
    console.print(
        f"exit vs {head['in_kernel_strategy']}: {head['per_read_ratio_exit_vs_in_kernel']:.2f}x "
        f"per read; Python's share of one exit: {head['python_share_of_exit_us']:.2f} µs")
    mem = Table(title="host memory as the hole grows (added over the exit strategy)")
    for column in ("strategy", "hole", "memslots", "RSS", "RSS added", "USS added"):
        mem.add_column(column, justify="right")
    for row in report["memory"]:
        mem.add_row(row["strategy"], f"{row['hole_bytes'] >> 20} MiB", str(row["memslots"]),
                    f"{row['rss_bytes'] / 1e6:.1f} MB", f"{row['rss_added_bytes'] / 1e6:.1f} MB",
                    f"{row['uss_added_bytes'] / 1e6:.1f} MB")
    console.print(mem)


def write_plots(report: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []

    cost = report["access_cost"]["strategies"]
    names = list(cost)
    medians = [cost[n]["per_read_us"]["median"] for n in names]
    errors = [[m - cost[n]["per_read_us"]["min"] for n, m in zip(names, medians, strict=True)],
              [cost[n]["per_read_us"]["max"] - m for n, m in zip(names, medians, strict=True)]]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(names, medians, yerr=errors, capsize=4, color="#4c72b0")
    ax.set_ylabel("µs per hole read (guest loop included)")
    ax.set_title("ecam-scan: cost of one hole read by strategy")
    fig.tight_layout()
    path = out / "access_cost.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)

    fig, ax = plt.subplots(figsize=(7, 4))
    for strategy in ("alias", "dense"):
        rows = [r for r in report["memory"] if r["strategy"] == strategy]
        ax.plot([r["hole_bytes"] >> 20 for r in rows], [r["rss_added_bytes"] / 1e6 for r in rows],
                marker="o", label=f"{strategy}: RSS added")
    ax.set_xscale("log", base=2)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_xlabel("hole size (MiB)")
    ax.set_ylabel("MB over the exit strategy")
    ax.set_title("host memory cost of backing the hole")
    ax.legend()
    fig.tight_layout()
    path = out / "memory.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
    return written
