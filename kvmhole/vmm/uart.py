"""A 16550A UART at COM1, transmit only: what Linux's 8250 driver needs to find it
(scratch, loopback and FIFO checks) and to send through it by interrupt. Every byte
the guest sends goes to `sink` at once; lines that start with REPORT_MARKER are kept
for the run's result."""

COM1_PORT, COM1_IRQ = 0x3F8, 4

# Register offsets from the base port (DLAB = LCR bit 7 switches 0/1 to the divisor).
THR, IER, IIR, LCR, MCR, LSR, MSR, SCR = range(8)
IER_THRI = 0x02  # interrupt when the transmit holding register is empty
IIR_NO_INT, IIR_THRI, IIR_FIFO_ENABLED = 0x01, 0x02, 0xC0
FCR_ENABLE_FIFO = 0x01
LCR_DLAB = 0x80
MCR_LOOP = 0x10
LSR_THRE_TEMT = 0x60  # sent at once: the transmitter is always empty
MSR_CONNECTED = 0xB0  # DCD, DSR, CTS: a terminal is there
REPORT_MARKER = b"kvmhole-linux:"


def _loopback_msr(mcr: int) -> int:
    """Loopback mode wires DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD (the driver tests it)."""
    return (mcr & 1) << 5 | (mcr & 2) << 3 | (mcr & 4) << 4 | (mcr & 8) << 4


class Uart16550:
    def __init__(self, sink, base: int = COM1_PORT):
        self.ports = range(base, base + 8)
        self.base, self.sink = base, sink
        self.set_irq = lambda level: None  # the machine connects the interrupt line
        self.regs = bytearray(8)  # as last written: IER, LCR, MCR, SCR, FCR in IIR's slot
        self.divisor = bytearray(2)
        self.thr_interrupt = False  # THRE is pending until IIR reports it or THR is written
        self.irq_level = False
        self.sent = 0
        self.line = bytearray()
        self.report: list[str] = []

    def read(self, port: int, size: int) -> bytes:
        reg = port - self.base
        if self.regs[LCR] & LCR_DLAB and reg in (THR, IER):
            return bytes([self.divisor[reg]])
        if reg == IIR:
            value = self._iir()
            if value & 0x0F == IIR_THRI:
                self.thr_interrupt = False  # reading IIR acknowledges THRE
                self._update_irq()
            return bytes([value])
        value = {THR: 0, LSR: LSR_THRE_TEMT,
                 MSR: _loopback_msr(self.regs[MCR]) if self.regs[MCR] & MCR_LOOP
                 else MSR_CONNECTED}.get(reg, self.regs[reg])
        return bytes([value])

    def write(self, port: int, data: bytes):
        reg, value = port - self.base, data[0]
        if self.regs[LCR] & LCR_DLAB and reg in (THR, IER):
            self.divisor[reg] = value
        elif reg == THR:
            self._send(value)
            self.thr_interrupt = True  # sent at once: empty again
        elif reg == IER:
            if value & IER_THRI and not self.regs[IER] & IER_THRI:
                self.thr_interrupt = True  # enabling THRI while empty raises it
            self.regs[IER] = value & 0x0F
        elif reg != LSR and reg != MSR:
            self.regs[reg] = value
        self._update_irq()
        return None

    def _iir(self) -> int:
        fifo = IIR_FIFO_ENABLED if self.regs[IIR] & FCR_ENABLE_FIFO else 0
        pending = self.thr_interrupt and self.regs[IER] & IER_THRI
        return fifo | (IIR_THRI if pending else IIR_NO_INT)

    def _update_irq(self) -> None:
        level = bool(self.thr_interrupt and self.regs[IER] & IER_THRI)
        if level != self.irq_level:
            self.irq_level = level
            self.set_irq(level)

    def _send(self, byte: int) -> None:
        if self.regs[MCR] & MCR_LOOP:
            return  # loopback: nothing leaves the chip
        self.sent += 1
        self.sink.write(bytes([byte]))
        if byte == 0x0A:
            self.sink.flush()
            if self.line.startswith(REPORT_MARKER):
                self.report.append(self.line.decode(errors="replace").rstrip("\r"))
            self.line.clear()
        else:
            self.line.append(byte)
