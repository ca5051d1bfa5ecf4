"""WeChat Pay notifications correctly signed and encrypted around hostile resources: a 2xx books sane money,
anything else is a 4xx with a reason and nothing queued.

The signature and the GCM tag prove only who sent the bytes, not that they are sane: a resource with a key
twice, nested 1,000 deep, with a 5,000-digit amount or not UTF-8 at all must be refused like any other
channel's. Raw JSON text is spliced into the stand-in's payment resource (what an encoder never writes
reaches the hub as a broken sender would send it), then encrypted with the APIv3 key and signed with the
development platform key. Accepted messages are mapped on moto's DynamoDB with a ledger: nothing raises.
"""

from __future__ import annotations

import json
import random
import zlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hostile.test_signed_hostile_requests import DATES, JSON_STRING, MEMBERS, NUMBERS, VALUE, SqsQueue
from infra.config import load_config
from infra.standins.wechatpay import WeChatPayStandIn, from_config
from orderhub.channels.base import ChannelSettings, InboundRequest
from orderhub.channels.wechatpay import CHANNEL
from orderhub.clock import FixedClock
from orderhub.intake import accept_webhook
from orderhub.mapping import map_message
from orderhub.payments.ledger import InMemoryLedger

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
CONFIG = load_config()
WECHATPAY = CONFIG.channels["wechatpay"]
SETTINGS = ChannelSettings(secrets=tuple(WECHATPAY.secrets), options={**WECHATPAY.options, **WECHATPAY.secret_options})
IDENTITY_FIELDS = ("out_trade_no", "transaction_id", "mchid", "appid")
AMOUNT_FIELDS = ("amount.total", "amount.payer_total")
TIME_FIELDS = ("success_time",)
_HOLE = "hostile-value-goes-here"


@pytest.fixture(autouse=True)
def hub_settings(monkeypatch):
    monkeypatch.setattr(CHANNEL, "settings_source", lambda: SETTINGS)


def standin(seed: int = 11) -> WeChatPayStandIn:
    return from_config(CONFIG, "http://hub.invalid", FixedClock(NOW), rng=random.Random(seed))


TEMPLATE = standin().payment_notification("M20261118001", 25800, NOW).resource


def resource_with(value_at: str | None = None, value_json: str = "null", members: str = "") -> bytes:
    """The payment resource as raw JSON text: the field at `value_at` set to the text `value_json`, and
    the members text `members` added at its end."""
    resource = json.loads(json.dumps(TEMPLATE))
    if value_at is not None:
        *parents, last = value_at.split(".")
        holder = resource
        for part in parents:
            holder = holder[part]
        holder[last] = _HOLE
    text = json.dumps(resource, ensure_ascii=False)
    if value_at is not None:
        text = text.replace(json.dumps(_HOLE), value_json)
    if members:
        text = text[:-1] + ", " + members + "}"
    return text.encode("utf-8", "surrogatepass")


def accept(plaintext: bytes, event_type: str = "TRANSACTION.SUCCESS", body: bytes | None = None):
    pay = standin(zlib.crc32(plaintext))  # a notification id of its own for each resource
    notification = pay.seal(event_type, plaintext, NOW)
    if body is not None:
        notification = type(notification)(notification.id, event_type, body, plaintext)
    queue = SqsQueue()
    result = accept_webhook(InboundRequest("wechatpay", *pay.request(notification), "203.0.113.9"), "req-hostile",
                            lambda _: SETTINGS, queue, FixedClock(NOW))
    return result, queue.sent


def refused_with(plaintext: bytes, status: int, reason: str, **kwargs) -> None:
    result, sent = accept(plaintext, **kwargs)
    assert result.reply.status_code == status and sent == [], result
    assert result.rejection is not None and result.rejection.startswith(reason), result.rejection
    assert json.loads(result.reply.body) == {"code": "FAIL", "message": result.rejection[:64]}


def _nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def test_the_unchanged_template_is_accepted():
    result, sent = accept(resource_with())
    assert result.reply.status_code == 200 and len(sent) == 1


