"""kvmhole: run and observe KVM guests with a PCI hole."""

__version__ = "0.1.0"
