"""The `wechatpay` channel: WeChat Pay API v3 notifications, verified, decrypted and booked as money facts.

Requests are made by the stand-in (infra/standins/wechatpay.py) with the development keys of
config/local.toml and go through `accept_webhook` with a recording queue: a refused request must
answer WeChat Pay's failure body and leave nothing queued.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from infra.config import load_config
from infra.standins.wechatpay import KEYS_DIR, WeChatPayStandIn, from_config, wechat_time
from orderhub.channels.base import ChannelSettings, FieldRules, InboundRequest, Unauthorized
from orderhub.channels.wechatpay import CHANNEL, KNOWN_FIELDS, WeChatPayChannel
from orderhub.clock import FixedClock
from orderhub.intake import accept_webhook
from orderhub.lifecycle.statuses import EventKind
from orderhub.models.order import MethodClass, MoneyFact, MoneyKind, MoneyState, OrderEvent

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
CONFIG = load_config()
WECHATPAY = CONFIG.channels["wechatpay"]
KEY_2026 = "PUB_KEY_ID_0119000091912026120100000000000001"
KEY_2025 = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
APIV3_KEY = WECHATPAY.secrets[0]
PREVIOUS_APIV3_KEY = "pQ3vT8xW1zY6bN0mK4jH7gF2dS5aL9cE"  # 32 ASCII characters, as WeChat Pay requires
SETTINGS = ChannelSettings(secrets=tuple(WECHATPAY.secrets), options={**WECHATPAY.options, **WECHATPAY.secret_options})


def settings_with(**options) -> ChannelSettings:
    return replace(SETTINGS, options={**SETTINGS.options, **options})


class Queue:
    def __init__(self):
        self.sent = []

    def send(self, message):
        self.sent.append(message)


@pytest.fixture(autouse=True)
def hub_settings(monkeypatch):
    """The registered channel reads the same settings in parse as ingest hands authenticate."""
    current = {"settings": SETTINGS}
    monkeypatch.setattr(CHANNEL, "settings_source", lambda: current["settings"])
    return current


def standin(serial: str = KEY_2026, seed: int = 7, **overrides) -> WeChatPayStandIn:
    made = from_config(CONFIG, "http://hub.invalid", FixedClock(NOW), serial=serial, rng=random.Random(seed))
    for name, value in overrides.items():
        setattr(made, name, value)
    return made


def accept(headers: dict[str, str], body: bytes, settings: ChannelSettings = SETTINGS, at: datetime = NOW,
           hub_settings: dict | None = None):
    if hub_settings is not None:
        hub_settings["settings"] = settings
    queue = Queue()
    result = accept_webhook(InboundRequest("wechatpay", headers, body, "203.0.113.9"), "req-1", lambda _: settings,
                            queue, FixedClock(at))
    return result, queue.sent


def refused(result, sent, status: int, reason: str) -> None:
    """WeChat Pay's failure body, the reason cut to its 64 characters (the hub logs it whole); nothing queued."""
    assert result.rejection == reason
    assert (result.reply.status_code, json.loads(result.reply.body)) == (status, {"code": "FAIL",
                                                                                  "message": reason[:64]})
    assert result.reply.content_type == "application/json"
    assert sent == []


def paid_request(pay: WeChatPayStandIn | None = None, amount: int = 25800, at: datetime = NOW):
    pay = pay or standin()
    notification = pay.payment_notification("M20261118001", amount, at - timedelta(seconds=3))
    return (*pay.request(notification, at), notification)


# Authentication ---------------------------------------------------------------------------------

def test_a_notification_as_wechat_pay_sends_it_is_answered_200_with_no_body_and_queued_with_its_headers():
    headers, body, _ = paid_request()
    result, sent = accept(headers, body)
    assert (result.reply.status_code, result.reply.body, result.accepted_events) == (200, "", 1)
    (message,) = sent
    assert message.body == body and message.channel == "wechatpay"
    assert message.headers == {k: headers[k] for k in ("wechatpay-timestamp", "wechatpay-nonce",
                                                       "wechatpay-signature", "wechatpay-serial")}


