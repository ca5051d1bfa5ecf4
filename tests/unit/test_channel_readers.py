"""The channels' fast readers give exactly what the plain library calls give."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation

from hypothesis import given, settings
from hypothesis import strategies as st

from orderhub.channels.base import Malformed, strptime_ymd_hms, ymdhms
from orderhub.channels.taobao import fen


def _outcome(fn, value):
    try:
        result = fn(value)
    except Exception as exc:  # the kind of failure is what is compared
        return ("raised", type(exc).__name__)
    return ("returned", result, type(result))


def _fen_by_decimal(value):
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise Malformed("not an amount")
    try:
        amount = Decimal(value) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise Malformed("not an amount") from None
    cents = amount * 100
    if not amount.is_finite() or amount < 0 or cents != cents.to_integral_value():
        raise Malformed("not an amount")
    return int(cents)


@settings(max_examples=2000)
@given(st.one_of(st.from_regex(r"\A[0-9]{1,30}(\.[0-9]{0,4})?\Z"), st.text(max_size=8), st.integers(),
                 st.integers(10**23, 10**27), st.booleans(), st.none(), st.floats(), st.decimals()))
def test_fen_reads_yuan_as_decimal_arithmetic_does(value):
    assert _outcome(lambda v: fen({"amount": v}, "amount"), value) == _outcome(_fen_by_decimal, value)


@settings(max_examples=1000)
@given(st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\Z") | st.text(max_size=20))
def test_platform_times_read_as_strptime_reads_them(text):
    assert _outcome(strptime_ymd_hms, text) == _outcome(lambda t: datetime.strptime(t, "%Y-%m-%d %H:%M:%S"), text)


@settings(max_examples=1000)
@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
def test_snapshot_stamps_are_spelled_as_strftime_spells_them(at):
    assert ymdhms(at) == f"{at:%Y%m%d%H%M%S}"


def _failure_text(fn):
    try:
        return ("returned", fn())
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))


@settings(max_examples=3000)
@given(st.one_of(st.from_regex(r"\A\s?-?[0-9]{1,30}(\.[0-9]{0,6})?\s?\Z"), st.text(max_size=8), st.integers(),
                 st.booleans(), st.none(), st.decimals()),
       st.sampled_from(["USD", "JPY", "KWD", "CLF", "XYZ"]), st.booleans())
def test_minor_units_read_as_decimal_arithmetic_reads_them(value, currency, exact):
    from orderhub.channels.shopify_normalise import to_minor, to_minor_by_decimal

    assert _failure_text(lambda: to_minor(value, currency, "amount", exact=exact)) == \
        _failure_text(lambda: to_minor_by_decimal(value, currency, "amount", exact=exact))


@settings(max_examples=1000)
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
       st.sampled_from([0, 1, -5, 8, 14]))
def test_woocommerce_snapshot_ids_spell_the_time_as_strftime_does(at, hours):
    from datetime import UTC, timedelta, timezone

    from orderhub.channels.woocommerce import snapshot_id

    aware = at.replace(tzinfo=timezone(timedelta(hours=hours)))
    stamp = aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert snapshot_id("4827", aware, "processing", "e135fa30d526") == f"4827:{stamp}:processing:e135fa30d526"
