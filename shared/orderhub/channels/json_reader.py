"""The one JSON reader for channel input: bounded, strict, and as fast as the plain one.

Every channel reads JSON through `read_json`. Beyond `json.loads` it refuses, with a reason:
- nesting deeper than `max_depth` (400): the C parser would recurse ~1,000 levels and then raise
  RecursionError, and every walk after it (drift, validation) recurses as deep;
- more than `max_members` object members in one document (413): what drift and the rules walk;
- a key twice in one object (400): `json.loads` keeps the last, so a signed amount or id could
  mean one thing to the hub and another to whoever checked the first;
- a lone UTF-16 surrogate (`"\\ud800"`), which no UTF-8 store or queue can hold, and bytes that
  are not UTF-8 (400);
- NaN and Infinity (400): not JSON, and never an amount.
Numbers with a fraction are Decimal, so money never passes through float. Key lengths are not
limited here (a check per key cost ~60 % more): an unknown key's cost is bounded where it is
stored (drift lists at most 32 paths, each cut to 200 characters), and known fields are held to
the event model's lengths.

Cost: one C-level translate of the bytes gives the depth (brackets outside strings) and the number
of members sent (colons outside strings); the parser's `object_hook` (handed the dict the C parser already built: no
pairs list) sums the keys kept, so a duplicate shows as fewer keys than members. No walk of the result.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from orderhub.channels.rejections import Malformed, TooLarge


@dataclass(frozen=True)
class JsonLimits:
    """Documented in docs/channels.md ("Input limits"). A normal order is depth ≤ 6 and a few hundred members."""

    max_depth: int = 32
    max_members: int = 10_000


LIMITS = JsonLimits()

_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"{}[]:')
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _no_constants(name: str) -> Any:
    raise Malformed(f"{name} is not a JSON number")


def read_json(text: bytes | str, limits: JsonLimits = LIMITS) -> Any:
    """Parse channel JSON within `limits`; raises Malformed (400) or TooLarge (413) with the reason."""
    if isinstance(text, str):
        if text.startswith("\ufeff"):
            raise Malformed("body is not JSON (it starts with a byte-order mark)")
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError:  # a str decoded elsewhere may carry one unescaped
            raise Malformed("text holds a lone UTF-16 surrogate, which is not Unicode text") from None
    else:
        raw = text
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed("body is not JSON (not UTF-8)") from None
    depth, members = _depth_and_members(raw, limits.max_depth)
    if depth > limits.max_depth:
        raise Malformed(f"JSON nested deeper than {limits.max_depth} levels")
    if members > limits.max_members:
        raise TooLarge(f"JSON with more than {limits.max_members} object members")
    decoder, count = _decoder()
    count[0] = 0
    try:
        value = decoder.decode(text)
    except RecursionError:  # unbalanced text the skeleton could not measure
        raise Malformed(f"JSON nested deeper than {limits.max_depth} levels") from None
    except ValueError as exc:
        raise Malformed(f"body is not JSON ({_position(exc)})") from None
    if count[0] != members:  # fewer keys kept than sent: one came twice (a second parse names it)
        raise Malformed(f"JSON object with the key {(_duplicate_key(text) or '')[:40]!r} twice")
    if _SURROGATE_ESCAPE.search(raw) is not None and _holds_lone_surrogate(value):
        raise Malformed("JSON string with a lone UTF-16 surrogate escape (\\ud800-\\udfff), which is not Unicode text")
    return value


_PER_THREAD = threading.local()  # a decoder's hook counts for one parse at a time


def _decoder() -> tuple[json.JSONDecoder, list[int]]:
    """A decoder whose object_hook sums the keys of every object it is handed (C-built dicts, no
    pairs list: the hook costs ~nothing); one per thread (built in ~5 us)."""
    found: tuple[json.JSONDecoder, list[int]] | None = getattr(_PER_THREAD, "decoder", None)
    if found is None:
        count = [0]

        def counted(obj: dict[str, Any]) -> dict[str, Any]:
            count[0] += len(obj)
            return obj

        found = _PER_THREAD.decoder = (
            json.JSONDecoder(parse_float=Decimal, parse_constant=_no_constants, object_hook=counted), count)
    return found


def _depth_and_members(raw: bytes, max_depth: int) -> tuple[int, int]:
    """(nesting depth, counted up to just past max_depth; object members) of JSON text.

    One C-level translate keeps only quotes, brackets and colons; strings whose content kept nothing
    become "" and are dropped, and the few left (times, URLs) are cut out by a split: removing two
    adjacent quotes never removes structure and keeps the rest paired. What is left is the structure:
    its colons are the members, its brackets the nesting."""
    if b"\\" in raw and b'\\"' in raw:  # escaped quotes (and escaped backslashes before them)
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = raw.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in structure:
        structure = b"".join(structure.split(b'"')[::2])
    members = structure.count(b":")
    nesting = structure.replace(b":", b"")
    depth = 0
    while nesting and depth <= max_depth:
        inner_removed = nesting.replace(b"{}", b"").replace(b"[]", b"")
        if len(inner_removed) == len(nesting):
            break  # unbalanced: the parser says what is wrong
        nesting = inner_removed
        depth += 1
    return depth, members


def _duplicate_key(text: str) -> str | None:
    """The first key seen twice in one object, if any."""
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen and not found:
                found.append(key)
            seen.add(key)
        return dict(items)

    json.loads(text, object_pairs_hook=pairs, parse_float=Decimal)
    return found[0] if found else None


def _holds_lone_surrogate(value: Any) -> bool:
    """Only when the text has a surrogate escape (emoji escaped as a pair are common, lone ones never)."""
    try:
        json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _position(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at character {exc.pos}"
    return "a number too long to read" if "digits" in str(exc) else "unreadable"


def read_json_document(text: bytes | str, what: str, limits: JsonLimits = LIMITS) -> Any:
    """`read_json` of a document carried inside another (Douyin's `data`, kuaidi100's `param`): the reason names it."""
    try:
        return read_json(text, limits)
    except Malformed as exc:
        raise Malformed(f"{what}: {exc.reason}") from None