@pytest.mark.parametrize("header", ["wechatpay-signature", "wechatpay-serial", "wechatpay-nonce",
                                    "wechatpay-timestamp"])
def test_each_signature_header_is_required(header):
    headers, body, _ = paid_request()
    del headers[header]
    spelled = "-".join(part.capitalize() for part in header.split("-"))
    refused(*accept(headers, body), 401, f"missing {spelled}")


def _flip(text: str, at: int) -> str:
    return text[:at] + chr(ord(text[at]) ^ 1) + text[at + 1:]


def test_a_bit_flipped_in_the_body_the_signature_the_timestamp_or_the_nonce_breaks_the_signature():
    headers, body, _ = paid_request()
    at = body.index(b'"ciphertext":"') + 20
    cases = [(headers, body[:at] + bytes([body[at] ^ 1]) + body[at + 1:])]
    signature = bytearray(base64.b64decode(headers["wechatpay-signature"]))
    signature[100] ^= 0x10
    cases.append(({**headers, "wechatpay-signature": base64.b64encode(bytes(signature)).decode()}, body))
    cases.append(({**headers, "wechatpay-timestamp": str(int(headers["wechatpay-timestamp"]) - 1)}, body))
    cases.append(({**headers, "wechatpay-nonce": _flip(headers["wechatpay-nonce"], 5)}, body))
    for case_headers, case_body in cases:
        refused(*accept(case_headers, case_body), 401, "signature does not match")


def test_a_signature_made_with_another_configured_key_than_the_serial_names_is_refused():
    headers, body, _ = paid_request(standin(KEY_2026))
    refused(*accept({**headers, "wechatpay-serial": KEY_2025}, body), 401, "signature does not match")


def test_a_serial_the_hub_has_no_key_for_is_refused():
    headers, body, _ = paid_request()
    unknown = "PUB_KEY_ID_0119000091912027010100000000000009"
    refused(*accept({**headers, "wechatpay-serial": unknown}, body), 401,
            f"Wechatpay-Serial {unknown} names no configured WeChat Pay key")
    refused(*accept({**headers, "wechatpay-serial": "../../etc"}, body), 401,
            "Wechatpay-Serial is not a certificate serial or public key id")


def test_during_a_key_rotation_the_previous_key_verifies_until_it_is_removed(hub_settings):
    headers, body, _ = paid_request(standin(KEY_2025))
    result, sent = accept(headers, body)
    assert result.reply.status_code == 200 and len(sent) == 1
    rotated = settings_with(platform_keys={KEY_2026: SETTINGS.options["platform_keys"][KEY_2026]})
    refused(*accept(headers, body, rotated, hub_settings=hub_settings), 401,
            f"Wechatpay-Serial {KEY_2025} names no configured WeChat Pay key")


def test_a_stale_or_future_timestamp_is_refused_with_how_far_off_it_is():
    pay = standin()
    notification = pay.payment_notification("M20261118001", 25800, NOW)
    refused(*accept(*pay.request(notification, NOW - timedelta(seconds=301))), 401,
            "Wechatpay-Timestamp is 301 s behind the hub clock (tolerance 300 s)")
    refused(*accept(*pay.request(notification, NOW + timedelta(seconds=61))), 401,
            "Wechatpay-Timestamp is 61 s ahead of the hub clock (tolerance 60 s)")
    for within in (-300, 60):
        assert accept(*pay.request(notification, NOW + timedelta(seconds=within)))[0].reply.status_code == 200


def test_wechat_pays_signature_probe_is_refused_as_a_failed_verification():
    headers, body, _ = paid_request()
    probe = {**headers, "wechatpay-signature": "WECHATPAY/SIGNTEST/" + headers["wechatpay-signature"]}
    refused(*accept(probe, body), 401, "signature probe (WECHATPAY/SIGNTEST/): refused as WeChat Pay asks")