@pytest.mark.parametrize(("plaintext", "status", "reason"), [
    (resource_with("attach", _nested(40)), 400, "resource (decrypted): JSON nested deeper than 32 levels"),
    (resource_with("attach", _nested(1200)), 400, "resource (decrypted): JSON nested deeper than 32 levels"),
    (resource_with("amount.total", "9" * 5000), 400, "resource (decrypted): body is not JSON (a number too long"),
    (resource_with("amount.total", "18446744073709551616"), 400,
     "resource.amount.total: Input should be less than or equal to 1000000000000"),
    (resource_with("amount.total", "1e400"), 400, "resource.amount.total: Input should be a valid integer"),
    (resource_with("amount.total", "NaN"), 400, "resource (decrypted): NaN is not a JSON number"),
    (resource_with("amount.total", "-1"), 400, "resource.amount.total: Input should be greater than or equal to 0"),
    (resource_with("amount.total", "-0.5"), 400, "resource.amount.total: Input should be a valid integer"),
    (resource_with("amount.total", "258.5"), 400, "resource.amount.total: Input should be a valid integer"),
    (resource_with("amount.total", "1E+2"), 400, "resource.amount.total: Input should be a valid integer"),
    (resource_with("amount.total", '"25800"'), 400, "resource.amount.total: Input should be a valid integer"),
    (resource_with("amount.total", "true"), 400, "resource.amount.total: Input should be a valid integer"),
    (resource_with("amount.payer_total", "-25800"), 400,
     "resource.amount.payer_total: Input should be greater than or equal to 0"),
    (resource_with(members='"transaction_id": "4200000000000000000000000001"'), 400,
     "resource (decrypted): JSON object with the key 'transaction_id' twice"),
    (resource_with("amount", '{"total": 1, "total": 25800, "currency": "CNY"}'), 400,
     "resource (decrypted): JSON object with the key 'total' twice"),
    (resource_with("out_trade_no", '"M1\\ud800"'), 400, "resource (decrypted): JSON string with a lone UTF-16"),
    (resource_with("out_trade_no", '"M1\\u0000"'), 400, "resource.out_trade_no: String should match pattern"),
    (resource_with("out_trade_no", json.dumps("M" * 65)), 400, "resource.out_trade_no: String should have at most"),
    (resource_with("success_time", '"2286-11-20T17:46:40+08:00"'), 400, "event "),
    (resource_with("success_time", '"1999-12-31T23:59:59+08:00"'), 400, "event "),
    (resource_with("success_time", '"2026-11-22 10:59:59"'), 400, "resource.success_time: must be an RFC 3339"),
    (resource_with("success_time", '"\uff12\uff10\uff12\uff16-11-22T10:59:59+08:00"'), 400,
     "resource.success_time: must be an RFC 3339"),
    (resource_with("amount.currency", '"\u0043\u004e\u0059\u0301"'), 400, "resource.amount.currency: String should"),
    ("{\"mchid\": \"1900009191\"}".encode("gbk") + "商户".encode("gbk"), 400,
     "resource (decrypted): body is not JSON (not UTF-8)"),
    ("支付成功".encode("gbk"), 400, "resource (decrypted): body is not JSON (not UTF-8)"),
    (b"\xef\xbb\xbf" + resource_with(), 400, "resource (decrypted): body is not JSON"),
    (b"", 400, "resource (decrypted): body is not JSON"),
    (b"[]", 400, "resource (decrypted): must be a JSON object"),
    (b'"M20261118001"', 400, "resource (decrypted): must be a JSON object"),
    (resource_with(members=", ".join(f'"x{i}": {i}' for i in range(10_001))), 413, "body larger than 65536 bytes"),
])
def test_a_hostile_resource_is_refused_with_its_reason_and_nothing_is_queued(plaintext, status, reason):
    refused_with(plaintext, status, reason)


