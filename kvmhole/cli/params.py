"""Click parameter types for addresses and sizes."""

import re

import click

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


class Address(click.ParamType):
    name = "ADDR"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return int(str(value), 0)
        except ValueError:
            self.fail(f"{value!r} is not an address (e.g. 0xb0000000)", param, ctx)


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