def test_malformed_signature_headers_are_refused_before_any_key_is_used():
    headers, body, _ = paid_request()
    refused(*accept({**headers, "wechatpay-signature": "not base64!"}, body), 401, "Wechatpay-Signature is not base64")
    refused(*accept({**headers, "wechatpay-signature-type": "WECHATPAY2-SM2-WITH-SM3"}, body), 401,
            "Wechatpay-Signature-Type must be WECHATPAY2-SHA256-RSA2048")
    # A line break would let a body's first line pass for part of the nonce: one line only.
    refused(*accept({**headers, "wechatpay-nonce": "abc\ndef"}, body), 401,
            "Wechatpay-Nonce must be 1-64 printable ASCII characters")
    refused(*accept({**headers, "wechatpay-timestamp": "\u00b9\u2077\u2079\u2075"}, body), 401,
            "Wechatpay-Timestamp is not Unix seconds")


def test_a_notification_for_another_merchant_or_app_is_refused_and_nothing_is_kept():
    other_merchant = standin(mchid="1900000001")
    refused(*accept(*paid_request(other_merchant)[:2]), 401, "resource.mchid is not this hub's merchant account")
    other_app = standin(appid="wx0000000000000001")
    refused(*accept(*paid_request(other_app)[:2]), 401, "resource.appid is not one of this hub's apps")


def test_a_merchant_with_several_apps_lists_them(hub_settings):
    other_app = standin(appid="wx0000000000000001")
    several = settings_with(appid=[WECHATPAY.options["appid"], "wx0000000000000001"])
    result, sent = accept(*paid_request(other_app)[:2], several, hub_settings=hub_settings)
    assert result.reply.status_code == 200 and len(sent) == 1


def test_a_hub_without_a_merchant_id_refuses_rather_than_books_anyones_money(hub_settings):
    unconfigured = replace(SETTINGS, options={k: v for k, v in SETTINGS.options.items() if k != "mchid"})
    refused(*accept(*paid_request()[:2], unconfigured, hub_settings=hub_settings), 401,
            "the hub has no WeChat Pay mchid configured")


def test_a_resource_no_configured_apiv3_key_opens_is_refused_401_though_correctly_signed():
    pay = standin()
    plaintext = pay.payment_notification("M20261118001", 25800, NOW).plaintext
    foreign = pay.seal("TRANSACTION.SUCCESS", plaintext, NOW, apiv3_key="k" * 32)
    refused(*accept(*pay.request(foreign)), 401, "resource cannot be decrypted with any configured APIv3 key")


def test_a_ciphertext_changed_and_signed_again_fails_the_gcm_tag():
    pay = standin()
    notification = pay.payment_notification("M20261118001", 25800, NOW)
    envelope = json.loads(notification.body)
    sealed = bytearray(base64.b64decode(envelope["resource"]["ciphertext"]))
    sealed[0] ^= 1  # the first byte of the resource's plaintext
    envelope["resource"]["ciphertext"] = base64.b64encode(bytes(sealed)).decode()
    tampered = replace(notification, body=json.dumps(envelope, ensure_ascii=False).encode())
    refused(*accept(*pay.request(tampered)), 401, "resource cannot be decrypted with any configured APIv3 key")


def test_during_an_apiv3_key_rotation_the_previous_key_still_decrypts(hub_settings):
    pay = standin()
    plaintext = pay.payment_notification("M20261118001", 25800, NOW).plaintext
    old = pay.request(pay.seal("TRANSACTION.SUCCESS", plaintext, NOW, apiv3_key=PREVIOUS_APIV3_KEY))
    both = replace(SETTINGS, secrets=(APIV3_KEY, PREVIOUS_APIV3_KEY))
    result, sent = accept(*old, both, hub_settings=hub_settings)
    assert result.reply.status_code == 200 and len(sent) == 1
    refused(*accept(*old, SETTINGS, hub_settings=hub_settings), 401,
            "resource cannot be decrypted with any configured APIv3 key")


