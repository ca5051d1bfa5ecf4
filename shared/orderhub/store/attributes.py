"""Plain Python values <-> DynamoDB attribute values, for the types the hub stores.

boto3's TypeSerializer goes through Decimal and costs several times more per item; the hub
stores only str, int, bool, None, bytes, lists and maps, and ints are never fractional.
"""

from __future__ import annotations

import zlib
from typing import Any


def to_attr(value: Any) -> dict[str, Any]:
    # Exact type checks, most frequent first: this runs for every attribute of every write.
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is int:
        return {"N": str(value)}
    if kind is dict:
        return {"M": {k: to_attr(v) for k, v in value.items()}}
    if kind is list or kind is tuple:
        return {"L": [to_attr(v) for v in value]}
    if kind is bool:
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if kind is bytes:
        return {"B": value}
    if isinstance(value, str):  # str-based enums
        return {"S": str(value)}
    raise TypeError(f"cannot store {kind.__name__}")


def from_attr(attr: dict[str, Any]) -> Any:
    (kind, value), = attr.items()
    if kind == "S":
        return value
    if kind == "N":
        return int(value)
    if kind == "M":
        return {k: from_attr(v) for k, v in value.items()}
    if kind == "L":
        return [from_attr(v) for v in value]
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    if kind == "B":
        return bytes(value)
    raise TypeError(f"unexpected attribute type {kind}")


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: to_attr(v) for k, v in values.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: from_attr(v) for k, v in item.items()}


def item_size_bytes(item: dict[str, Any]) -> int:
    """DynamoDB's billed size of an item in wire form (names + values), per the Developer Guide."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(attr: dict[str, Any]) -> int:
    (kind, value), = attr.items()
    if kind == "S":
        return len(value.encode())
    if kind == "N":
        digits = value.lstrip("-").replace(".", "").lstrip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(value)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(v) + 1 for k, v in value.items())
    if kind == "L":
        return 3 + sum(_value_size(v) + 1 for v in value)
    raise TypeError(kind)


def write_units(item: dict[str, Any]) -> int:
    """Standard (non-transactional) write request units for an item: 1 per started KB."""
    return max(1, -(-item_size_bytes(item) // 1024))


# zlib with an 8 KB window and memLevel 6: the defaults (32 KB window, memLevel 8) allocate ~256 KB
# per call, and in a Lambda-sized VM that costs ~40 us of page faults whatever the input, more than
# compressing a 1 KB body takes (here: ~2 us fixed). A JSON body compresses about as well: its
# repeats are near each other. Any zlib reader (`zlib.decompress`) reads the stream.
_WINDOW_BITS, _MEM_LEVEL = 13, 6
# Bodies of a few KB are logged in items near 1 KB, where bytes decide the write unit; above that the
# item takes several units anyway, and level 1 compresses ~1.6x faster for ~12 % more bytes.
_FAST_ABOVE_BYTES = 4096


def compress(raw: bytes) -> bytes:
    level = 6 if len(raw) <= _FAST_ABOVE_BYTES else 1
    packer = zlib.compressobj(level, zlib.DEFLATED, _WINDOW_BITS, _MEM_LEVEL)
    return packer.compress(raw) + packer.flush()
