"""Click parameter types for addresses, sizes and durations: each refuses what it
cannot mean (negative, nan, inf, beyond what the kernel takes) with a usage error."""

import math
import re

import click

from kvmhole.vmm import registry

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


ADDRESS_LIMIT = 1 << 64  # guest-physical addresses are u64 in KVM and in the BPF maps


class Address(click.ParamType):
    name = "ADDR"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            address = int(str(value), 0)
        except ValueError:
            self.fail(f"{value!r} is not an address (e.g. 0xb0000000)", param, ctx)
        if not 0 <= address < ADDRESS_LIMIT:
            self.fail(f"{value!r} is not a 64-bit guest-physical address", param, ctx)
        return address


class Seconds(click.ParamType):
    """A finite, positive number of seconds, at most `maximum`."""

    name = "SECONDS"

    def __init__(self, maximum: float):
        self.maximum = maximum

    def convert(self, value, param, ctx):
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not (math.isfinite(seconds) and 0 < seconds <= self.maximum):
            self.fail(f"{value!r} is not a number of seconds in (0, {self.maximum:g}]",
                      param, ctx)
        return seconds


class Size(click.ParamType):
    """Bytes, with an optional K/M/G (binary) suffix: 4096, 64K, 256M, 0x1000."""

    name = "SIZE"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"(0x[0-9a-f]+|\d+)\s*([kmg]?)(?:i?b)?", str(value).strip().lower())
        if not match:
            self.fail(f"{value!r} is not a size (e.g. 256M, 64K, 4096)", param, ctx)
        return int(match.group(1), 0) * _UNITS[match.group(2)]


ADDRESS = Address()
SIZE = Size()
# A monitor polls at least as often as the registry keeps an exited guest's entry:
# a longer interval would lose short guests' names.
INTERVAL = Seconds(registry.GRACE_S)
DURATION = Seconds(1e7)  # ~4 months: beyond it, timers overflow
PID = click.IntRange(1, registry.MAX_PID)
