"""End to end over HTTP: WeChat Pay and Alipay notifications for mall orders, from the local stand-ins that sign
(and, for WeChat Pay, encrypt) as the providers do, through the hub's webhooks into the payment voucher ledger
(PAY-2), read back with GET /ledger/orders/{order}.

The mall is provider-confirmed: its own "paid" is a claim, so an order's money is what the providers' notifications
say, booked once however often they come. The hub checks WeChat Pay's signed timestamp against its own (real)
clock, so the providers' clock starts a minute in the past: a retry 15 s later is still within the window.
"""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from json_http import http

from infra.demo.money import BEIJING, ProviderLine, forger_key_pem
from infra.demo.traffic import encode, mall_headers, mall_secret, synthetic_mall_order
from infra.standins import wechatpay
from infra.standins.alipay import AlipayStandIn
from orderhub.clock import FixedClock

pytestmark = pytest.mark.e2e

_numbers = count(601)  # the demo's own mini-program orders are 501-510


def raw(method: str, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """Status and body text (Alipay's replies are not JSON)."""
    request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=120) as reply:  # noqa: S310 - loopback
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


class Providers:
    """The local WeChat Pay and Alipay on one clock, a minute behind the hub's, over a line the test can cut."""

    def __init__(self, stack: Any) -> None:
        self.clock = FixedClock(datetime.now(UTC) - timedelta(seconds=60))
        self.line = ProviderLine(self.clock)
        self.wechat = wechatpay.from_config(stack.config, stack.api_url, self.clock, transport=self.line)
        self.alipay = AlipayStandIn.from_config(stack.config, stack.api_url, self.clock, transport=self.line.form)

    def cut(self) -> None:
        self.line.down_until = self.clock.now() + timedelta(seconds=1)

    def heal(self) -> None:
        self.line.down_until = None

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)


@pytest.fixture
def providers(local_stack):
    made = Providers(local_stack)
    yield made
    made.line.close()


def mall_order(stack: Any, paid: bool = True) -> tuple[str, int]:
    """A new mall order (created, and the shop's claim that it was paid): its number and total."""
    created_at = datetime.now(BEIJING) - timedelta(minutes=5)
    index = next(_numbers)
    events = synthetic_mall_order(index, random.Random(index), created_at - timedelta(seconds=index * 7))[:2]  # noqa: S311
    for event in events if paid else events[:1]:
        body = encode(event)
        assert http("POST", f"{stack.api_url}/webhooks/mall", body, mall_headers(mall_secret(stack.config), body)) \
            == (200, {"code": "SUCCESS"})
    stack.wait_until_idle()
    return events[0]["order"]["order_no"], events[0]["order"]["total_amount"]


def ledger(stack: Any, number: str) -> dict[str, Any]:
    status, view = http("GET", f"{stack.api_url}/ledger/orders/mall:{number}",
                        headers={"Authorization": f"Bearer {stack.config.ops_token}"})
    assert status == 200, view
    return view


