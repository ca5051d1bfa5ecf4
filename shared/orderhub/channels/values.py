"""Strict readers for the numbers and times channels send, shared by every channel module.

`str.isdigit()` is true for "¹²³" and "٣", and `int()` reads some of those and raises on others: a
check with one and a read with the other let a header of superscripts end in an unhandled error.
Here digits are ASCII digits, times are bounded before `datetime` sees them, and every refusal is
a ChannelRejection with a reason.
"""

from __future__ import annotations

from datetime import UTC, datetime

from orderhub.channels.rejections import Malformed, Unauthorized

# Unix seconds of 9999-12-31T23:59:59Z: beyond it `datetime` raises (OverflowError, ValueError, OSError).
_LAST_UNIX_SECOND = 253_402_300_799


def ascii_digits(text: str) -> bool:
    """True for a non-empty run of 0-9 only."""
    return text.isascii() and text.isdigit()


def ascii_int(value: object, where: str, max_digits: int = 20) -> int:
    """A non-negative integer: a JSON integer (not a bool) or a string of ASCII digits."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        if value < 10**max_digits:
            return value
    elif isinstance(value, str) and ascii_digits(value) and len(value) <= max_digits:
        return int(value)
    raise Malformed(f"{where}: must be an integer (non-negative, at most {max_digits} ASCII digits)")


def signed_int(value: object, where: str, max_digits: int = 20) -> int:
    """An integer that may be negative (status codes): an int (not a bool) or ASCII digits with an optional '-'."""
    if isinstance(value, str) and value.startswith("-"):
        return -ascii_int(value[1:], where, max_digits)
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return -ascii_int(-value, where, max_digits)
    return ascii_int(value, where, max_digits)


def unix_instant(value: int, where: str) -> datetime:
    """Unix seconds, or milliseconds when larger than 10^11 (year 5138 in seconds), as an aware UTC time."""
    seconds, millis = divmod(value, 1000) if value > 10**11 else (value, 0)
    if not 0 < seconds <= _LAST_UNIX_SECOND:
        raise Malformed(f"{where}: not a Unix time between 1970 and 9999")
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=millis * 1000)


def signed_timestamp(text: str, header: str, now: datetime, past_s: int, future_s: int) -> int:
    """A signature's timestamp header: ASCII Unix seconds within `past_s` behind and `future_s` ahead of the
    hub clock. The future side is a clock skew only: every second allowed ahead is a second more that a
    captured request can be replayed, on top of the past window."""
    if not text:
        raise Unauthorized(f"missing {header}")
    if not ascii_digits(text) or len(text) > 12:
        raise Unauthorized(f"{header} is not Unix seconds")
    skew = int(text) - int(now.timestamp())
    if skew > future_s:
        raise Unauthorized(f"{header} is {skew} s ahead of the hub clock (tolerance {future_s} s)")
    if -skew > past_s:
        raise Unauthorized(f"{header} is {-skew} s behind the hub clock (tolerance {past_s} s)")
    return int(text)
