"""The KVM_MEM_PCI_HOLE port (kernel/pci-hole/) built as out-of-tree kvm modules for
Debian 12's kernel series (6.1, 6.12), checked to load where the stock modules do."""