def test_a_hostile_refund_is_refused_as_a_payment_is():
    pay = standin()
    paid = pay.payment_notification("M20261118001", 25800, NOW)
    refund = pay.refund_notification(paid.resource["transaction_id"], 5800, "SUCCESS", NOW).resource
    text = json.dumps(refund).replace('"refund": 5800', '"refund": -5800').encode()
    refused_with(text, 400, "resource.amount.refund: Input should be greater than or equal to 0",
                 event_type="REFUND.SUCCESS")
    twice = json.dumps(refund)[:-1].encode() + b', "refund_id": "50300000000000000000000000001"}'
    refused_with(twice, 400, "resource (decrypted): JSON object with the key 'refund_id' twice",
                 event_type="REFUND.SUCCESS")


@pytest.mark.parametrize(("change", "reason"), [
    (lambda text: text[:-1] + ', "event_type": "TRANSACTION.SUCCESS"}', "JSON object with the key 'event_type' twice"),
    (lambda text: text.replace('"summary":"支付成功"', f'"summary":{_nested(1200)}'), "JSON nested deeper"),
    (lambda text: text.replace('"id":"', '"id":"\\u0007'), "id: String should match pattern"),
    (lambda text: text.replace('"nonce":"', '"nonce":"\\ud800'), "JSON string with a lone UTF-16 surrogate"),
])
def test_a_hostile_envelope_is_refused_before_anything_is_decrypted(change, reason):
    notification = standin().seal("TRANSACTION.SUCCESS", resource_with(), NOW)
    body = change(notification.body.decode()).encode("utf-8", "surrogatepass")
    refused_with(resource_with(), 400, reason, body=body)


def hostile_resources() -> st.SearchStrategy[tuple[str | None, str, str]]:
    """(field set to a hostile value, or none; its JSON text; hostile members added, or a key twice)."""
    fields = IDENTITY_FIELDS + AMOUNT_FIELDS + TIME_FIELDS + ("amount.currency", "attach", "payer")
    replaced = st.tuples(st.none(), st.just("null")) | st.tuples(st.sampled_from(fields), VALUE) \
        | st.tuples(st.sampled_from(TIME_FIELDS), DATES) | st.tuples(st.sampled_from(AMOUNT_FIELDS), NUMBERS) \
        | st.tuples(st.sampled_from(IDENTITY_FIELDS), JSON_STRING)
    twice = st.tuples(st.sampled_from(sorted(TEMPLATE)), VALUE).map(lambda kv: f"{json.dumps(kv[0])}: {kv[1]}")
    return st.tuples(replaced, st.just("") | MEMBERS | twice).map(lambda r: (*r[0], r[1]))


@settings(settings.get_profile("hostile"))
@given(drawn=hostile_resources())
def test_a_signed_and_encrypted_resource_of_any_shape_is_2xx_with_sane_money_or_4xx_with_a_reason(moto_store, drawn):
    field, value_json, members = drawn
    result, sent = accept(resource_with(field, value_json, members))
    status = result.reply.status_code
    assert 200 <= status < 300 or 400 <= status < 500, result.reply
    if status >= 400:
        assert sent == [] and result.rejection
        assert json.loads(result.reply.body) == {"code": "FAIL", "message": result.rejection[:64]}
        return
    (message,) = sent
    (event,) = message.events
    (money,) = event.money
    assert type(money.amount) is int and 0 <= money.amount <= 10**12 and len(money.currency) == 3
    if field in AMOUNT_FIELDS:  # an amount is accepted only as a JSON integer, and booked as sent
        assert value_json.lstrip("-").isdigit() and (field != "amount.total" or money.amount == int(value_json))
    # The mapping leg on DynamoDB's own refusals: logged, and written when it applied; nothing raises
    (outcome,) = map_message(message, moto_store, FixedClock(NOW), ledger=InMemoryLedger())
    assert event.event_id in {e.channel_event_id for e in moto_store.list_events(outcome.order_id)}
    if outcome.outcome == "applied":
        order = moto_store.get_order(outcome.order_id)
        assert order is not None and any(line.reference == money.reference for line in order.ledger.values())
