"""kvmhole export: serve the probes' per-guest snapshot as Prometheus metrics."""

import ipaddress
import signal

import click

from kvmhole.cli.params import INTERVAL
from kvmhole.cli.watching import monitor_args, watch_options
from kvmhole.exporter.selfmetrics import SelfMetrics
from kvmhole.exporter.server import DEFAULT_LISTEN, listening, parse_listen
from kvmhole.exporter.store import LatestSnapshot


@click.command()
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT",
              help="Address to serve /metrics on (port 0 picks a free port).")
@click.option("--web.config.file", "web_config_file", default=None, metavar="FILE",
              type=click.Path(dir_okay=False),
              help="TLS and basic auth settings in the Prometheus exporters' web "
                   "configuration format (tls_server_config, basic_auth_users).")
@click.option("--interval", type=INTERVAL, default=1.0,
              show_default=True,
              help="Seconds between reads of the BPF maps; scrapes serve the latest read.")
@watch_options
def export(listen, web_config_file, interval, pids, hole_ranges, preset):
    """Serve per-guest hole reads and exits as Prometheus metrics until stopped.

    SIGHUP reloads the guest list (the registry of kvmhole guests) while the probes,
    their counts and the listening socket stay."""
    from kvmhole.exporter import webconfig

    parse_listen(listen)  # a bad address or web configuration fails before the probes load
    web = webconfig.load(web_config_file) if web_config_file else webconfig.WebConfig(None, None)
    monitor_kwargs = monitor_args(pids, hole_ranges, preset)
    # SIGTERM (systemd, kill) stops the exporter as Ctrl-C does: the with blocks
    # below then stop the poller, close the socket and detach the probes.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # A reload before the probes are up has nothing to reload; by default it would kill.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    store, self_metrics = LatestSnapshot(), SelfMetrics()
    try:
        # Bind first: a port in use is reported before the probes load.
        with listening(listen, store, self_metrics, web) as address:
            # bound: a listen address that fails is one error line, never after a warning
            if web.tls is None and not _loopback(parse_listen(listen)[0]):
                click.echo(f"kvmhole: warning: serving {listen} in plain HTTP: whoever "
                           "reaches the port reads every guest's name (give --web.config.file "
                           "a tls_server_config and basic_auth_users, or firewall the port)",
                           err=True)
            _serve(address, store, self_metrics, web, monitor_kwargs, interval)
    except KeyboardInterrupt:
        pass


def _serve(address, store, self_metrics, web, monitor_kwargs, interval) -> None:
    """Load the probes and serve from them until stopped (KeyboardInterrupt)."""
    from kvmhole.exporter.poller import Poller
    from kvmhole.probes import privileges
    from kvmhole.probes.monitor import Monitor  # loads bcc: only when exporting

    with Monitor(**monitor_kwargs) as monitor, \
            Poller(self_metrics.timed(monitor.poll), store, interval):
        # attached and bound: what is left to do needs far less than root
        click.echo(f"kvmhole export: {privileges.drop_all_but_kept()}", err=True)
        # Runs in this (main) thread between pauses, never inside a poll or scrape.
        signal.signal(signal.SIGHUP, lambda *_: _reload(monitor))
        click.echo(f"kvmhole export: serving {web.scheme}://{address}/metrics "
                   f"({monitor.plan.path} probe path); Ctrl-C to stop", err=True)
        while True:
            signal.pause()


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return host == "localhost"


def _reload(monitor) -> None:
    """SIGHUP: a reload that fails keeps the guest list the exporter had."""
    from kvmhole.probes import ProbeUnavailable

    try:
        monitor.rescan()
    except ProbeUnavailable as error:
        click.echo(f"kvmhole: warning: reloading the guest list failed: {error}", err=True)
