"""Booting a stock Linux kernel: the bzImage's setup header, the zero page with its
e820 map, the ACPI tables built from the machine's PCI shape, and the initramfs."""
