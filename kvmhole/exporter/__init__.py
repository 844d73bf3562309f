"""The Prometheus exporter: a thin reader of the per-guest snapshot.

A background poller asks a snapshot source (probes.Monitor.poll, or any callable
returning a Snapshot) for a new snapshot every interval; scrapes only read the
latest one, so a slow or busy Prometheus never makes the probes poll BPF.
"""