def test_a_platform_certificate_verifies_within_its_validity_and_only_for_its_own_serial(hub_settings):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    private = serialization.load_pem_private_key((KEYS_DIR / "wechatpay_platform_2025.pem").read_bytes(), None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA (development)")])
    serial = int(KEY_2025, 16)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
            .serial_number(serial).not_valid_before(NOW - timedelta(days=365))
            .not_valid_after(NOW + timedelta(days=1)).sign(private, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    with_cert = settings_with(platform_keys={KEY_2025: pem})
    headers, body, _ = paid_request(standin(KEY_2025))
    assert accept(headers, body, with_cert, hub_settings=hub_settings)[0].reply.status_code == 200
    later = NOW + timedelta(days=2)
    refused(*accept(*paid_request(standin(KEY_2025, clock=FixedClock(later)), at=later)[:2], with_cert, at=later,
                    hub_settings=hub_settings), 401, f"the platform certificate {KEY_2025} is not valid now")
    misnamed = settings_with(platform_keys={KEY_2026: pem})
    refused(*accept({**headers, "wechatpay-serial": KEY_2026}, body, misnamed, hub_settings=hub_settings),
            401, f"the certificate configured for {KEY_2026} has another serial number")


def test_refusal_messages_are_cut_to_the_64_characters_wechat_pay_reads():
    reply = CHANNEL.rejected(Unauthorized("x" * 100))
    assert json.loads(reply.body) == {"code": "FAIL", "message": "x" * 64}


def test_a_body_over_64_kib_is_refused_413_before_anything_is_read():
    headers, body, _ = paid_request()
    padded = body[:-1] + b',"pad":"' + b"p" * 70_000 + b'"}'
    refused(*accept(headers, padded), 413, "body larger than 65536 bytes")


# Parsing: what each notification books -------------------------------------------------------------

def test_a_payment_books_a_confirmed_online_payment_and_marks_the_mall_order_paid():
    pay = standin()
    notification = pay.payment_notification("M20261118001", 25800, NOW - timedelta(seconds=3))
    (event,) = CHANNEL.parse(notification.body)
    resource = notification.resource
    success = datetime.fromisoformat(resource["success_time"])
    assert event == OrderEvent(
        channel="mall", channel_order_id="M20261118001", source="wechatpay", event_id=notification.id,
        channel_code="TRANSACTION.SUCCESS", kinds=(EventKind.PAID,), event_time=success,
        money=(MoneyFact(provider="wechatpay", kind=MoneyKind.PAYMENT, reference=resource["transaction_id"],
                         state=MoneyState.CONFIRMED, amount=25800, currency="CNY", method=MethodClass.ONLINE,
                         merchant_reference="M20261118001", account="1900009191", occurred_at=success,
                         payload=notification.plaintext.decode()),))
    assert success == NOW - timedelta(seconds=3) and resource["success_time"].endswith("+08:00")


@pytest.mark.parametrize(("status", "state", "note"), [
    ("SUCCESS", MoneyState.CONFIRMED, ""),
    ("ABNORMAL", MoneyState.PENDING, "refund abnormal: not returned to the buyer yet (card closed or frozen); "
                                     "finish it in the merchant platform"),
    ("CLOSED", MoneyState.REVERSED, "refund closed: no money returned"),
])
def test_a_refund_books_its_state_against_the_payment_it_returns(status, state, note):
    pay = standin()
    paid = pay.payment_notification("M20261118001", 25800, NOW - timedelta(hours=1))
    transaction_id = paid.resource["transaction_id"]
    notification = pay.refund_notification(transaction_id, 5800, status, NOW)
    (event,) = CHANNEL.parse(notification.body)
    resource = notification.resource
    assert ("success_time" in resource) is (status == "SUCCESS")
    # Only a successful refund has a time of its own; the others happened when WeChat Pay told of them.
    at = datetime.fromisoformat(resource.get("success_time") or json.loads(notification.body)["create_time"])
    assert event == OrderEvent(
        channel="mall", channel_order_id="M20261118001", source="wechatpay", event_id=notification.id,
        channel_code=f"REFUND.{status}", kinds=(), event_time=at,
        money=(MoneyFact(provider="wechatpay", kind=MoneyKind.REFUND, reference=resource["refund_id"], state=state,
                         amount=5800, currency="CNY", method=MethodClass.ONLINE, payment_reference=transaction_id,
                         merchant_reference=resource["out_refund_no"], account="1900009191", occurred_at=at,
                         note=note, payload=notification.plaintext.decode()),))


def test_a_successful_refund_is_booked_when_it_succeeded_not_when_it_was_notified():
    pay = standin()
    paid = pay.payment_notification("M20261118001", 25800, NOW - timedelta(hours=1))
    refund = pay.refund_notification(paid.resource["transaction_id"], 5800, "SUCCESS", NOW - timedelta(minutes=10))
    notified = pay.seal("REFUND.SUCCESS", refund.plaintext, NOW)  # the same refund, told of 10 minutes later
    (event,) = CHANNEL.parse(notified.body)
    assert event.event_time == event.money[0].occurred_at == NOW - timedelta(minutes=10)


def test_the_orders_channel_and_the_refund_currency_come_from_the_options(hub_settings):
    hub_settings["settings"] = settings_with(orders_channel="woocommerce", currency="HKD")
    pay = standin()
    paid = pay.payment_notification("1042", 9900, NOW, currency="HKD")
    (payment,) = CHANNEL.parse(paid.body)
    (refund,) = CHANNEL.parse(pay.refund_notification(paid.resource["transaction_id"], 900, "SUCCESS", NOW).body)
    assert (payment.channel, payment.channel_order_id, payment.money[0].currency) == ("woocommerce", "1042", "HKD")
    assert (refund.channel, refund.money[0].currency) == ("woocommerce", "HKD")


def test_an_event_type_the_hub_has_no_use_for_is_acknowledged_and_nothing_is_kept():
    pay = standin()
    notification = pay.seal("MCHTRANSFER.BILL.FINISHED", b'{"out_bill_no":"x"}', NOW, original_type="mch_payment")
    assert CHANNEL.parse(notification.body) == []
    result, sent = accept(*pay.request(notification))
    assert (result.reply.status_code, result.reply.body, sent) == (200, "", [])


def _sealed(resource: dict | bytes, event_type: str = "TRANSACTION.SUCCESS") -> bytes:
    pay = standin()
    plaintext = resource if isinstance(resource, bytes) else json.dumps(resource, ensure_ascii=False).encode()
    return pay.seal(event_type, plaintext, NOW).body


def _resource(**changes) -> dict:
    resource = standin().payment_notification("M20261118001", 25800, NOW).resource
    for path, value in changes.items():
        *parents, last = path.split("__")
        holder = resource
        for part in parents:
            holder = holder[part]
        holder[last] = value
    return resource


def _malformed(body: bytes) -> str:
    """The reason a correctly signed `body` is refused 400 for (nothing queued)."""
    result, sent = accept(*standin().request(replace(standin().payment_notification("x", 1, NOW), body=body)))
    assert result.rejection is not None
    refused(result, sent, 400, result.rejection)
    return result.rejection


@pytest.mark.parametrize(("value", "reason"), [
    ("25800", "Input should be a valid integer"), (258.5, "Input should be a valid integer"),
    (True, "Input should be a valid integer"), (-1, "Input should be greater than or equal to 0"),
    (10**12 + 1, "Input should be less than or equal to 1000000000000"), (None, "Input should be a valid integer"),
])
def test_an_amount_must_be_whole_non_negative_fen(value, reason):
    assert _malformed(_sealed(_resource(amount__total=value))) == f"resource.amount.total: {reason}"


@pytest.mark.parametrize("currency", ["cny", "RMB1", "", "元"])
def test_a_currency_must_be_three_capital_letters(currency):
    assert _malformed(_sealed(_resource(amount__currency=currency))).startswith("resource.amount.currency: String")


def test_what_a_payment_must_carry_and_how():
    assert _malformed(_sealed(_resource(trade_state="NOTPAY"))) == "resource.trade_state: Input should be 'SUCCESS'"
    assert _malformed(_sealed(_resource(success_time="2026-11-22 10:59:59"))).startswith(
        "resource.success_time: must be an RFC 3339 time with an offset")
    assert _malformed(_sealed(_resource(out_trade_no="M1\u0000"))).startswith("resource.out_trade_no: String")
    missing = _resource()
    del missing["transaction_id"]
    assert _malformed(_sealed(missing)) == "resource.transaction_id: Field required"


def test_a_refund_must_agree_with_its_event_type_and_stay_within_its_payment():
    pay = standin()
    paid = pay.payment_notification("M20261118001", 25800, NOW)
    refund = pay.refund_notification(paid.resource["transaction_id"], 5800, "SUCCESS", NOW).resource
    assert _malformed(_sealed(refund, "REFUND.CLOSED")) == \
        "resource.refund_status: SUCCESS in a REFUND.CLOSED notification"
    over = {**refund, "amount": {**refund["amount"], "refund": 25801}}
    assert _malformed(_sealed(over, "REFUND.SUCCESS")) == \
        "resource.amount: refund is more than the payment's total"
    assert _malformed(_sealed(refund, "TRANSACTION.SUCCESS")).startswith("resource.appid: Field required")


def test_the_envelope_is_checked_before_anything_is_decrypted():
    envelope = json.loads(_sealed(_resource()))
    assert _malformed(json.dumps({**envelope, "resource_type": "plain"}).encode()) == \
        "resource_type: Input should be 'encrypt-resource'"
    envelope["resource"]["algorithm"] = "AES_128_CBC"
    assert _malformed(json.dumps(envelope).encode()) == "resource.algorithm: Input should be 'AEAD_AES_256_GCM'"
    envelope["resource"] |= {"algorithm": "AEAD_AES_256_GCM", "original_type": "refund"}
    assert _malformed(json.dumps(envelope).encode()) == \
        "resource.original_type: TRANSACTION.SUCCESS carries a transaction"
    assert _malformed(b"[]") == "body must be a JSON object"
    assert _malformed(b'{"event_type": 7}') == "event_type: required"


def test_a_validation_refusal_names_the_field_and_never_repeats_the_decrypted_values():
    reason = _malformed(_sealed(_resource(amount__total="openid-oUpF8uMuAJO")))
    assert "oUpF8" not in reason and reason.startswith("resource.amount.total")


def test_fields_the_schema_does_not_know_are_drift_and_the_field_rules_apply():
    body = _sealed(_resource(amount__settlement_total=25800, coupon_hint="x"))
    (event,) = CHANNEL.parse(body)
    assert event.drift == ("resource.plaintext.amount.settlement_total", "resource.plaintext.coupon_hint")
    (quiet,) = CHANNEL.parse(body, rules=FieldRules(ignore=("resource.plaintext.coupon_hint",),
                                                    drop=("resource.plaintext.amount.settlement_total",)))
    assert quiet.drift == ()
    assert "resource.plaintext.promotion_detail[].goods_detail[].discount_amount" in KNOWN_FIELDS


def test_a_replay_reparses_the_stored_body_into_the_events_ingest_queued():
    headers, body, _ = paid_request()
    _, (message,) = accept(headers, body)
    assert list(message.events) == CHANNEL.parse(message.body, message.headers)


def test_without_a_source_given_the_channel_reads_the_hubs_configuration(monkeypatch):
    import orderhub.settings

    asked = []
    monkeypatch.setattr(orderhub.settings, "channel_config", lambda name: asked.append(name) or SETTINGS)
    (event,) = WeChatPayChannel().parse(paid_request()[1])
    assert asked == ["wechatpay"] and event.money[0].amount == 25800


def test_times_are_read_as_wechat_pay_writes_them():
    at = datetime(2026, 11, 22, 23, 59, 59, tzinfo=UTC)
    assert wechat_time(at) == "2026-11-23T07:59:59+08:00"
    (event,) = CHANNEL.parse(_sealed(_resource(success_time="2026-11-22T02:59:57.5Z")))
    assert event.event_time == datetime(2026, 11, 22, 2, 59, 57, 500000, tzinfo=UTC)
