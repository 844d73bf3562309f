"""Observing guests: BPF probes, guest discovery and the per-guest snapshot model."""
