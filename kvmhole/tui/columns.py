"""The guest table's columns, shared by the live table and the printed snapshot.

Each column knows how to show a guest and how to sort it, so the two views can
not disagree and sorting works on numbers, not on formatted text.
"""

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from kvmhole.probes.snapshot import GuestStats, Rates, Snapshot
from kvmhole.text import printable


def count(value: float) -> str:
    """A rate or count in at most 6 characters: 950, 12.3k, 4.1M."""
    for limit, scale, suffix in ((1e3, 1, ""), (1e6, 1e3, "k"), (1e9, 1e6, "M")):
        if abs(value) < limit:
            return f"{value / scale:.0f}" if not suffix else f"{value / scale:.1f}{suffix}"
    return f"{value / 1e9:.1f}G"


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    for limit, scale, unit in ((1e-6, 1e9, "ns"), (1e-3, 1e6, "µs"), (1.0, 1e3, "ms")):
        if value < limit:
            return f"{value * scale:.1f} {unit}"
    return f"{value:.2f} s"


def share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int
    cell: Callable[[GuestStats], str]
    sort: Callable[[GuestStats], Any]
    numeric: bool = True  # right-aligned, and sorted largest first when chosen
    rate: Callable[[Rates], float] | None = None  # a rate column: top plots its history
    help: str = ""  # what the column means, for top's help screen (numbers only)


def _rate_column(key: str, label: str, width: int, rate: Callable[[Rates], float],
                 help: str) -> Column:
    return Column(key, label, width, lambda g: count(rate(g.rates)), lambda g: rate(g.rates),
                  rate=rate, help=help)


def _kernel_p50(g: GuestStats) -> float | None:
    """Median in-kernel handling time of a hole fault (VMX/SVM hosts only)."""
    return g.kernel_time.quantile(0.5) if g.kernel_time is not None else None


def _name(g: GuestStats) -> str:
    return printable(g.name) if g.alive else f"{printable(g.name)} (exited)"


COLUMNS = (
    Column("name", "guest", 20, _name, lambda g: g.name.lower(), numeric=False),
    Column("pid", "pid", 7, lambda g: str(g.pid), lambda g: g.pid),
    Column("vmm", "VMM", 7, lambda g: printable(g.vmm), lambda g: g.vmm, numeric=False),
    Column("strategy", "strategy", 8, lambda g: printable(g.strategy), lambda g: g.strategy,
           numeric=False),
    _rate_column("kernel", "in-kernel/s", 11, attrgetter("hole_reads_in_kernel"),
                 "hole accesses KVM served itself, no exit to the VMM: reads where KVM "
                 "emulates them, faults on VMX/SVM (a mapped page faults once)"),
    _rate_column("exits", "hole exits/s", 12, attrgetter("hole_exits_userspace"),
                 "hole reads and writes that exited to the VMM in userspace"),
    _rate_column("other", "other exits/s", 13, attrgetter("other_exits"),
                 "every other userspace exit: device MMIO, port I/O, ..."),
    Column("share", "in kernel", 9, lambda g: share(g.kernel_share),
           lambda g: -1.0 if g.kernel_share is None else g.kernel_share,
           help="share of hole reads kept in the kernel since the monitor started"),
    Column("saved", "time saved", 10, lambda g: seconds(g.time_saved_s),
           lambda g: g.time_saved_s or 0.0,
           help="in-kernel hole reads x this guest's median userspace round trip"),
    Column("ktime", "kernel p50", 10, lambda g: seconds(_kernel_p50(g)),
           lambda g: _kernel_p50(g) or 0.0,
           help="median time KVM took to serve a hole fault (VMX/SVM hosts only; - "
                "where the host cannot time it)"),
)
COLUMN = {c.key: c for c in COLUMNS}


def ordered(guests: list[GuestStats], column: Column, reverse: bool) -> list[GuestStats]:
    """Guests sorted by column; ties stay in name order (Python's sort is stable)."""
    by_name = sorted(guests, key=lambda g: (g.name.lower(), g.pid))
    return sorted(by_name, key=column.sort, reverse=reverse)


def matches(g: GuestStats, text: str) -> bool:
    """The filter: a case-insensitive substring of the name, pid, VMM or strategy."""
    needle = text.strip().lower()
    return not needle or any(needle in field.lower()
                             for field in (g.name, str(g.pid), g.vmm, g.strategy))


def _fit(text: str, column: Column) -> str:
    text = text if len(text) <= column.width else text[: column.width - 1] + "…"
    return text.rjust(column.width) if column.numeric else text.ljust(column.width)


def text_table(snapshot: Snapshot) -> str:
    """The snapshot as plain text, for when stdout is not a terminal."""
    lines = [f"kvmhole top: {len(snapshot.guests)} guests over {snapshot.interval_s:.1f} s "
             f"(probe path {snapshot.probe.path}; {snapshot.probe.kernel_counts_note})",
             "  ".join(_fit(c.label, c) for c in COLUMNS).rstrip()]
    for g in ordered(snapshot.guests, COLUMN["name"], reverse=False):
        lines.append("  ".join(_fit(c.cell(g), c) for c in COLUMNS).rstrip())
    return "\n".join(lines)
