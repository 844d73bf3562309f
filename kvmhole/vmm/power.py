"""Power-off and reset as a hardware-reduced ACPI machine has them: the FADT's sleep
control register (the kernel writes SLP_EN with \\_S5's sleep type to power off) and
its reset register. The VMM sees either write as the guest's end."""

from kvmhole.vmm.actions import Finish

SLEEP_CONTROL_PORT = 0x600
SLEEP_STATUS_PORT = 0x601  # always reads 0: no wake event is ever pending
RESET_PORT = 0x602
RESET_VALUE = 0x01
SLEEP_ENABLE = 0x20  # SLP_EN, bit 5 of the sleep control register (ACPI 6, 4.8.3.7)
SLEEP_TYPE_SHIFT, SLEEP_TYPE_MASK = 2, 0x7
S5_SLEEP_TYPE = 5  # the DSDT's \_S5 package: the sleep type that means "soft off"


# The machine's firmware at the reset vector, in real mode: what a CPU that was reset
# runs (Linux's last reboot methods jump there) asks for the reset the VMM ends on.
#   mov al, RESET_VALUE ; mov dx, RESET_PORT ; out dx, al ; 1: hlt ; jmp 1b
RESET_FIRMWARE = (bytes([0xB0, RESET_VALUE, 0xBA]) + RESET_PORT.to_bytes(2, "little")
                  + bytes([0xEE, 0xF4, 0xEB, 0xFD]))


class PowerControl:
    """The sleep control, sleep status and reset registers; `end` says how the guest
    ended ("poweroff" or "reset"), None while it runs."""

    ports = range(SLEEP_CONTROL_PORT, RESET_PORT + 1)

    def __init__(self):
        self.end: str | None = None

    def read(self, port: int, size: int) -> bytes:
        return bytes(size)

    def write(self, port: int, data: bytes):
        value = data[0]
        if port == SLEEP_CONTROL_PORT and value & SLEEP_ENABLE and \
                (value >> SLEEP_TYPE_SHIFT) & SLEEP_TYPE_MASK == S5_SLEEP_TYPE:
            self.end = "poweroff"
        elif port == RESET_PORT and value == RESET_VALUE:
            self.end = "reset"
        else:
            return None  # another sleep state (unsupported: ignored, as the tables say)
        return Finish(0)
