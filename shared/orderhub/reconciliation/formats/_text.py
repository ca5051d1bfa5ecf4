"""What every provider bill reader needs: exact decimal amounts, Beijing time in UTC, columns by header name.

Bills write money as decimal yuan ("258.00", "-0.27000"); a reader turns them into integer units of the
place it asks for (fen: 2, WeChat Pay's fee: 5) with integer arithmetic only, and rejects what is not
exactly that (a third decimal where two are due, an exponent, a thousands separator): a figure the reader
cannot take exactly is a reason to refuse the file, never to round. Times are written in Beijing time
without an offset; they become the one stored time format (`orderhub.clock.utc_iso`). Columns are found by
their header name, because the providers do not promise the order of columns.

These functions raise `ValueError` with a short reason; the format modules turn it into a
`StatementRefused` that names the line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from orderhub.clock import utc_iso

BEIJING_OFFSET = timedelta(hours=8)  # China Standard Time, no daylight saving since 1991
_DECIMAL = re.compile(r"(-?)(\d+)(?:\.(\d+))?")
_BEIJING_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})")


def decimal_units(text: str, places: int) -> int:
    """"258.00", 2 -> 25800; "-0.27000", 5 -> -27000. Fewer decimals than `places` are exact too
    ("6", 2 -> 600); more are refused, even zeros beyond the place the format promises."""
    match = _DECIMAL.fullmatch(text)
    if match is None:
        raise ValueError(f"not a decimal amount: {text!r}")
    sign, whole, part = match.groups()
    part = part or ""
    if len(part) > places:
        raise ValueError(f"more than {places} decimals: {text!r}")
    units = int(whole) * 10**places + (int(part) * 10 ** (places - len(part)) if part else 0)
    return -units if sign else units


def exact_division(units: int, factor: int) -> int | None:
    """`units` / `factor` when it divides exactly (a 5-decimal fee in whole fen), else None."""
    whole, rest = divmod(units, factor)
    return whole if rest == 0 else None


@lru_cache(maxsize=1 << 16)
def beijing_to_utc(text: str) -> str:
    """"2026-11-22 10:59:58" (Beijing) -> "2026-11-22T02:59:58.000+00:00". Cached: a day's bill repeats its
    seconds, and the cache is bounded. Beijing is a whole number of hours from UTC, so only the hour is
    converted (once an hour); minutes and seconds carry over as written."""
    match = _BEIJING_TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"not a time as yyyy-MM-dd HH:mm:ss: {text!r}")
    hour = _utc_hour(text[:13])
    if hour is None or int(match[5]) > 59 or int(match[6]) > 59:
        raise ValueError(f"not a real time: {text!r}")
    return f"{hour}:{match[5]}:{match[6]}.000+00:00"


@lru_cache(maxsize=1 << 12)
def _utc_hour(text: str) -> str | None:
    """"2026-11-22 10" (Beijing) -> "2026-11-22T02" (UTC), or None when it is no real hour."""
    try:
        local = datetime(int(text[:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), tzinfo=UTC)
        return utc_iso(local - BEIJING_OFFSET)[:13]
    except (ValueError, OverflowError):
        return None


def utc_to_beijing(at: datetime) -> str:
    """The inverse, for writing bills: an aware time as a Beijing `yyyy-MM-dd HH:mm:ss`."""
    return (at.astimezone(UTC) + BEIJING_OFFSET).strftime("%Y-%m-%d %H:%M:%S")


def column_index(header: Sequence[str], required: Sequence[str], optional: Sequence[str] = ()) -> dict[str, int]:
    """Where each named column is in `header`. A required column missing, or any column named twice, is an
    error (a second column of the same name would make the reading depend on which copy is taken)."""
    seen: dict[str, int] = {}
    for position, name in enumerate(header):
        if name in seen:
            raise ValueError(f"column {name} appears twice")
        seen[name] = position
    missing = [name for name in required if name not in seen]
    if missing:
        raise ValueError(f"missing column {', '.join(missing)}")
    return {name: seen[name] for name in (*required, *optional) if name in seen}


def format_units(units: int, places: int) -> str:
    """The inverse of `decimal_units`, for writing bills: 25800, 2 -> "258.00"; -27000, 5 -> "-0.27000"."""
    sign = "-" if units < 0 else ""
    whole, part = divmod(abs(units), 10**places)
    return f"{sign}{whole}.{part:0{places}d}" if places else f"{sign}{whole}"
