"""What the kernel checks before it loads a module: its vermagic and the CRC of every
symbol it imports. Read straight from the ELF file (no kmod on the host)."""

import struct
from pathlib import Path

# struct modversion_info on 64-bit: unsigned long crc; char name[64 - 8]
_VERSION_ENTRY = struct.Struct("<Q56s")


def _section(path: Path, name: str) -> bytes:
    data = path.read_bytes()
    if data[:5] != b"\x7fELF\x02":
        raise ValueError(f"{path}: not a 64-bit ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i):  # (name offset, file offset, size) of section i
        base = shoff + i * shentsize
        return (struct.unpack_from("<I", data, base)[0],
                *struct.unpack_from("<QQ", data, base + 0x18))

    _, strtab, _ = header(shstrndx)
    for i in range(shnum):
        name_off, offset, size = header(i)
        end = data.index(b"\0", strtab + name_off)
        if data[strtab + name_off:end].decode() == name:
            return data[offset:offset + size]
    raise ValueError(f"{path}: no {name} section")


def modinfo(path: Path) -> dict[str, str]:
    """The module's .modinfo tags (vermagic, depends, name, ...); the last value wins."""
    fields = (f.partition("=") for f in _section(path, ".modinfo").decode().split("\0") if f)
    return {key: value for key, _, value in fields}


def imported_crcs(path: Path) -> dict[str, int]:
    """symbol -> CRC the module was built against (its __versions section)."""
    table = _section(path, "__versions")
    return {name.rstrip(b"\0").decode(): crc
            for crc, name in _VERSION_ENTRY.iter_unpack(table)}


def exported_crcs(module_symvers: Path) -> dict[str, int]:
    """symbol -> CRC from a Module.symvers file (crc, symbol, module, export type, ...)."""
    crcs = {}
    for line in module_symvers.read_text().splitlines():
        crc, symbol = line.split("\t")[:2]
        crcs[symbol] = int(crc, 16)
    return crcs
