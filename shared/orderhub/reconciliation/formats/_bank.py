"""What every bank statement reader needs: an amount read exactly into minor units, a bank's local time as UTC.

Banks write money as decimal text ("25,800.00", "-1200.5", "1200,50" in MT940). It is read by pattern, never
through float or a bare `Decimal()`: "1e3" is not how a bank writes a thousand yuan and is refused, and a
value with more digits than the currency has ("-0.001" CNY) is not exact to the fen and is refused, so a
statement is never rounded into agreement with the ledger. Trailing zeros past the currency's digits
("12.500") are exact and read. Thousands separators are read only where the caller says the export uses
them, and only in groups of three ("1,234.5" -> 123450; "12,34.5" refused).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orderhub.money import exponent

DEFAULT_BANK_TZ = "Asia/Shanghai"

_PLAIN = re.compile(r"([+-]?)(\d+)(?:[.,](\d+))?")
_GROUPED = re.compile(r"([+-]?)(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?")


class AmountError(ValueError):
    """Text that is not an exact amount in the currency: the reason, for the reader to refuse the line with."""


def minor_units(text: str, currency: str, *, thousands: bool = False) -> int:
    """Signed decimal text -> signed integer minor units of `currency`, exactly.

    Without `thousands` the decimal mark may be "." or "," (MT940 writes "1200,50"); with it "," only groups
    thousands and "." is the decimal mark.
    """
    cleaned = text.strip()
    match = (_GROUPED if thousands else _PLAIN).fullmatch(cleaned)
    if match is None:
        raise AmountError(f"not an amount: {text!r}")
    sign, whole, part = match.group(1), match.group(2).replace(",", ""), match.group(3) or ""
    digits = exponent(currency)
    significant = part.rstrip("0")
    if len(significant) > digits:
        raise AmountError(f"{text!r} is not exact to the minor unit of {currency} ({digits} decimals)")
    value = int(whole) * 10 ** digits + int(significant.ljust(digits, "0") or "0")
    return -value if sign == "-" else value


def decimal_minor_units(value: object, currency: str) -> int:
    """A `Decimal` a parser library produced -> signed minor units, refusing one that is not exact."""
    text = format(value, "f")
    return minor_units(text, currency)


def bank_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def utc_iso(day: date, at: time | None, zone: ZoneInfo) -> str:
    """A bank's local date (and time; midnight when the statement gives a date only) -> UTC ISO with offset."""
    local = datetime.combine(day, at or time(0, 0), tzinfo=zone)
    return local.astimezone(UTC).isoformat()


def aware_utc_iso(moment: datetime, zone: ZoneInfo) -> str:
    """A timestamp as written (its own offset if it has one, else the bank's zone) -> UTC ISO with offset."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC).isoformat()
