"""Alipay notifications that verify and are hostile: every form a broken or hostile sender can sign.

The form is written here as raw text (what an encoder never writes: a parameter twice, a broken escape,
bytes that are not the declared charset, 1e9999 for an amount) and signed the way Alipay signs, over
the parameters as a lenient reader decodes them, with the stand-in's development key: the hub's
signature check passes wherever the form can be read at all, and what follows is under test. Each is
answered 2xx or 4xx, never an exception; a 4xx says why and queues nothing; a 2xx queues a message SQS
can carry, whose events the status mapper maps on moto's DynamoDB without raising.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from urllib.parse import quote_plus, unquote_to_bytes

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import event, given, settings
from hypothesis import strategies as st

from infra.config import load_config
from infra.standins.alipay import KEYS_DIR, AlipayStandIn, load_private_key
from orderhub.channels.base import ChannelSettings, InboundRequest
from orderhub.clock import FixedClock
from orderhub.intake import accept_webhook
from orderhub.intake_batch import MAX_MESSAGE_BYTES
from orderhub.mapping import map_message
from orderhub.models.envelope import IntakeMessage
from orderhub.payments.ledger import InMemoryLedger
from orderhub.store.orders import OrderStore

CONFIG = load_config()
ALIPAY = CONFIG.channels["alipay"]
SETTINGS = ChannelSettings(secrets=ALIPAY.secrets, options=ALIPAY.options)
NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
KEY = load_private_key((KEYS_DIR / "alipay_2026.pem").read_text())
HEADERS = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}


def template() -> list[tuple[str, str]]:
    """A refund notification from the stand-in (it carries every field the hub reads), as encoded pairs."""
    alipay = AlipayStandIn("http://hub.test", ALIPAY.options["app_id"], ALIPAY.options["seller_id"],
                           (KEYS_DIR / "alipay_2026.pem").read_text(), FixedClock(NOW))
    trade_no = alipay.pay("M20261122001", 25800, subject="明前龙井 250g")
    alipay.refund(trade_no, 5800, out_biz_no="RF20261122001")
    params = alipay.params(trade_no)
    return [(quote_plus(k), quote_plus(v)) for k, v in params.items()]


TEMPLATE = template()


def signed(pairs: list[tuple[str, str]], sign: str | None = None) -> bytes:
    """The raw pairs (already encoded) with sign_type and a sign over them as a lenient reader decodes them
    (the first of a repeated name, broken escapes left as they are), or the `sign` given."""
    decoded: dict[bytes, bytes] = {}
    for name, value in pairs:
        decoded.setdefault(unquote_to_bytes(name.replace("+", " ")), unquote_to_bytes(value.replace("+", " ")))
    content = b"&".join(k + b"=" + decoded[k] for k in sorted(decoded) if decoded[k] and k not in (b"sign",
                                                                                                     b"sign_type"))
    if sign is None:
        sign = base64.b64encode(KEY.sign(content, padding.PKCS1v15(), hashes.SHA256())).decode()
    return "&".join(f"{n}={v}" for n, v in [*pairs, ("sign_type", "RSA2"), ("sign", quote_plus(sign))]).encode(
        "latin-1")


def with_value(name: str, encoded: str) -> list[tuple[str, str]]:
    pairs = [(n, encoded if n == name else v) for n, v in TEMPLATE]
    return pairs if any(n == name for n, _ in TEMPLATE) else [*pairs, (name, encoded)]


class SqsQueue:
    """What SQS would hold: the message as sent, refused beyond the queue's size limit."""

    def __init__(self) -> None:
        self.sent: list[IntakeMessage] = []

    def send(self, message: IntakeMessage) -> None:
        body = message.sqs_body(MAX_MESSAGE_BYTES)
        assert len(body.encode()) <= MAX_MESSAGE_BYTES, "acknowledged a message SQS would refuse"
        self.sent.append(IntakeMessage.model_validate_json(body))


def accept(body: bytes):
    queue = SqsQueue()
    result = accept_webhook(InboundRequest("alipay", HEADERS, body, "110.75.143.10"), "req-hostile",
                            lambda _: SETTINGS, queue, FixedClock(NOW))
    return result, queue.sent


