/*
 * kvmhole's DSDT, filled in from the machine's PCI shape (the dollar names) and compiled by
 * iasl (kvmhole/vmm/boot/dsdt.py). What Linux reads here:
 * - \_S5: the sleep type it writes to the FADT's sleep control register to power off;
 * - PCI0: the PCIe host bridge, its bus range and ECAM base (_CBA);
 * - MRES: a motherboard resource over the ECAM window, which is what makes Linux
 *   trust the MCFG's window late in boot (arch/x86/pci/mmconfig-shared.c);
 * - COM1: the 16550 and its ISA interrupt.
 */
DefinitionBlock ("", "DSDT", 2, "KVMHOL", "KVMHOLE ", 1)
{
    Name (_S5, Package () { $s5_type, Zero })

    Scope (\_SB)
    {
        Device (PCI0)
        {
            Name (_HID, EisaId ("PNP0A08"))
            Name (_CID, EisaId ("PNP0A03"))
            Name (_UID, Zero)
            Name (_SEG, Zero)
            Name (_BBN, Zero)
            Name (_CBA, $ecam_base)
            Name (_CRS, ResourceTemplate ()
            {
                WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,
                    0x0000, 0x0000, $last_bus, 0x0000, $buses)
            })
        }

        Device (MRES)
        {
            Name (_HID, EisaId ("PNP0C02"))
            Name (_UID, One)
            Name (_CRS, ResourceTemplate ()
            {
                Memory32Fixed (ReadOnly, $ecam_base, $ecam_size)
            })
        }

        Device (COM1)
        {
            Name (_HID, EisaId ("PNP0501"))
            Name (_UID, One)
            Name (_CRS, ResourceTemplate ()
            {
                IO (Decode16, $com1_port, $com1_port, 0x08, 0x08)
                IRQNoFlags () { $com1_irq }
            })
        }
    }
}