def movements(view: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [m for m in view["movements"] if m["kind"] == kind]


def test_a_wechatpay_payment_is_booked_once_though_notified_twice_and_a_third_time_late(local_stack, providers):
    number, total = mall_order(local_stack)
    wechat = providers.wechat
    # Given WeChat Pay's first attempt fails (the hub cannot be reached)
    notification = wechat.payment_notification(number, total)
    first = wechat.notify(notification)
    providers.cut()
    assert [a.status for a in wechat.deliver_due()] == [None]
    providers.heal()
    # When the same notification is delivered twice, and the first one's retry comes 15 s later
    wechat.duplicate(notification)
    wechat.deliver_due()
    wechat.duplicate(notification)
    wechat.deliver_due()
    providers.advance(15)
    wechat.deliver_due()
    local_stack.wait_until_idle()
    # Then the hub acknowledged all three copies and the ledger holds one payment of the order's total
    assert [a.status for d in wechat.deliveries for a in d.attempts] == [None, 200, 200, 200]
    assert first.state == "delivered" and len(first.attempts) == 2
    view = ledger(local_stack, number)
    [payment] = movements(view, "payment")
    assert payment["entry_id"] == f"wechatpay:payment:{notification.resource['transaction_id']}"
    assert (payment["state"], payment["amount"], len(payment["records"])) == ("confirmed", total, 1)
    assert view["money"] | {"currencies": None} == {"paid": total, "refunded": 0, "net": total, "pending_in": 0,
                                                   "pending_out": 0, "currencies": None}


def test_an_alipay_payment_is_booked_once_though_notified_twice_and_a_third_time_late(local_stack, providers):
    number, total = mall_order(local_stack)
    alipay = providers.alipay
    # Given Alipay's first notification of the payment fails
    trade_no = alipay.pay(number, total)
    providers.cut()
    assert [d.delivered for d in alipay.deliver_due()] == [False]
    providers.heal()
    # When the same notification (same notify_id, same signed body) is sent twice, and Alipay's own retry comes
    # 4 minutes later
    [notification] = alipay.notifications
    assert alipay.send(notification).delivered and alipay.send(notification).delivered
    providers.advance(4 * 60)
    [late] = alipay.deliver_due()
    local_stack.wait_until_idle()
    # Then it was acknowledged "success" each time and the ledger holds one payment of the order's total
    assert (late.attempt, late.status, late.reply) == (2, 200, "success")
    assert {d.notify_id for d in alipay.deliveries} == {notification.notify_id}
    view = ledger(local_stack, number)
    [payment] = movements(view, "payment")
    assert payment["entry_id"] == f"alipay:payment:{trade_no}"
    assert (payment["state"], payment["amount"], len(payment["records"])) == ("confirmed", total, 1)
    assert (view["money"]["paid"], view["money"]["net"]) == (total, total)


def test_refunds_show_in_the_orders_money(local_stack, providers):
    wechat_no, wechat_total = mall_order(local_stack)
    alipay_no, alipay_total = mall_order(local_stack)
    # Given each order paid
    transaction_id = providers.wechat.pay(wechat_no, wechat_total)
    trade_no = providers.alipay.pay(alipay_no, alipay_total)
    # When WeChat Pay refunds part (and a second refund is closed), and Alipay refunds part, then the rest
    partial = wechat_total // 4
    providers.wechat.refund(transaction_id, partial, "SUCCESS")
    providers.wechat.refund(transaction_id, wechat_total // 10, "CLOSED")
    first = alipay_total // 3
    providers.alipay.refund(trade_no, first, out_biz_no=f"RF{alipay_no}-1")
    providers.alipay.refund(trade_no, alipay_total - first, out_biz_no=f"RF{alipay_no}-2")
    providers.wechat.deliver_due()
    providers.alipay.deliver_due()
    local_stack.wait_until_idle()
    # Then each order's money is its payment less what was refunded; a closed refund returns nothing
    wechat_view = ledger(local_stack, wechat_no)
    assert {k: wechat_view["money"][k] for k in ("paid", "refunded", "net")} == \
        {"paid": wechat_total, "refunded": partial, "net": wechat_total - partial}
    assert sorted(m["state"] for m in movements(wechat_view, "refund")) == ["confirmed", "reversed"]
    alipay_view = ledger(local_stack, alipay_no)
    assert {k: alipay_view["money"][k] for k in ("paid", "refunded", "net")} == \
        {"paid": alipay_total, "refunded": alipay_total, "net": 0}
    # Alipay reports the trade's refunded total each time: each refund is booked as its own step
    assert sorted(m["amount"] for m in movements(alipay_view, "refund")) == sorted([first, alipay_total - first])
    _, order = http("GET", f"{local_stack.api_url}/orders?channel=mall&channel_order_id={alipay_no}",
                    headers={"Authorization": f"Bearer {local_stack.config.ops_token}"})
    assert (order["paid_amount"], order["refunded_amount"], order["payment_status"]) == \
        (alipay_total, alipay_total, "REFUNDED")


def test_a_forged_wechatpay_notification_gets_fail_and_stores_nothing(local_stack, providers):
    number, total = mall_order(local_stack)
    before = ledger(local_stack, number)
    genuine = providers.wechat
    forger = wechatpay.WeChatPayStandIn(local_stack.api_url, genuine.apiv3_key, genuine.mchid, genuine.appid,
                                       forger_key_pem(), genuine.serial, providers.clock)
    headers, body = forger.request(forger.payment_notification(number, total))
    status, reply = raw("POST", f"{local_stack.api_url}/webhooks/wechatpay", body, headers)
    local_stack.wait_until_idle()
    assert (status, json.loads(reply)) == (401, {"code": "FAIL", "message": "signature does not match"})
    assert ledger(local_stack, number) == before and before["movements"] == []


def test_a_forged_alipay_notification_gets_failure_and_stores_nothing(local_stack, providers):
    number, total = mall_order(local_stack)
    before = ledger(local_stack, number)
    forger = AlipayStandIn(local_stack.api_url, providers.alipay.app_id, providers.alipay.seller_id,
                           forger_key_pem(), providers.clock)
    forger.pay(number, total)
    [notification] = forger.notifications
    status, reply = raw("POST", f"{local_stack.api_url}/webhooks/alipay", notification.body, notification.headers)
    local_stack.wait_until_idle()
    assert (status, reply) == (401, "failure")
    assert ledger(local_stack, number) == before and before["movements"] == []
