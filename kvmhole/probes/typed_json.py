"""Dataclasses back from JSON, every value's type checked against the declaration.

The snapshot is declared once, as dataclasses; loading a recording (a file anyone may
have edited or cut) walks those declarations instead of a second, hand-written copy
of them, so a field added to the model is loaded, checked and round-tripped with no
other change. A ValueError names the first value that is wrong.
"""

import dataclasses
import math
import types
import typing


def load(kind, raw, what: str):
    """`raw` (parsed JSON) as a value of type `kind`.

    Numbers: an int field takes a non-negative int (counts, pids, addresses), a float
    field any finite number. Dataclasses: missing fields take their defaults, unknown
    keys are ignored (derived values written for other readers)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if raw is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return load(inner, raw, what)
    if dataclasses.is_dataclass(kind):
        return _dataclass(kind, raw, what)
    if origin is dict:
        key, value = args
        return {load(key, k, what): load(value, v, what) for k, v in _need(raw, dict, what).items()}
    if origin is list:
        return [load(args[0], item, what) for item in _need(raw, list, what)]
    if origin is tuple:
        items = _need(raw, list, what)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(load(args[0], item, what) for item in items)
        if len(items) != len(args):
            raise ValueError(f"{what} is not a list of {len(args)}")
        return tuple(load(a, item, what) for a, item in zip(args, items, strict=True))
    return _need(raw, kind, what)


def _dataclass(kind, raw, what: str):
    _need(raw, dict, what)
    hints = typing.get_type_hints(kind)
    values = {}
    for f in dataclasses.fields(kind):
        if not f.init:
            continue
        if f.name in raw:
            values[f.name] = load(hints[f.name], raw[f.name], f"{what}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{what}.{f.name} is missing")
    return kind(**values)  # __post_init__ checks what types cannot say


def _need(value, kind: type, what: str):
    """value if it is a `kind` (a float: any finite number; an int: not negative)."""
    if kind is float:
        ok = type(value) in (int, float) and math.isfinite(value)
    elif kind is int:
        ok = type(value) is int and value >= 0
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ValueError(f"{what} is not {'a number' if kind is float else kind.__name__}")
    return value
