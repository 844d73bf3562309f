"""kvmhole's command line: argument parsing and error reporting only.

Each subcommand lives in its own module and is imported only when used, so
`kvmhole run` does not pay for loading BPF or Textual.
"""

import importlib
import sys

import click

from kvmhole.errors import KvmholeError

COMMANDS = {
    "run": "kvmhole.cli.run:run",
    "bench": "kvmhole.cli.bench:bench",
    "demo": "kvmhole.cli.demo:demo",
    "trace": "kvmhole.cli.trace:trace",
    "doctor": "kvmhole.cli.doctor:doctor",
    "top": "kvmhole.cli.top:top",
    "export": "kvmhole.cli.export:export",
    "svmhost": "kvmhole.cli.svmhost:svmhost",
    "kernel": "kvmhole.cli.kernel:kernel",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kvmhole")
def cli():
    """Run and observe KVM guests with a PCI hole: reads served in the kernel
    versus exits to userspace."""


def main() -> None:
    try:
        cli.main(prog_name="kvmhole", standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except KvmholeError as error:
        click.echo(f"kvmhole: error: {error}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)

