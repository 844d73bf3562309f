"""The selected guest in detail: rates over time, exits by reason, hole reads by
mechanism with the busiest buses and the cost estimate, round-trip latency."""

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from kvmhole.probes import paths
from kvmhole.probes.snapshot import GuestStats, Histogram
from kvmhole.text import printable
from kvmhole.tui.columns import count, seconds
from kvmhole.tui.history import SERIES, Point
from kvmhole.tui.plain_table import PlainTable
from kvmhole.tui.sparkline import Sparkline
from kvmhole.tui.statics import SizedStatic, update_line
from kvmhole.vmm.strategies import strategy_of

BAR_WIDTH = 20


def _holes(g: GuestStats) -> str:
    return ", ".join(f"{start:#x}-{end:#x}" for start, end in g.holes) or "none"


def title(g: GuestStats, probe_path: str) -> Text:
    text = Text.assemble((printable(g.name), "bold"), f"  pid {g.pid}  {printable(g.vmm)}/"
                         f"{printable(g.strategy)}  holes {_holes(g)}")
    if g.uuid is not None:
        text.append(f"  uuid {printable(g.uuid)}")
    if not g.alive:
        text.append("  exited", style="bold red")
    if g.kvm_stats:  # KVM's own count beside the probes', where the VMM lets us read it
        text.append(f"  KVM stats since the VM started: mmio_exits "
                    f"{count(g.kvm_stats['mmio_exits'])}, exits {count(g.kvm_stats['exits'])}",
                    style="dim")
    strategy = strategy_of(g.strategy)
    if paths.BY_NAME[probe_path].mapped_reads_unseen and strategy is not None \
            and strategy.maps_memory:
        # mapped hole pages fault once, then reads never leave the guest: no event at all
        text.append("  (hardware virtualisation: only first touches of mapped hole pages "
                    "are seen)", style="italic")
    return text


def reasons_table(g: GuestStats, rates: dict[str, float]) -> PlainTable:
    table = PlainTable("exit reason", "total", "/s", title="userspace exits by reason")
    for reason, n in sorted(g.userspace_exits.items(), key=lambda item: -item[1]):
        table.add_row(reason, count(n), count(rates.get(reason, 0.0)))
    if not g.userspace_exits:
        table.add_row("none", "", "")
    return table


def mechanisms_table(g: GuestStats) -> Group:
    """Absent-function reads per mechanism, the busiest buses, and what the reads cost:
    an estimate, so its inputs (exits x the median round trip) are on the screen too."""
    table = PlainTable("hole reads", "kernel", "exited", "exits", "fns",
                       title="absent-function config reads")
    for mechanism, c in g.config.items():
        table.add_row(mechanism, count(c.reads_in_kernel), count(c.read_exits), count(c.exits),
                      count(c.functions))
    lines = [table]
    if g.buses:
        lines.append(Text("buses " + ", ".join(f"{b.bus:02x}: {count(b.total)}"
                                               for b in g.buses[:3]), style="dim"))
    for e in g.cost_estimates().values():
        if e.exits and e.userspace_s is not None:
            kernel = "?" if e.kernel_s is None else seconds(e.kernel_s)
            lines.append(Text(f"est. {e.mechanism} {count(e.exits)}x{seconds(e.roundtrip_s)}"
                              f"={seconds(e.userspace_s)}, kernel {kernel}", style="italic"))
    return Group(*lines)


def latency_table(h: Histogram) -> PlainTable:
    """The non-empty span of the power-of-two buckets, one bar each."""
    table = PlainTable("round trip ≤", "exits", "",
                       title=f"p50 {seconds(h.quantile(0.5))} · p99 {seconds(h.quantile(0.99))} · "
                             f"mean {seconds(h.mean_s)}")
    used = [i for i, n in enumerate(h.counts) if n]
    if not used:
        table.add_row("no exits yet", "", "")
        return table
    peak = max(h.counts)
    bounds = (*h.bounds, float("inf"))
    for i in range(used[0], used[-1] + 1):
        label = "+Inf" if bounds[i] == float("inf") else seconds(bounds[i])
        bar = "█" * round(BAR_WIDTH * h.counts[i] / peak)
        table.add_row(label, count(h.counts[i]), Text(bar, style="green"))
    return table


class DetailPane(Vertical):
    DEFAULT_CSS = """
    DetailPane { height: 15; border-top: solid $primary; padding: 0 1; }
    DetailPane #detail-title { height: 1; }
    DetailPane Horizontal { height: 1fr; }
    DetailPane #rates { width: 1fr; padding-right: 2; }
    DetailPane #rates Static { height: 1; }
    DetailPane Sparkline { height: 2; margin-bottom: 1; }
    DetailPane #tables { width: 44; padding-right: 2; }
    DetailPane #reasons, DetailPane #config { height: auto; }
    DetailPane #latency { width: auto; min-width: 40; }
    """

    def compose(self) -> ComposeResult:
        yield Static("no guest selected", id="detail-title")
        with Horizontal():
            with Vertical(id="rates"):
                for column in SERIES:
                    yield Static(id=f"label-{column.key}")
                    yield Sparkline([], id=f"spark-{column.key}")
            with Vertical(id="tables"):
                yield SizedStatic(id="reasons")
                yield SizedStatic(id="config")
            yield SizedStatic(id="latency")

    def show(self, g: GuestStats | None, points: list[Point], probe_path: str) -> None:
        """Show guest g (None: nothing selected) with its history, oldest point first.

        Nothing here asks for a layout pass unless a size changes: at every poll a
        layout of the whole screen would cost more than the table. The one-line widgets
        have a fixed size; the tables are SizedStatics."""
        update_line(self.query_one("#detail-title", Static),
                    "no guest selected" if g is None else title(g, probe_path))
        for column in SERIES:
            spark = self.query_one(f"#spark-{column.key}", Sparkline)
            series = [p.rates[column.key] for p in points] if g else []
            # one point per cell: the newest at the right, older ones scroll off
            spark.data = series[-max(1, spark.size.width):]
            label = f"{column.label} {count(column.rate(g.rates))}" if g else ""
            if series:
                label += f" · max {count(max(series))}"
            update_line(self.query_one(f"#label-{column.key}", Static), label)
        if g is None:
            for static in self.query(SizedStatic):
                static.update("")
            return
        reasons = points[-1].reasons if points else {}
        self.query_one("#reasons", SizedStatic).show(reasons_table(g, reasons))
        self.query_one("#config", SizedStatic).show(mechanisms_table(g))
        self.query_one("#latency", SizedStatic).show(latency_table(g.roundtrip))
