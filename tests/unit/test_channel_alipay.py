"""The `alipay` channel: Alipay's asynchronous notifications, verified (RSA2), checked for this hub's
application and merchant, and read into payment and refund facts for the voucher ledger.

Notifications come from the stand-in (infra/standins/alipay.py), which signs with its own code and the
development keys: a notification it makes is one Alipay would send.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import quote_plus, unquote_to_bytes

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given
from hypothesis import strategies as st

from infra.config import REPO_ROOT, load_config
from infra.standins.alipay import KEYS_DIR, AlipayStandIn, Notification, form_body, rsa2_sign, signing_string
from orderhub.channels import get_channel
from orderhub.channels.alipay import CHANNEL, KNOWN_FIELDS, Malformed, read_form, yuan_to_fen
from orderhub.channels.base import ChannelSettings, FieldRules, InboundRequest, Unauthorized
from orderhub.clock import FixedClock
from orderhub.intake import accept_webhook
from orderhub.lifecycle.statuses import EventKind
from orderhub.models.envelope import IntakeMessage
from orderhub.models.order import MethodClass, MoneyFact, MoneyKind, MoneyState, OrderEvent
from orderhub.payments.ledger import line_of, money

CONFIG = load_config()
ALIPAY = CONFIG.channels["alipay"]
KEY_2026, KEY_2025 = ALIPAY.secrets  # public halves of the stand-in's development keys, current first
APP_ID, SELLER_ID = ALIPAY.options["app_id"], ALIPAY.options["seller_id"]
NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
BEIJING = timezone(timedelta(hours=8))
PAID_AT = datetime(2026, 11, 22, 10, 58, 31, tzinfo=BEIJING)


def settings(*keys: str, **options: object) -> ChannelSettings:
    return ChannelSettings(secrets=keys or (KEY_2026, KEY_2025), options={**ALIPAY.options, **options})


SETTINGS = settings()


def private_pem(name: str) -> str:
    return (KEYS_DIR / name).read_text(encoding="ascii")


def stand_in(key: str = "alipay_2026.pem", charset: str = "utf-8", app_id: str = APP_ID,
             seller_id: str = SELLER_ID) -> AlipayStandIn:
    return AlipayStandIn("http://hub.test", app_id, seller_id, private_pem(key), FixedClock(NOW),
                         transport=lambda url, body, headers: (200, "success"), charset=charset)


def paid(alipay: AlipayStandIn | None = None, out_trade_no: str = "M20261122001") -> tuple[AlipayStandIn, str]:
    alipay = alipay or stand_in()
    return alipay, alipay.pay(out_trade_no, 25800, PAID_AT, subject="明前龙井 250g")


def inbound(notification: Notification | tuple[dict[str, str], bytes]) -> InboundRequest:
    headers, body = ((notification.headers, notification.body) if isinstance(notification, Notification)
                     else notification)
    return InboundRequest("alipay", {k.lower(): v for k, v in headers.items()}, body, "110.75.143.10")


class Queue:
    def __init__(self) -> None:
        self.sent: list[IntakeMessage] = []

    def send(self, message: IntakeMessage) -> None:
        self.sent.append(message)


def accept(notification: Notification | tuple[dict[str, str], bytes], with_settings: ChannelSettings = SETTINGS,
           now: datetime = NOW):
    queue = Queue()
    result = accept_webhook(inbound(notification), "req-alipay", lambda _: with_settings, queue, FixedClock(now))
    return result, queue.sent


def assert_refused(notification, status: int, reason: str, with_settings: ChannelSettings = SETTINGS,
                   now: datetime = NOW) -> None:
    result, sent = accept(notification, with_settings, now)
    assert (result.reply.status_code, result.reply.body, result.reply.content_type) == (status, "failure",
                                                                                        "text/plain")
    assert sent == [], "a refused notification must leave nothing behind"
    assert result.rejection is not None and reason in result.rejection, result.rejection


def parse_one(notification: Notification, **kwargs) -> OrderEvent:
    (event,) = CHANNEL.parse(notification.body, inbound(notification).headers, **kwargs)
    return event


def resent_with(notification: Notification, **changes: str | None) -> tuple[dict[str, str], bytes]:
    """The notification's form with parameters changed (None: removed), its sign kept as it was."""
    params = {**notification.params, **changes}
    return notification.headers, form_body({k: v for k, v in params.items() if v is not None})


