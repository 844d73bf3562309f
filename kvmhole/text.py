"""Text from outside kvmhole (guest names from a registry file or QEMU's -name, file
names in the registry directory, VMM program names) as every view prints it.

Whoever can start a VMM or write a registry file chooses these strings, and they reach
terminals (top, trace, stderr warnings, `curl /metrics`) and Prometheus labels. One
function makes them harmless, the same way everywhere: control characters, escape
sequences, newlines and other unprintable characters are written as Python escapes
(ESC as \\x1b), so a name shown by `top` is the label Prometheus stores.
"""

MAX_NAME = 64  # characters of a guest name shown: Prometheus may limit a label's length
CUT_MARK = "…"  # ends a name that was cut to MAX_NAME


def printable(text: str) -> str:
    """`text` with every unprintable character escaped."""
    if text.isprintable():  # the usual case, checked at C speed: views ask every poll
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def guest_name(text: str) -> str:
    """A guest name as views show it: printable, and at most MAX_NAME characters, the
    last of them CUT_MARK when it was longer."""
    shown = printable(text)
    return shown if len(shown) <= MAX_NAME else shown[:MAX_NAME - 1] + CUT_MARK
