"""kvmhole top: a Textual view of the per-guest snapshot (kvmhole.probes.snapshot)."""