def flipped(text: str) -> str:
    """The text with the lowest bit of its last character flipped (digits stay digits: '0' <-> '1')."""
    return text[:-1] + chr(ord(text[-1]) ^ 1)


# Authentication ------------------------------------------------------------------------------------------

def test_a_notification_alipay_signed_is_queued_and_answered_with_the_seven_characters_success():
    alipay, trade_no = paid()
    notification = alipay.notifications[-1]
    result, sent = accept(notification)
    assert (result.reply.status_code, result.reply.body, result.reply.content_type) == (200, "success", "text/plain")
    (message,) = sent
    assert message.channel == "alipay" and message.body == notification.body
    assert message.headers == {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
    assert message.events is not None and message.events[0].money[0].reference == trade_no


def test_the_signed_string_is_the_sorted_non_empty_parameters_but_sign_and_sign_type_in_the_charset():
    # Built by hand from Alipay's documented recipe and signed: the hub verifies it.
    key = serialization.load_pem_private_key(private_pem("alipay_2026.pem").encode(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    params = {"notify_time": "2026-11-22 10:59:00", "notify_type": "trade_status_sync", "notify_id": "n1",
              "app_id": APP_ID, "charset": "utf-8", "version": "1.0", "trade_no": "2026112222001000000000000009",
              "out_trade_no": "M1", "seller_id": SELLER_ID, "trade_status": "TRADE_SUCCESS",
              "total_amount": "1.00", "gmt_payment": "2026-11-22 10:58:00", "subject": "茶 & 杯=2", "body": ""}
    text = "&".join(f"{k}={params[k]}" for k in sorted(params) if params[k])
    assert text.startswith("app_id=") and "body=" not in text and "subject=茶 & 杯=2" in text
    sign = base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
    body = "&".join(f"{k}={quote_plus(v)}" for k, v in {**params, "sign_type": "RSA2", "sign": sign}.items())
    CHANNEL.authenticate(inbound(({}, body.encode())), SETTINGS, NOW)


@pytest.mark.parametrize("name", ["notify_time", "notify_id", "app_id", "trade_no", "out_trade_no", "seller_id",
                                  "trade_status", "total_amount", "gmt_payment", "buyer_id", "subject",
                                  "fund_bill_list", "charset", "version", "notify_type", "gmt_create"])
def test_a_bit_flipped_in_any_parameter_value_is_refused(name):
    notification = paid()[0].notifications[-1]
    assert_refused(resent_with(notification, **{name: flipped(notification.params[name])}), 401,
                   "signature does not match")


@pytest.mark.parametrize("position", [0, 5, 40, 100, 200, -5, -1])
def test_a_bit_flipped_in_the_sign_is_refused(position):
    notification = paid()[0].notifications[-1]
    raw = bytearray(base64.b64decode(notification.params["sign"]))
    raw[position] ^= 0x01
    assert_refused(resent_with(notification, sign=base64.b64encode(bytes(raw)).decode()), 401,
                   "signature does not match")


@pytest.mark.parametrize("position", [0, 7, 30, 150, 400, -300, -2])
def test_a_bit_flipped_anywhere_in_the_body_is_refused_and_nothing_is_kept(position):
    notification = paid()[0].notifications[-1]
    body = bytearray(notification.body)
    body[position] ^= 0x01
    result, sent = accept((notification.headers, bytes(body)))
    assert result.reply.status_code in (400, 401) and result.reply.body == "failure" and sent == []


@pytest.mark.parametrize("name", ["notify_time", "notify_id", "app_id", "trade_no", "out_trade_no", "seller_id",
                                  "trade_status", "total_amount", "gmt_payment", "subject", "charset", "version"])
def test_a_parameter_removed_is_refused(name):
    assert_refused(resent_with(paid()[0].notifications[-1], **{name: None}), 401, "signature does not match")


@pytest.mark.parametrize("added", [{"refund_fee": "258.00"}, {"out_biz_no": "RF9"}, {"extra": "1"},
                                   {"gmt_refund": "2026-11-22 10:59:00"}])
def test_a_parameter_added_with_a_value_is_refused(added):
    assert_refused(resent_with(paid()[0].notifications[-1], **added), 401, "signature does not match")


def test_a_parameter_added_empty_is_outside_the_signature_as_in_alipays_sdk_and_reads_as_absent():
    notification = paid()[0].notifications[-1]
    result, sent = accept(resent_with(notification, refund_fee="", out_biz_no="", gmt_refund=""))
    assert result.reply.body == "success" and sent[0].events is not None
    (event,) = sent[0].events
    assert [fact.kind for fact in event.money] == [MoneyKind.PAYMENT]  # no refund came of it


def test_a_missing_sign_is_refused():
    assert_refused(resent_with(paid()[0].notifications[-1], sign=None), 401, "missing sign")


@pytest.mark.parametrize("sign_type", ["RSA", "rsa2", "MD5", "SM2", None])
def test_a_sign_type_other_than_rsa2_is_refused_even_when_the_signature_itself_verifies(sign_type):
    assert_refused(resent_with(paid()[0].notifications[-1], sign_type=sign_type), 401, "sign_type must be RSA2")


def test_an_rsa_sha1_signature_is_refused():
    notification = paid()[0].notifications[-1]
    key = serialization.load_pem_private_key(private_pem("alipay_2026.pem").encode(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    sha1 = key.sign(signing_string(notification.params).encode(), padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
    assert_refused(resent_with(notification, sign_type="RSA", sign=base64.b64encode(sha1).decode()), 401,
                   "sign_type must be RSA2")
    assert_refused(resent_with(notification, sign=base64.b64encode(sha1).decode()), 401,
                   "signature does not match")


def test_a_notification_signed_with_a_key_the_hub_does_not_hold_is_refused():
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = stranger.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
    alipay = AlipayStandIn("http://hub.test", APP_ID, SELLER_ID, pem, FixedClock(NOW))
    alipay.pay("M1", 100, PAID_AT)
    assert_refused(alipay.notifications[-1], 401, "signature does not match")


def test_during_a_rotation_the_previous_key_verifies_and_once_removed_it_no_longer_does():
    old = paid(stand_in("alipay_2025.pem"))[0].notifications[-1]
    current = paid(stand_in("alipay_2026.pem"))[0].notifications[-1]
    for notification in (old, current):
        assert accept(notification, settings(KEY_2026, KEY_2025))[0].reply.body == "success"
    assert_refused(old, 401, "signature does not match", settings(KEY_2026))
    assert accept(current, settings(KEY_2026))[0].reply.body == "success"


def test_a_key_as_alipays_console_shows_it_bare_base64_verifies_and_an_unusable_one_is_skipped():
    bare = "".join(line for line in KEY_2026.splitlines() if not line.startswith("-----"))
    notification = paid()[0].notifications[-1]
    assert accept(notification, settings("not a key", bare))[0].reply.body == "success"
    assert_refused(notification, 401, "no usable Alipay public key", settings("not a key"))


@pytest.mark.parametrize(("who", "reason"), [({"app_id": "2021009999999999"}, "app_id is not the application"),
                                             ({"seller_id": "2088000000000001"}, "seller_id is not the merchant")])
def test_a_notification_for_another_application_or_merchant_is_refused_and_nothing_is_kept(who, reason):
    notification = paid(stand_in(**who))[0].notifications[-1]
    assert_refused(notification, 401, reason)


def test_the_application_and_merchant_may_each_be_a_list_and_must_be_configured():
    notification = paid()[0].notifications[-1]
    listed = settings(app_id=["2021009999999999", APP_ID], seller_id=[SELLER_ID])
    assert accept(notification, listed)[0].reply.body == "success"
    assert_refused(notification, 401, "no Alipay app_id configured", settings(app_id=""))
    assert_refused(notification, 401, "no Alipay seller_id configured", settings(seller_id=[]))


def test_a_gbk_notification_is_verified_over_its_gbk_bytes_and_decoded_as_gbk():
    alipay = stand_in(charset="GBK")
    alipay.pay("M20261122002", 6800, PAID_AT, subject="碧螺春 100g")
    notification = alipay.notifications[-1]
    assert b"subject=%B1%CC%C2%DD%B4%BA" in notification.body  # 碧螺春 in GBK, not UTF-8
    result, sent = accept(notification)
    assert result.reply.body == "success" and sent[0].events is not None
    assert sent[0].events[0].money[0].amount == 6800
    # Signed over the UTF-8 string while declaring GBK: not what Alipay signs.
    utf8_signed = {**notification.params, "sign": rsa2_sign(signing_string(notification.params), alipay._key)}
    assert_refused((notification.headers, form_body(utf8_signed, "GBK")), 401, "signature does not match")


def test_notify_time_may_be_as_old_as_alipays_25_hours_of_resends_and_barely_ahead():
    notification = paid()[0].notifications[-1]  # notify_time is NOW
    window = timedelta(hours=25, seconds=SETTINGS.timestamp_tolerance_s)
    assert accept(notification, now=NOW + window)[0].reply.body == "success"
    assert_refused(notification, 401, "behind the hub clock", now=NOW + window + timedelta(seconds=1))
    assert accept(notification, now=NOW - timedelta(seconds=SETTINGS.timestamp_future_s))[0].reply.body == "success"
    assert_refused(notification, 401, "ahead of the hub clock",
                   now=NOW - timedelta(seconds=SETTINGS.timestamp_future_s + 1))


def test_a_replay_within_the_window_is_the_same_event_and_the_same_ledger_records():
    notification = paid()[0].notifications[-1]
    first, again = (accept(notification, now=NOW + timedelta(hours=h))[1][0] for h in (0, 20))
    assert first.events == again.events


def test_the_refusal_reply_is_failure_whatever_the_rejection():
    for rejection in (Unauthorized("signature does not match"), Malformed("total_amount: no")):
        reply = CHANNEL.rejected(rejection)
        assert (reply.status_code, reply.body, reply.content_type) == (rejection.status_code, "failure",
                                                                      "text/plain")
    assert get_channel("alipay") is CHANNEL and CHANNEL.kept_headers == ("content-type",)


# Mapping -------------------------------------------------------------------------------------------------

def payment_fact(notification: Notification, trade_no: str, **changes: object) -> MoneyFact:
    return MoneyFact(**{
        "provider": "alipay", "kind": MoneyKind.PAYMENT, "reference": trade_no, "state": MoneyState.CONFIRMED,
        "amount": 25800, "currency": "CNY", "method": MethodClass.ONLINE, "merchant_reference": "M20261122001",
        "account": SELLER_ID, "occurred_at": PAID_AT, "payload": notification.body.decode(), **changes})


def test_trade_success_is_the_payment_one_confirmed_movement_dated_by_gmt_payment():
    alipay, trade_no = paid()
    notification = alipay.notifications[-1]
    event = parse_one(notification)
    assert (event.channel, event.channel_order_id, event.source, event.event_id) == (
        "mall", "M20261122001", "alipay", notification.params["notify_id"])
    assert event.channel_code == "trade_status_sync TRADE_SUCCESS"
    assert event.event_time == NOW and event.kinds == (EventKind.PAID,)
    assert event.milestone_times == {EventKind.PAID: PAID_AT}
    assert event.money == (payment_fact(notification, trade_no),)
    assert event.gaps == () and event.drift == ()


def test_trade_finished_reports_the_same_payment_so_the_ledger_keeps_one_record():
    alipay, trade_no = paid()
    alipay.clock.advance(90 * 86_400)  # type: ignore[attr-defined]
    alipay.finish(trade_no)
    success, finished = (parse_one(n) for n in alipay.notifications)
    assert finished.channel_code == "trade_status_sync TRADE_FINISHED" and finished.kinds == (EventKind.PAID,)
    assert line_of(success.money[0]) == line_of(finished.money[0])
    assert finished.money == (payment_fact(alipay.notifications[-1], trade_no),)


def test_a_trade_paid_on_a_product_without_refunds_is_finished_at_once_and_paid():
    alipay = stand_in()
    trade_no = alipay.pay("M20261122001", 25800, PAID_AT, refundable=False)
    event = parse_one(alipay.notifications[-1])
    assert event.channel_code == "trade_status_sync TRADE_FINISHED"
    assert event.money == (payment_fact(alipay.notifications[-1], trade_no),)


def test_a_partial_refund_reports_the_payment_and_the_refund_as_the_trades_refunded_total():
    alipay, trade_no = paid()
    refunded_at = datetime(2026, 11, 23, 9, 0, tzinfo=BEIJING)
    alipay.clock.advance(86_400)  # type: ignore[attr-defined]
    alipay.refund(trade_no, 5800, out_biz_no="RF20261123001", at=refunded_at)
    notification = alipay.notifications[-1]
    event = parse_one(notification)
    assert event.channel_code == "trade_status_sync TRADE_SUCCESS refund" and event.kinds == (EventKind.PAID,)
    payment, refund = event.money
    assert payment == payment_fact(notification, trade_no)
    assert refund == MoneyFact(provider="alipay", kind=MoneyKind.REFUND, reference="RF20261123001",
                               state=MoneyState.CONFIRMED, amount=5800, currency="CNY", method=MethodClass.ONLINE,
                               payment_reference=trade_no, merchant_reference="RF20261123001", account=SELLER_ID,
                               occurred_at=refunded_at, cumulative=True, payload=notification.body.decode())


def test_refunds_to_the_full_amount_close_the_trade_and_the_ledger_steps_the_totals_into_each_refund():
    alipay, trade_no = paid()
    alipay.clock.advance(3 * 3600)  # type: ignore[attr-defined]
    alipay.refund(trade_no, 5800, out_biz_no="RF1", at=PAID_AT + timedelta(hours=1))
    alipay.refund(trade_no, 20000, out_biz_no="RF2", at=PAID_AT + timedelta(hours=2))
    events = [parse_one(n) for n in alipay.notifications]
    closed = events[-1]
    assert closed.channel_code == "trade_status_sync TRADE_CLOSED refund"
    assert [(f.kind, f.reference, f.amount, f.cumulative) for f in closed.money] == [
        (MoneyKind.PAYMENT, trade_no, 25800, False), (MoneyKind.REFUND, "RF2", 25800, True)]
    # Every report, in any order and repeated: paid 258.00, refunded 58.00 + 200.00.
    lines = [line_of(f) for e in reversed(events + events) for f in e.money]
    ledger = money({line.record_id: line for line in lines})
    assert (ledger.paid, ledger.refunded) == (25800, 25800)
    assert sorted(m.amount for m in ledger.refunds) == [5800, 20000]


def test_a_full_refund_without_out_biz_no_is_named_by_the_trade_number():
    alipay, trade_no = paid()
    alipay.refund(trade_no, 25800)
    notification = alipay.notifications[-1]
    assert "out_biz_no" not in notification.params
    refund = parse_one(notification).money[1]
    assert (refund.reference, refund.payment_reference, refund.merchant_reference) == (trade_no, trade_no, "")


def test_a_trade_waiting_for_payment_and_one_closed_unpaid_are_logged_and_move_nothing():
    alipay = stand_in()
    alipay.create("M20261122003", 8800, PAID_AT - timedelta(minutes=15), notify=True)
    alipay.close("M20261122003", PAID_AT)
    waiting, closed = (parse_one(n) for n in alipay.notifications)
    assert waiting.channel_code == "trade_status_sync WAIT_BUYER_PAY"
    assert closed.channel_code == "trade_status_sync TRADE_CLOSED"
    for event in (waiting, closed):
        assert event.kinds == () and event.money == () and event.gaps == ()
        assert event.channel_order_id == "M20261122003"


def test_the_orders_channel_comes_from_the_options():
    notification = paid()[0].notifications[-1]
    assert parse_one(notification).channel == "mall"
    assert parse_one(notification, options={"orders_channel": "miniapp"}).channel == "miniapp"
    (event,) = CHANNEL.parse_with(notification.body, {}, settings(orders_channel="miniapp"))
    assert event.channel == "miniapp"


@pytest.mark.parametrize(("change", "gap"), [({"trade_status": "TRADE_PENDING"}, "trade_status=TRADE_PENDING"),
                                             ({"notify_type": "trade_refund_sync"}, "notify_type=trade_refund_sync"),
                                             ({"trans_currency": "JPY"}, "trans_currency=JPY")])
def test_what_the_hub_does_not_understand_is_a_gap_and_books_no_money(change, gap):
    alipay, trade_no = paid()
    event = parse_one(alipay.build(trade_no, **change))
    assert gap in event.gaps and event.money == ()


def test_a_cross_border_trade_is_booked_in_its_pricing_currency():
    alipay, trade_no = paid()
    event = parse_one(alipay.build(trade_no, trans_currency="USD", settle_currency="USD", settle_amount="258.00"))
    assert [f.currency for f in event.money] == ["USD"] and event.drift == ()


def test_unknown_parameters_are_drift_known_ones_are_not_and_field_rules_apply():
    alipay, trade_no = paid()
    notification = alipay.build(trade_no, hb_fq_pay_info='{"USER_INSTALL_NUM":"3"}', new_field="1")
    assert parse_one(notification).drift == ("hb_fq_pay_info", "new_field")
    assert parse_one(notification, rules=FieldRules(ignore=("hb_fq_pay_info",), drop=("new_field",))).drift == ()
    assert {"notify_id", "trade_no", "out_trade_no", "total_amount", "refund_fee", "gmt_refund"} <= KNOWN_FIELDS


@pytest.mark.parametrize(("change", "reason"), [
    ({"total_amount": "258.001"}, "total_amount: not an amount"),
    ({"refund_fee": "300.00", "gmt_refund": "2026-11-22 10:59:00"}, "refund_fee: more than total_amount"),
    ({"refund_fee": "1.00"}, "gmt_refund: required"),
    ({"gmt_payment": None}, "gmt_payment: required"),
    ({"gmt_payment": "2026-11-22 12:00:01"}, "gmt_payment: after the notify_time"),
    ({"gmt_payment": "1999-12-31 23:59:59"}, "gmt_payment: before 2000"),
    ({"gmt_payment": "2026-02-30 10:00:00"}, "gmt_payment: not a date"),
    ({"out_trade_no": "M 1"}, "out_trade_no: not printable ASCII"),
    ({"out_trade_no": "M" * 65}, "out_trade_no: not printable ASCII"),
    ({"notify_id": None}, "notify_id: required"),
    ({"trade_no": None}, "trade_no: required"),
    ({"charset": "big5"}, "charset: not one Alipay sends"),
])
def test_a_signed_notification_with_a_value_the_hub_cannot_read_is_malformed(change, reason):
    alipay, trade_no = paid()
    assert_refused(alipay.build(trade_no, **change), 400, reason)


# Reading the form ------------------------------------------------------------------------------------------

LITERAL = st.sampled_from([chr(c) for c in range(0x20, 0x7F) if chr(c) not in "%&"])
ESCAPE = st.tuples(st.binary(min_size=1, max_size=1), st.booleans()).map(
    lambda t: "%" + (t[0].hex().upper() if t[1] else t[0].hex()))


@given(st.lists(LITERAL | ESCAPE, max_size=40).map("".join))
def test_a_value_is_percent_decoded_exactly_as_urllib_decodes_a_form(value):
    assert read_form(f"x={value}".encode())["x"] == unquote_to_bytes(value.replace("+", " "))


@given(st.binary(max_size=60))
def test_any_bytes_percent_encoded_read_back_as_they_were(raw):
    assert read_form(b"x=" + quote_plus(raw).encode())["x"] == raw


# Yuan to fen ----------------------------------------------------------------------------------------------

@given(st.decimals(min_value=0, max_value=Decimal("9999999999.99"), places=2), st.integers(0, 2))
def test_any_amount_with_at_most_two_decimals_is_read_exactly(amount, places):
    text = f"{amount.quantize(Decimal(1).scaleb(-places), rounding='ROUND_DOWN'):f}"
    assert yuan_to_fen(text, "total_amount") == int(Decimal(text) * 100)


@given(st.decimals(min_value=0, max_value=Decimal("99999999.999999"), places=6), st.integers(3, 6))
def test_any_amount_with_more_than_two_decimals_is_refused_even_when_its_value_is_whole(amount, places):
    text = f"{amount.quantize(Decimal(1).scaleb(-places), rounding='ROUND_DOWN'):f}"
    with pytest.raises(Malformed, match="at most 2 decimals"):
        yuan_to_fen(text, "total_amount")


NOT_PLAIN = ["", " 1", "1 ", "+1", "-1", "-0.01", "1e2", "1E2", "NaN", "Infinity", "0x10", "1_000", "01", "00.10",
             ".5", "5.", "1,00", "１２", "١٢", "¹", "12345678901", "1.2.3", "1e9999"]


@pytest.mark.parametrize("text", NOT_PLAIN)
def test_anything_but_a_plain_decimal_of_ascii_digits_is_refused(text):
    with pytest.raises(Malformed):
        yuan_to_fen(text, "total_amount")


@given(st.text(max_size=14))
def test_any_text_is_either_a_plain_amount_read_exactly_or_refused(text):
    try:
        fen = yuan_to_fen(text, "total_amount")
    except Malformed:
        return
    assert text.isascii() and text.strip() == text and 0 <= fen < 10**12
    assert Decimal(text) * 100 == fen and len(text.partition(".")[2]) <= 2


# The samples -----------------------------------------------------------------------------------------------

SAMPLES = sorted((REPO_ROOT / "events" / "alipay" / "notifications").glob("*.txt"))
SAMPLE_CODES = {"1_wait_buyer_pay": ("WAIT_BUYER_PAY", []), "2_trade_success": ("TRADE_SUCCESS", [25800]),
                "3_partial_refund": ("TRADE_SUCCESS refund", [25800, 5800]),
                "4_full_refund_trade_closed": ("TRADE_CLOSED refund", [25800, 25800]),
                "5_closed_unpaid": ("TRADE_CLOSED", []), "6_trade_success": ("TRADE_SUCCESS", [39900]),
                "7_trade_finished": ("TRADE_FINISHED", [39900]), "8_trade_success_gbk": ("TRADE_SUCCESS", [6800])}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_each_sample_is_what_alipay_sends_and_reads_as_its_readme_says(path):
    body = path.read_bytes().rstrip(b"\n")
    event = CHANNEL.parse(body)[0]
    result, sent = accept(({"Content-Type": "application/x-www-form-urlencoded"}, body), now=event.event_time)
    assert result.reply.body == "success" and sent[0].events == (event,)
    code, amounts = SAMPLE_CODES[path.stem]
    assert event.channel_code == f"trade_status_sync {code}" and [f.amount for f in event.money] == amounts
    assert set(SAMPLE_CODES) == {p.stem for p in SAMPLES}
