"""kvmhole bench: the 2020 patch's experiment measured side by side in one run."""

import dataclasses
import json
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kvmhole.bench import report, runner
from kvmhole.errors import KvmholeError
from kvmhole.kernel.release import SERIES


class _Bar:
    """runner's progress interface over a rich progress bar on stderr."""

    def __init__(self, progress: Progress):
        self.progress, self.task = progress, None

    def start(self, name: str, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=self.progress.tasks[self.task].total)
        self.task = self.progress.add_task(name, total=total)

    def advance(self) -> None:
        self.progress.advance(self.task)


@click.command()
@click.option("--quick", is_flag=True,
              help="Fewer repetitions and sizes (about a third of the full run's time).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write report.json and PNG plots into this directory.")
@click.option("--svm", is_flag=True,
              help="Also run the access-cost and memory sections inside an SVM host "
                   "(kvmhole svmhost) whose KVM is the KVM_MEM_PCI_HOLE port, so native "
                   "runs beside the others: the hardware path, in TCG time; adds minutes.")
@click.option("--kernel", "series", type=click.Choice(SERIES), default=None,
              help="With --svm: the Debian kernel series the SVM host boots, with that "
                   "series' port [default: the series of linux-headers-amd64].")
@click.option("--scale", is_flag=True,
              help="Also run up to 500 idle guests (100 with --quick) beside two busy "
                   "ones under one monitor; adds minutes.")
def bench(quick, as_json, out, svm, series, scale):
    """Measure what each hole strategy costs, side by side, on this machine."""
    if series and not svm:
        raise click.UsageError("--kernel chooses the SVM host's kernel: it needs --svm")
    if out is not None:  # before the run: a bad --out must not cost a whole benchmark
        _writable(out)
    plan = dataclasses.replace(runner.QUICK if quick else runner.FULL, svm=svm,
                               svm_kernel=series, scale=scale)
    stderr = Console(stderr=True)
    columns = (TextColumn("{task.description:>14}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=stderr, transient=False) as progress:
        result = runner.run(plan, _Bar(progress))
    if out is not None:
        (out / "report.json").write_text(json.dumps(result, indent=2))
        for path in report.write_plots(result, out):
            stderr.print(f"wrote {path}")
    if as_json:
        click.echo(json.dumps(result))
    else:
        report.print_tables(result, Console())
    failed = [f"{name}: {result[name]['error']}" for name in runner.OPTIONAL
              if "error" in result.get(name, {})]
    if failed:  # the rest was measured and written; say what is missing, and fail
        raise KvmholeError("; ".join(failed))


def _writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".kvmhole-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise click.BadParameter(f"cannot write into {out}: {error.strerror}",
                                 param_hint="--out") from None
