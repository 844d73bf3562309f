"""Observing guests: BPF probes, guest discovery and the per-guest snapshot model."""

from kvmhole.errors import KvmholeError


class ProbeUnavailable(KvmholeError):
    """BPF cannot be used on this host; the message is the doctor's one-line advice."""