def test_the_unchanged_template_is_accepted():
    result, sent = accept(signed(TEMPLATE))
    assert result.reply.body == "success" and len(sent) == 1


HOSTILE = {
    # size
    "a huge subject": (with_value("subject", quote_plus("茶" * 6000)), 413, "body larger than 16000 bytes"),
    "a huge order number": (with_value("out_trade_no", "M" * 5000), 400, "out_trade_no: not printable ASCII"),
    "101 parameters": (TEMPLATE + [(f"x{i}", "1") for i in range(80)], 400, "more than 100 parameters"),
    # structure
    "an amount twice": (TEMPLATE + [("total_amount", "0.01")], 400, "parameter total_amount is repeated"),
    "a sign twice": (TEMPLATE + [("sign", "AAAA")], 400, "parameter sign is repeated"),
    "an empty name": (TEMPLATE + [("", "1")], 400, "a parameter name"),
    "a dotted name": (TEMPLATE + [("a.b", "1")], 400, "a parameter name"),
    "a non-ASCII name": (TEMPLATE + [("%E8%8C%B6", "1")], 400, "a parameter name"),
    "a broken escape": (with_value("subject", "%E8%8C%B"), 400, "invalid percent-encoding"),
    "a stray %": (with_value("subject", "100%"), 400, "invalid percent-encoding"),
    "a non-hex escape": (with_value("subject", "%zz"), 400, "invalid percent-encoding"),
    # text
    "a truncated UTF-8 character": (with_value("subject", "%E8%8C"), 400, "subject: not utf-8 text"),
    "GBK bytes under charset=utf-8": (with_value("subject", "%B1%CC%C2%DD"), 400, "subject: not utf-8 text"),
    "an encoded lone surrogate": (with_value("body", "%ED%A0%80"), 400, "body: not utf-8 text"),
    "a NUL in the order number": (with_value("out_trade_no", "M%001"), 400, "out_trade_no: not printable ASCII"),
    "a full-width order number": (with_value("out_trade_no", quote_plus("Ｍ１")), 400, "not printable ASCII"),
    "a charset nobody sends": (with_value("charset", "utf-16"), 400, "charset: not one Alipay sends"),
    # amounts
    "1e9999": (with_value("total_amount", "1e9999"), 400, "total_amount: not an amount"),
    "NaN": (with_value("total_amount", "NaN"), 400, "total_amount: not an amount"),
    "a negative amount": (with_value("total_amount", "-258.00"), 400, "total_amount: not an amount"),
    "three decimals": (with_value("total_amount", "258.000"), 400, "total_amount: not an amount"),
    "full-width digits": (with_value("total_amount", quote_plus("２５８")), 400, "total_amount: not an amount"),
    "5000 digits": (with_value("total_amount", "9" * 5000), 400, "total_amount: not an amount"),
    "a padded amount": (with_value("total_amount", "+258.00"), 400, "total_amount: not an amount"),
    "a refunded total of 1e9999": (with_value("refund_fee", "1e9999"), 400, "refund_fee: not an amount"),
    "more refunded than paid": (with_value("refund_fee", "258.01"), 400, "refund_fee: more than total_amount"),
    # times
    "a notify_time in 9999": (with_value("notify_time", quote_plus("9999-12-31 23:59:59")), 401, "ahead"),
    "a notify_time in year 1": (with_value("notify_time", quote_plus("0001-01-01 00:00:00")), 400, "before 2000"),
    "an ISO notify_time": (with_value("notify_time", quote_plus("2026-11-22T11:00:00")), 400, "notify_time: not"),
    "a paid time in year 1": (with_value("gmt_payment", quote_plus("0001-01-01 00:00:00")), 400, "before 2000"),
    "a paid time in 9999": (with_value("gmt_payment", quote_plus("9999-12-31 23:59:59")), 400, "after the notify"),
    "a refund time of month 13": (with_value("gmt_refund", quote_plus("2026-13-01 00:00:00")), 400, "not a date"),
    "full-width time": (with_value("gmt_payment", quote_plus("２０２６-11-22 10:00:00")), 400, "not yyyy"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_signed_hostile_form_is_refused_with_its_reason_and_nothing_is_kept(case):
    pairs, status, reason = HOSTILE[case]
    result, sent = accept(signed(pairs))
    assert (result.reply.status_code, result.reply.body) == (status, "failure"), result.rejection
    assert sent == [] and result.rejection is not None and reason in result.rejection, result.rejection


def test_raw_bytes_that_are_not_a_url_encoded_form_are_refused():
    body = signed(with_value("subject", "ok")).replace(b"subject=ok", "subject=茶".encode())
    result, sent = accept(body)
    assert result.reply.status_code == 400 and sent == [] and "not a URL-encoded form" in (result.rejection or "")


@pytest.mark.parametrize(("body", "status", "reason"), [
    (b"", 400, "body is empty"),
    (signed(TEMPLATE).replace(b"&", b"&&", 1), 400, "a parameter without '='"),
    (signed(TEMPLATE) + b"&", 400, "a parameter without '='"),
    (signed(with_value("subject", "ok")).replace(b"subject=ok", b"subject=o\r\nk"), 400, "control characters"),
    (signed(TEMPLATE, sign="A" * 4000), 401, "sign is too long"),
    (signed(TEMPLATE, sign="not base64!"), 401, "sign is not base64"),
])
def test_a_body_that_is_not_one_form_or_carries_no_usable_sign_is_refused(body, status, reason):
    result, sent = accept(body)
    assert result.reply.status_code == status and sent == [] and reason in (result.rejection or "")


ODD = st.sampled_from(["%00", "%0A", "%ED%A0%80", "%F0%9F%98%80", "%E2%80%AE", "%EF%BB%BF", "%C0%AF", "%FF", "+",
                       "%2B", "%25", "%26", "%3D", "%", "%4", "%zz", "&", "=", "a", "1", ".", "-", "%E8%8C%B6",
                       "%EF%BC%91", "%C2%B9", "%D9%A3", "e", "E", "9", "0"])
VALUES = (st.lists(ODD, max_size=12).map("".join)
          | st.sampled_from(["1e9999", "NaN", "-0", "0", "0.00", "258.00", "258.001", "9999999999.99",
                             "10000000000", "2026-11-22+10%3A58%3A31", "0001-01-01+00%3A00%3A00",
                             "9999-12-31+23%3A59%3A59", "2000-01-01+00%3A00%3A00", "TRADE_SUCCESS",
                             "TRADE_CLOSED", "WAIT_BUYER_PAY", "USD", "JPY", "gbk", "GB2312", "utf-8"])
          | st.integers(60, 9000).map(lambda n: "k" * n))
NAMES = st.sampled_from(sorted({n for n, _ in TEMPLATE} | {"trans_currency", "out_biz_no", "new_field", "x"}))


@settings(settings.get_profile("hostile"))
@given(changes=st.lists(st.tuples(NAMES, VALUES), min_size=1, max_size=3), twice=st.booleans())
def test_a_signed_form_of_any_shape_is_2xx_and_applied_or_4xx_with_a_reason(moto_store, changes, twice):
    pairs = TEMPLATE
    for name, value in changes:
        pairs = [*pairs, (name, value)] if twice else with_value(name, value)
    result, sent = accept(signed(pairs))
    status = result.reply.status_code
    event(f"HTTP {status}")  # --hypothesis-show-statistics: how many were accepted and mapped
    assert 200 <= status < 300 or 400 <= status < 500, result.reply
    if status >= 400:
        assert sent == [] and result.rejection and result.reply.body == "failure"
        return
    assert result.reply.body == "success" and len(sent) == 1
    mapped(sent[0], moto_store)


def mapped(message: IntakeMessage, store: OrderStore) -> None:
    assert message.events is not None
    (event,) = message.events
    for fact in event.money:
        assert 0 <= fact.amount < 10**12 and fact.occurred_at.utcoffset() is not None
    outcomes = map_message(message, store, FixedClock(NOW), ledger=InMemoryLedger())
    assert [o.order_id for o in outcomes]
    logged = {e.channel_event_id for e in store.list_events(outcomes[0].order_id)}
    assert event.event_id in logged, "mapped without its log entry"
