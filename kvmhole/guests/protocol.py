"""The guest <-> VMM protocol, read from src/protocol.h so both sides share one definition."""

import re
from pathlib import Path

import cffi

HEADER = Path(__file__).parent / "src" / "protocol.h"


def _cdef_source(text: str) -> str:
    """protocol.h minus comments and every preprocessor line but #define."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    kept = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and not stripped.startswith("#define"):
            continue
        if re.match(r"#define\s+\w+\s*$", stripped):  # include guards define no value
            continue
        kept.append(line)
    return "\n".join(kept)


ffi = cffi.FFI()
ffi.cdef(_cdef_source(HEADER.read_text()))
_lib = ffi.dlopen(None)

GDT_ADDR = _lib.KH_GDT_ADDR
PARAMS_ADDR = _lib.KH_PARAMS_ADDR
RESULT_ADDR = _lib.KH_RESULT_ADDR
LOAD_ADDR = _lib.KH_LOAD_ADDR
STACK_TOP = _lib.KH_STACK_TOP
PAGE_TABLES_ADDR = _lib.KH_PAGE_TABLES_ADDR
SCRATCH_ADDR = _lib.KH_SCRATCH_ADDR
PORT_DONE = _lib.KH_PORT_DONE
PORT_PROGRESS = _lib.KH_PORT_PROGRESS
PORT_SLEEP = _lib.KH_PORT_SLEEP
PCI_CONFIG_ADDRESS = _lib.KH_PCI_CONFIG_ADDRESS
PCI_CONFIG_DATA = _lib.KH_PCI_CONFIG_DATA
STATUS_OK = _lib.KH_STATUS_OK
PARAMS_SIZE = ffi.sizeof("struct kh_params")
RESULT_SIZE = ffi.sizeof("struct kh_result")

RESULT_COUNTERS = (
    "hole_reads", "present_reads", "hole_writes", "device_reads", "port_writes", "batches",
    "failures", "type1_hole_reads", "type1_present_reads",
)


def params_view(buffer):
    """struct kh_params over guest memory at PARAMS_ADDR (a writable buffer)."""
    return ffi.cast("struct kh_params *", ffi.from_buffer(buffer, require_writable=True))


def result_view(buffer):
    return ffi.cast("struct kh_result *", ffi.from_buffer(buffer))


def result_dict(result) -> dict:
    """The guest's own report as plain data (the tests' ground truth)."""
    out = {name: getattr(result, name) for name in RESULT_COUNTERS}
    if result.failures:
        out["first_failure_addr"] = result.first_failure_addr
        out["first_failure_value"] = result.first_failure_value
    out["writes"] = [
        {"addr": w.addr, "len": w.len, "value": w.value}
        for w in result.writes[0 : min(result.writes_logged, len(result.writes))]
    ]
    return out
