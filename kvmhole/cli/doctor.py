"""kvmhole doctor: what this host supports for the probes, what is missing, how to fix it."""

import sys

import click

from kvmhole.probes import ProbeUnavailable


@click.command()
def doctor():
    """Check root, /dev/kvm, tracefs, kernel headers, bcc and lockdown, then run the
    probe self-test to see which KVM tracepoints fire here."""
    from kvmhole.probes.checks import host_checks
    from kvmhole.probes.plan import probe_plan

    checks = host_checks()
    for check in checks:
        mark = "ok" if check.ok else ("MISSING" if check.required else "warning")
        click.echo(f"{mark:8} {check.name:15} {check.detail}")
    failed = [c.name for c in checks if c.required and not c.ok]
    if failed:
        click.echo(f"kvmhole: error: the probes cannot run here: fix {', '.join(failed)} "
                   "(see above)", err=True)
        sys.exit(1)
    try:
        plan = probe_plan(refresh=True)
    except ProbeUnavailable as error:
        click.echo(f"kvmhole: error: probe self-test: {error}", err=True)
        sys.exit(1)
    for tracepoint, hits in plan.fired.items():
        click.echo(f"{'fires' if hits else 'silent':8} {tracepoint:37} {hits} hits in the "
                   "self-test")
    path = plan.probe_path
    click.echo(f"{'ok':8} {'probe path':15} {path.name}: hole reads in kernel from {path.how}"
               + (f": {path.limitation}" if path.limitation else ""))
    # the monitor's own program, built for that path: a verifier that rejects it, or a
    # package that lacks it, would otherwise first show in trace, top or export
    from kvmhole.probes.bpf import SOURCE, ProbeProgram

    try:
        ProbeProgram(plan, auto_track=True, events=False).close()
    except ProbeUnavailable as error:
        click.echo(f"kvmhole: error: the probes do not load: {error}", err=True)
        sys.exit(1)
    click.echo(f"{'ok':8} {'probes':15} {SOURCE} loads ({plan.path} build)")
