"""Money is integer minor units plus an ISO 4217 currency; this is how many digits the minor unit has."""

from __future__ import annotations

from collections.abc import Mapping

# ISO 4217 minor-unit exponents that are not 2.
CURRENCY_EXPONENT: Mapping[str, int] = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
                     "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    "CLF": 4,
    "UYW": 4,
}


def exponent(currency: str) -> int:
    return CURRENCY_EXPONENT.get(currency, 2)


def format_minor(amount: int, currency: str) -> str:
    """25800, "CNY" -> "258.00 CNY" (exact: integer arithmetic, no float)."""
    digits = exponent(currency)
    if digits == 0:
        return f"{amount} {currency}".strip()
    sign = "-" if amount < 0 else ""
    whole, part = divmod(abs(amount), 10 ** digits)
    return f"{sign}{whole}.{part:0{digits}d} {currency}".strip()
