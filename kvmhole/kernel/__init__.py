"""The KVM_MEM_PCI_HOLE port (kernel/pci-hole/) built as out-of-tree kvm modules for
Debian 12's 6.1 kernel, checked to load where the stock modules do."""
