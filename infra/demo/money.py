"""The demo's money day (PAY-2): WeChat Pay and Alipay callbacks, the voucher ledger, finance's bank transfer
and the money exceptions, checked against what the demo sent.

Runs on the demo's local runtime after the channel traffic (infra/demo/day.py), before any scheduled run of the
SLA watchdog. The merchant's own shop (`mall`) is provider-confirmed: its "paid" is a claim, and its money is
booked only by the payment providers' notifications or by finance. So:

- every paid mall order the channel traffic sent gets its provider's notifications (WeChat Pay or Alipay, as
  the shop's claim names it; its refunds too), except one, left without any so that `payment_unconfirmed`
  shows;
- new mini-program orders are paid and refunded through the local WeChat Pay and Alipay
  (infra/standins/wechatpay.py, alipay.py), which sign and encrypt as the providers do: a notification
  duplicated, a refund notified while the providers could not reach the hub (delivered on WeChat Pay's retry
  schedule, 34 minutes later), a payment whose replies were lost (the hub got it three times), a payment after
  the order was cancelled, an order paid twice, an amount that is not the order's, a refund of an order the hub
  holds no payment for, WeChat Pay refunds (partial; abnormal, then finished; closed) and Alipay's partial then
  full refund (its refund_fee is the trade's refunded total);
- finance records a bank transfer (`orderhub ledger record-transfer`, pending) and confirms it
  (`orderhub ledger confirm`);
- a WeChat Pay and an Alipay notification signed with a key that is not the provider's are sent for the
  unconfirmed order: refused, they change nothing.

The providers keep their own clock (`FixedClock`), moved by the demo along their retry schedules. The hub checks
WeChat Pay's signed timestamp against its real clock (300 s behind, 60 s ahead), so the providers' clock starts
the 34 minutes in the past and is at real time when the last late notification arrives; after that it follows
real time. The scheduler's clock (`runtime.clock`) is then moved past the due times of the money exceptions, so
the SLA watchdog raises them.

Every check takes its expectation from `Sent`, the orders and the money movements the demo sent (with the states
it reported), never from what the hub answers.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from infra.config import HubConfig
from infra.demo.operations import Checks, Out, _indented, cli
from infra.demo.traffic import (
    ChannelStory,
    encode,
    load_channel_stories,
    mall_headers,
    mall_secret,
    synthetic_mall_order,
)
from orderhub.clock import FixedClock
from orderhub.outbound_http import HttpReply, HttpTransport, Timeouts
from orderhub.payments.ledger import business_date

Http = Callable[..., tuple[int, str]]

SEED = 20261207
BEIJING = timezone(timedelta(hours=8))
# The demo's channels whose stories carry mall orders (the shop's own, and the warehouse's and carrier's stories
# of mall orders).
STORY_CHANNELS = ("mall", "douyin", "youzan", "shopify", "woocommerce", "wms", "kuaidi100")
# The one paid mall order left without any provider notification: payment_unconfirmed shows for it.
LEFT_UNCONFIRMED = "M20261118005"
# WeChat Pay retries at 15s, 15s, 30s, 3m, 10m, 20m: its 7th attempt comes 2040 s after the first.
OUTAGE_S = 15 + 15 + 30 + 180 + 600 + 1200
# The last notification of the outage reaches the hub this long before real time (the hub allows 300 s behind).
OUTAGE_ENDS_BEFORE_NOW_S = 10
# When the line is back, before the outage's last retry: a payment whose first replies are lost.
LATE_PAYMENT_BEFORE_NOW_S = 70
LOST_REPLIES = 2
# A slow hub on a busy machine is not an outage: the providers' line waits long for a reply.
PATIENT = Timeouts(connect_s=10.0, read_s=60.0)
MONEY_RULES = ("paid_twice", "paid_after_close", "amount_mismatch", "refund_without_payment")
MONEY_EVENT_TYPES = ("PaymentConfirmed", "PaymentReversed", "RefundBooked")
RANK = {"pending": 0, "confirmed": 1, "reversed": 2}
METHODS = {"wechatpay": "online", "alipay": "online", "bank": "bank_transfer"}
FUNCTION_LOGS_HINT = ".local/logs/"


# What the demo sent -----------------------------------------------------------------------------------------

@dataclass
class StagedOrder:
    """A mall order as the demo (or the shop's stories) told the hub of it."""

    number: str
    total: int
    story: str
    claimed_paid_at: datetime | None = None  # the shop's "paid" (a claim)
    cancelled_at: datetime | None = None


@dataclass
class Movement:
    """One money movement as the demo sent it: the provider's reference, its own amount, each state reported."""

    order: str
    provider: str  # wechatpay | alipay | bank
    kind: str  # payment | refund
    reference: str
    amount: int  # its own amount (an Alipay refund: this refund, not the trade's refunded total)
    states: list[tuple[str, datetime]] = field(default_factory=list)  # (pending|confirmed|reversed, when)
    copies: int = 1  # how many copies of its notification the hub received

    @property
    def entry_id(self) -> str:
        return f"{self.provider}:{self.kind}:{self.reference}"

    @property
    def state(self) -> str:
        return max((s for s, _ in self.states), key=RANK.__getitem__)

    @property
    def method(self) -> str:
        return METHODS[self.provider]

    def first(self, state: str) -> datetime | None:
        return min((at for s, at in self.states if s == state), default=None)


@dataclass
class Sent:
    orders: dict[str, StagedOrder] = field(default_factory=dict)
    movements: list[Movement] = field(default_factory=list)

    def add(self, order: str, provider: str, kind: str, reference: str, amount: int, state: str,
            at: datetime) -> Movement:
        found = next((m for m in self.movements if m.entry_id == f"{provider}:{kind}:{reference}"), None)
        if found is None:
            found = Movement(order, provider, kind, reference, amount)
            self.movements.append(found)
        found.states.append((state, at))
        return found

    def of(self, order: str) -> list[Movement]:
        return [m for m in self.movements if m.order == order]


def confirmed(moves: Iterable[Movement], kind: str) -> list[Movement]:
    return sorted((m for m in moves if m.kind == kind and m.state == "confirmed"),
                  key=lambda m: (m.first("confirmed") or datetime.max.replace(tzinfo=UTC), m.entry_id))


def expected_money(sent: Sent, order: str) -> dict[str, int]:
    paid = sum(m.amount for m in confirmed(sent.of(order), "payment"))
    refunded = sum(m.amount for m in confirmed(sent.of(order), "refund"))
    return {"paid": paid, "refunded": refunded, "net": paid - refunded}


def expected_exceptions(sent: Sent, grace: timedelta) -> dict[tuple[str, str], datetime]:
    """(order, rule) -> when it is due, for what the demo staged: the money rules of EXC-1 as finance reads them."""
    due: dict[tuple[str, str], datetime] = {}
    for order in sent.orders.values():
        moves = sent.of(order.number)
        payments, refunds = confirmed(moves, "payment"), confirmed(moves, "refund")
        paid, refunded = sum(m.amount for m in payments), sum(m.amount for m in refunds)
        if len(payments) >= 2 and paid - refunded > order.total:
            due[(order.number, "paid_twice")] = _at(payments[1])
        late = [m for m in payments if order.cancelled_at is not None and _at(m) >= order.cancelled_at]
        if late and refunded < sum(m.amount for m in late):
            due[(order.number, "paid_after_close")] = _at(late[0])
        if payments and paid != order.total and not (len(payments) > 1 and all(m.amount == order.total
                                                                                for m in payments)):
            due[(order.number, "amount_mismatch")] = _at(payments[-1])
        if refunds and refunded > paid:
            due[(order.number, "refund_without_payment")] = _at(refunds[0]) + grace
        if order.claimed_paid_at is not None and not payments:
            due[(order.number, "payment_unconfirmed")] = order.claimed_paid_at + grace
    return due


def _at(m: Movement) -> datetime:
    return m.first("confirmed") or m.states[0][1]


def expected_day(sent: Sent, day: str, tz: str) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(method class, kind, state) -> (movements, amount) that reached that state on business day `day`."""
    totals: dict[tuple[str, str, str], tuple[int, int]] = {}
    for m in sent.movements:
        for state in {s for s, _ in m.states}:
            at = m.first(state)
            if at is not None and business_date(at, tz) == day:
                count, amount = totals.get((m.method, m.kind, state), (0, 0))
                totals[(m.method, m.kind, state)] = (count + 1, amount + m.amount)
    return totals


def expected_journal(sent: Sent, day: str, tz: str) -> int:
    """The debits (= credits) the day's journal books for the demo's movements: each movement once on the day of
    its first confirmation, and once more, reversed, on the day a confirmed movement is reversed."""
    total = 0
    for m in sent.movements:
        done = m.first("confirmed")
        if done is not None and business_date(done, tz) == day:
            total += m.amount
        undone = m.first("reversed")
        if done is not None and undone is not None and business_date(undone, tz) == day:
            total += m.amount
    return total


def expected_events(sent: Sent) -> Counter[tuple[str, str, str]]:
    """(type, movement, state) of each money event the finance subscriber should receive once: a payment
    confirmed, a refund booked (pending or confirmed), any movement reversed."""
    events: Counter[tuple[str, str, str]] = Counter()
    for m in sent.movements:
        reached = -1
        for state, _ in m.states:
            if RANK[state] <= reached:
                continue
            reached = RANK[state]
            if state == "reversed":
                events[("PaymentReversed", m.entry_id, state)] += 1
            elif m.kind == "refund":
                events[("RefundBooked", m.entry_id, state)] += 1
            elif state == "confirmed":
                events[("PaymentConfirmed", m.entry_id, state)] += 1
    return events


def staged_sample_orders(stories: Sequence[ChannelStory]) -> dict[str, StagedOrder]:
    """The mall orders the channel traffic sent, read from the requests it sent."""
    orders: dict[str, StagedOrder] = {}
    for story in stories:
        for request in story.requests:
            if request.channel != "mall":
                continue
            event = json.loads(request.payload)
            number, at = event["order"]["order_no"], datetime.fromisoformat(event["event_time"])
            order = orders.setdefault(number, StagedOrder(number, 0, story.story))
            if event["event_type"] == "order.created":
                order.total = event["order"]["total_amount"]
            elif event["event_type"] == "order.paid":
                order.claimed_paid_at = at
            elif event["event_type"] == "order.cancelled":
                order.cancelled_at = at
    return orders


Refund = tuple[str, int, datetime]  # the shop's refund number, its amount, when


def sample_payments(stories: Sequence[ChannelStory]) -> list[tuple[str, str, int, datetime, list[Refund]]]:
    """(order, method, amount, paid at, its refunds) of each paid mall order, as the shop claimed them."""
    paid: dict[str, tuple[str, int, datetime]] = {}
    refunds: dict[str, list[Refund]] = {}
    for story in stories:
        for request in story.requests:
            if request.channel != "mall":
                continue
            event = json.loads(request.payload)
            number, at = event["order"]["order_no"], datetime.fromisoformat(event["event_time"])
            if event["event_type"] == "order.paid":
                payment = event["order"]["payment"]
                paid[number] = (payment["method"], payment["amount"], at)
            elif event["event_type"] == "order.refunded":
                refund = event["order"]["refund"]
                refunds.setdefault(number, []).append((refund["refund_id"], refund["amount"], at))
    return [(number, method, amount, at, sorted(refunds.get(number, []), key=lambda r: r[2]))
            for number, (method, amount, at) in sorted(paid.items())]


# The providers' side --------------------------------------------------------------------------------------

class ProviderLine:
    """The network from WeChat Pay and Alipay to the hub, as the demo plays it: no connection while the providers'
    clock is before `down_until`; the next `lose_replies` requests reach the hub but their replies are lost (the
    provider sees a timeout and retries)."""

    def __init__(self, clock: FixedClock) -> None:
        self.clock = clock
        self.down_until: datetime | None = None
        self.lose_replies = 0
        self.refused = 0
        self.lost = 0
        self._http = HttpTransport()

    def _gate(self) -> None:
        if self.down_until is not None and self.clock.now() < self.down_until:
            self.refused += 1
            raise ConnectionRefusedError("the hub's notify address does not answer")

    def _passed(self) -> None:
        if self.lose_replies > 0:
            self.lose_replies -= 1
            self.lost += 1
            raise TimeoutError("the hub's reply was lost on the way back")

    def close(self) -> None:
        for connection in self._http._connections.values():
            connection.close()

    def post(self, url: str, body: bytes, headers: dict[str, str], timeouts: Timeouts) -> HttpReply:
        """WeChat Pay's transport (orderhub.outbound_http.Transport)."""
        self._gate()
        reply = self._http.post(url, body, headers, PATIENT)
        self._passed()
        return reply

    def form(self, url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, str]:
        """Alipay's transport (infra.standins.alipay.Transport)."""
        self._gate()
        reply = self._http.post(url, body, dict(headers), PATIENT)
        self._passed()
        return reply.status, reply.body.decode("utf-8", "replace")


def catch_up(clock: FixedClock) -> None:
    """The providers' clock to real time (it never goes back)."""
    behind = (datetime.now(UTC) - clock.now()).total_seconds()
    if behind > 0:
        clock.advance(behind)


def run_providers(wechat: Any, alipay: Any, clock: FixedClock, until: datetime) -> None:
    """Every notification due by `until`, in time order, moving the providers' clock along their schedules."""
    while True:
        wechat.deliver_due()
        alipay.deliver_due()
        due = [d.due for d in wechat.pending() if d.due is not None] + [n.next_at for n in alipay.pending
                                                                           if n.next_at is not None]
        following = min(due, default=None)
        if following is None or following > until:
            break
        clock.advance((following - clock.now()).total_seconds())
    if clock.now() < until:
        clock.advance((until - clock.now()).total_seconds())


def forger_key_pem() -> str:
    """A private key nobody configured: what a forger signs with."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def refused_by_hub(wechat: Any, alipay: Any) -> int:
    """Attempts of the genuine stand-ins the hub refused as unauthentic (401)."""
    return (sum(1 for d in wechat.deliveries for a in d.attempts if a.status == 401)
            + sum(1 for d in alipay.deliveries if d.status == 401))


# The money day ----------------------------------------------------------------------------------------------

@dataclass
class _Hub:
    runtime: Any
    http: Http
    config: HubConfig

    @property
    def token(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.ops_token}"}

    def mall(self, event: dict[str, Any]) -> int:
        body = encode(event)
        status, _ = self.http("POST", f"{self.runtime.api_url}/webhooks/mall", body,
                              mall_headers(mall_secret(self.config), body))
        return status

    def ledger(self, order: str) -> dict[str, Any]:
        status, text = self.http("GET", f"{self.runtime.api_url}/ledger/orders/mall:{order}", headers=self.token)
        return json.loads(text) if status == 200 else {}

    def exceptions(self) -> list[dict[str, Any]]:
        status, text = self.http("GET", f"{self.runtime.api_url}/exceptions?type=payment&limit=500",
                                 headers=self.token)
        return json.loads(text)["exceptions"] if status == 200 else []

    def idle(self) -> None:
        self.runtime.wait_until_idle(timeout=120)


def _mini_order(index: int, created_at: datetime, rng: random.Random) -> tuple[str, int, dict[str, Any],
                                                                            dict[str, Any]]:
    """A new mini-program order: its number, total, and the shop's created and paid events (the paid one is
    re-dated and re-described by the caller: the shop reports what the provider told it)."""
    start = created_at.astimezone(BEIJING) - timedelta(seconds=index * 7)
    created, paid = synthetic_mall_order(index, rng, start)[:2]
    return created["order"]["order_no"], created["order"]["total_amount"], created, paid


def _claim(paid: dict[str, Any], at: datetime, method: str, transaction_id: str) -> dict[str, Any]:
    order = {**paid["order"], "payment": {**paid["order"]["payment"], "method": method,
                                          "transaction_id": transaction_id}}
    return {**paid, "event_time": at.astimezone(BEIJING).isoformat(), "order": order}


def _cancelled(created: dict[str, Any], at: datetime) -> dict[str, Any]:
    number = created["order"]["order_no"]
    return {"event_id": f"evt_{number}_cancel", "event_type": "order.cancelled",
            "event_time": at.astimezone(BEIJING).isoformat(), "shop_id": created["shop_id"],
            "order": {"order_no": number}}


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _fen(text: str) -> int:
    return int(Decimal(text) * 100)


def money_day(runtime: Any, http: Http, config: HubConfig, config_path: str, out: Out, checks: Checks, *,
              finance: Any, stories: Sequence[ChannelStory] | None = None) -> None:
    """The money story on the running hub; `finance` is the finance subscriber's inbox (infra/standins/downstream),
    `stories` the channel stories the demo sent (default: every channel's sample stories)."""
    from infra.standins import wechatpay as wechatpay_standin
    from infra.standins.alipay import AlipayStandIn

    stories = list(stories) if stories is not None else [s for ch in STORY_CHANNELS for s in load_channel_stories(ch)]
    hub = _Hub(runtime, http, config)
    tz = config.business_timezone
    rng = random.Random(SEED)  # noqa: S311 - reproducible sample orders, not secrets
    sent = Sent(orders=staged_sample_orders(stories))
    errors_before = dict(runtime.errors)

    out("")
    out("Money (PAY-2): the shop's 'paid' is a claim; WeChat Pay's and Alipay's notifications and finance book it")
    now = datetime.now(UTC)
    t0 = now - timedelta(seconds=OUTAGE_S + OUTAGE_ENDS_BEFORE_NOW_S)
    clock = FixedClock(t0)
    line = ProviderLine(clock)
    wechat = wechatpay_standin.from_config(config, runtime.api_url, clock, transport=line,
                                           rng=random.Random(SEED))  # noqa: S311 - reproducible ids
    alipay = AlipayStandIn.from_config(config, runtime.api_url, clock, transport=line.form)
    mall_status: list[int] = []

    # 1. WeChat Pay cannot reach the hub for 34 minutes (its notify address was wrong); a refund notified then
    #    comes on its retry schedule. The order's payment was never notified: a refund without payment.
    no_payment_no, no_payment_total, created, _ = _mini_order(507, t0 - timedelta(minutes=20), rng)
    sent.orders[no_payment_no] = StagedOrder(no_payment_no, no_payment_total, "refunded; its payment never notified")
    mall_status.append(hub.mall(created))
    unsent = wechat.payment_notification(no_payment_no, no_payment_total, at=t0 - timedelta(minutes=19))
    late_at = now - timedelta(seconds=LATE_PAYMENT_BEFORE_NOW_S)
    late_no, late_total, created, paid = _mini_order(503, late_at - timedelta(minutes=3), rng)
    late = wechat.payment_notification(late_no, late_total, at=late_at)
    late_tx = late.resource["transaction_id"]
    sent.orders[late_no] = StagedOrder(late_no, late_total, "paid by WeChat Pay; replies lost, retried",
                                       claimed_paid_at=late_at)
    mall_status += [hub.mall(created), hub.mall(_claim(paid, late_at, "wechat_pay", late_tx))]
    hub.idle()

    line.down_until = late_at
    refund_id = wechat.refund(unsent.resource["transaction_id"], no_payment_total, "SUCCESS", at=t0)
    run_providers(wechat, alipay, clock, late_at)
    line.lose_replies = LOST_REPLIES
    late_delivery = wechat.notify(late)
    run_providers(wechat, alipay, clock, now - timedelta(seconds=OUTAGE_ENDS_BEFORE_NOW_S))
    refund_delivery = next(d for d in wechat.deliveries if d.notification.resource.get("refund_id") == refund_id)
    sent.add(no_payment_no, "wechatpay", "refund", refund_id, no_payment_total, "confirmed", t0)
    sent.add(late_no, "wechatpay", "payment", late_tx, late_total, "confirmed", late_at).copies = 1 + LOST_REPLIES
    out(f"  WeChat Pay could not reach the hub for {OUTAGE_S // 60} min: a refund of {no_payment_no} (whose payment "
        f"was never notified) came on attempt {len(refund_delivery.attempts)}, on WeChat Pay's schedule "
        "15s/15s/30s/3m/10m/20m")
    out(f"  {late_no}: WeChat Pay's payment notification reached the hub, its replies were lost {LOST_REPLIES} times; "
        f"attempt {len(late_delivery.attempts)} was acknowledged (the hub got it {1 + LOST_REPLIES} times)")
    hub.idle()
    catch_up(clock)

    # 2. The shop's sample orders: their notifications, as the shop's claims name the provider; one left out.
    left: list[str] = []
    for number, method, amount, paid_at, refunds in sample_payments(stories):
        if number == LEFT_UNCONFIRMED:
            left.append(number)
            continue
        if method == "alipay":
            trade_no = alipay.pay(number, amount, paid_at)
            sent.add(number, "alipay", "payment", trade_no, amount, "confirmed", paid_at)
            for refund_no, refunded, at in refunds:
                alipay.refund(trade_no, refunded, out_biz_no=refund_no, at=at)
                sent.add(number, "alipay", "refund", refund_no, refunded, "confirmed", at)
        else:
            transaction_id = wechat.pay(number, amount, paid_at)
            sent.add(number, "wechatpay", "payment", transaction_id, amount, "confirmed", paid_at)
            for refund_no, refunded, at in refunds:
                rid = wechat.refund(transaction_id, refunded, "SUCCESS", at=at, out_refund_no=refund_no)
                sent.add(number, "wechatpay", "refund", rid, refunded, "confirmed", at)
    wechat.deliver_due()
    alipay.deliver_due()
    samples = sorted({m.order for m in sent.movements} - {no_payment_no, late_no})
    out(f"  The shop's {len(samples)} paid sample orders got their WeChat Pay / Alipay notifications (refunds "
        f"too); {', '.join(left)} got none, on purpose: payment_unconfirmed after 30 min")
    hub.idle()

    # 3. The mini-program's orders, paid and refunded through the providers.
    catch_up(clock)
    base = clock.now()
    orders: dict[str, tuple[str, int, dict[str, Any], dict[str, Any]]] = {}
    for index, role in ((501, "dup-wechat"), (502, "dup-alipay"), (504, "cancelled"), (505, "twice"),
                        (506, "mismatch"), (508, "refunds-wechat"), (509, "refunds-alipay"), (510, "bank")):
        minutes = 40 if role in ("cancelled", "bank") else 8
        orders[role] = _mini_order(index, base - timedelta(minutes=minutes), rng)
    for number, total, created, _ in orders.values():
        sent.orders[number] = StagedOrder(number, total, "")
        mall_status.append(hub.mall(created))

    def claim(role: str, at: datetime, method: str, reference: str, story: str) -> None:
        number, _, _, paid = orders[role]
        sent.orders[number].claimed_paid_at, sent.orders[number].story = at, story
        mall_status.append(hub.mall(_claim(paid, at, method, reference)))

    # A WeChat Pay notification delivered twice (the same id and body), an Alipay one sent twice.
    number, total, _, _ = orders["dup-wechat"]
    dup_at = base - timedelta(minutes=6)
    dup = wechat.payment_notification(number, total, at=dup_at)
    claim("dup-wechat", dup_at, "wechat_pay", dup.resource["transaction_id"], "paid by WeChat Pay; notified twice")
    wechat.notify(dup)
    wechat.deliver_due()
    wechat.duplicate(dup)
    wechat.deliver_due()
    sent.add(number, "wechatpay", "payment", dup.resource["transaction_id"], total, "confirmed", dup_at).copies = 2
    number, total, _, _ = orders["dup-alipay"]
    trade_no = alipay.pay(number, total, dup_at)
    claim("dup-alipay", dup_at, "alipay", trade_no, "paid by Alipay; notified twice")
    alipay.deliver_due()
    alipay.send(alipay.notifications[-1])
    sent.add(number, "alipay", "payment", trade_no, total, "confirmed", dup_at).copies = 2

    # Cancelled when payment timed out; the buyer's payment went through after (the payment timeout race).
    number, total, created, _ = orders["cancelled"]
    cancelled_at = base - timedelta(minutes=25)
    sent.orders[number].cancelled_at, sent.orders[number].story = cancelled_at, "cancelled unpaid, then paid"
    mall_status.append(hub.mall(_cancelled(created, cancelled_at)))
    late_pay_at = base - timedelta(minutes=5)
    sent.add(number, "wechatpay", "payment", wechat.pay(number, total, late_pay_at), total, "confirmed", late_pay_at)

    # Paid twice: WeChat Pay, then (the page timed out) Alipay.
    number, total, _, _ = orders["twice"]
    twice_no = number
    first_at, second_at = base - timedelta(minutes=5), base - timedelta(minutes=4)
    first = wechat.payment_notification(number, total, at=first_at)
    claim("twice", first_at, "wechat_pay", first.resource["transaction_id"], "paid by WeChat Pay and by Alipay")
    wechat.notify(first)
    sent.add(number, "wechatpay", "payment", first.resource["transaction_id"], total, "confirmed", first_at)
    sent.add(number, "alipay", "payment", alipay.pay(number, total, second_at), total, "confirmed", second_at)

    # An amount that is not the order's: the Alipay trade was made for less.
    number, total, _, _ = orders["mismatch"]
    short = total - max(100, total // 10)
    trade_no = alipay.pay(number, short, base - timedelta(minutes=5))
    claim("mismatch", base - timedelta(minutes=5), "alipay", trade_no, f"Alipay paid {_yuan(short)} of {_yuan(total)}")
    sent.add(number, "alipay", "payment", trade_no, short, "confirmed", base - timedelta(minutes=5))

    # WeChat Pay refunds: one partial; one abnormal (the buyer's card was closed), finished by hand; one closed.
    number, total, _, _ = orders["refunds-wechat"]
    refunds_wechat_no = number
    paid_at = base - timedelta(minutes=6)
    r1_tx = wechat.pay(number, total, paid_at)
    claim("refunds-wechat", paid_at, "wechat_pay", r1_tx, "WeChat Pay refunds: partial, abnormal then success, closed")
    sent.add(number, "wechatpay", "payment", r1_tx, total, "confirmed", paid_at)
    partial, abnormal, closed = total // 5, total // 4, total // 10
    at = base - timedelta(minutes=4)
    sent.add(number, "wechatpay", "refund", wechat.refund(r1_tx, partial, "SUCCESS", at=at), partial,
             "confirmed", at)
    at = base - timedelta(minutes=3)
    abnormal_id = wechat.refund(r1_tx, abnormal, "ABNORMAL", at=at)
    sent.add(number, "wechatpay", "refund", abnormal_id, abnormal, "pending", at)
    at = base - timedelta(minutes=2)
    sent.add(number, "wechatpay", "refund", wechat.refund(r1_tx, closed, "CLOSED", at=at), closed,
             "reversed", at)

    # Alipay: a partial refund, then the rest (each notification carries the trade's refunded total).
    number, total, _, _ = orders["refunds-alipay"]
    paid_at = base - timedelta(minutes=6)
    trade_no = alipay.pay(number, total, paid_at)
    claim("refunds-alipay", paid_at, "alipay", trade_no, "Alipay: partial refund, then the rest")
    sent.add(number, "alipay", "payment", trade_no, total, "confirmed", paid_at)
    part = total // 3
    steps = ((part, base - timedelta(minutes=4)), (total - part, base - timedelta(minutes=2)))
    for n, (amount, at) in enumerate(steps):
        alipay.refund(trade_no, amount, out_biz_no=f"RF{number}-{n + 1}", at=at)
        sent.add(number, "alipay", "refund", f"RF{number}-{n + 1}", amount, "confirmed", at)
    wechat.deliver_due()
    alipay.deliver_due()
    hub.idle()

    # The abnormal refund finished by hand.
    catch_up(clock)
    finished_at = clock.now()
    wechat.refund(r1_tx, abnormal, "SUCCESS", at=finished_at, refund_id=abnormal_id)
    sent.add(refunds_wechat_no, "wechatpay", "refund", abnormal_id, abnormal, "confirmed", finished_at)
    wechat.deliver_due()
    hub.idle()
    out(f"  {len(orders) + 2} new mini-program orders paid through WeChat Pay and Alipay: notifications duplicated, "
        "a payment after cancellation, one paid twice, one short, refunds partial, abnormal then finished, "
        "closed, Alipay partial then full")

    # 4. Finance: a bank transfer recorded (pending), then confirmed against the statement.
    number, total, _, _ = orders["bank"]
    sent.orders[number].story = "paid by bank transfer: recorded by finance, then confirmed"
    serial = f"BK{base.astimezone(BEIJING):%Y%m%d}0917"
    entry = f"bank:payment:{serial}"
    recorded = cli(["ledger", "record-transfer", "--order", f"mall:{number}", "--amount", _yuan(total),
                    "--reference", serial, "--reason", "ICBC statement line 17: company transfer", "--by", "chen.jing"],
                   runtime, config_path)
    recorded_at = datetime.now(UTC)
    hub.idle()
    pending_view = hub.ledger(number)
    confirmed_cli = cli(["ledger", "confirm", entry, "--order", f"mall:{number}", "--reason",
                         "matched on the bank statement", "--by", "chen.jing"], runtime, config_path)
    confirmed_at = datetime.now(UTC)
    hub.idle()
    sent.add(number, "bank", "payment", serial, total, "pending", recorded_at)
    sent.add(number, "bank", "payment", serial, total, "confirmed", confirmed_at)
    out(f"  $ orderhub ledger record-transfer --order mall:{number} --amount {_yuan(total)} --reference {serial} ...")
    _indented(recorded[1], out, limit=3)
    out(f"  $ orderhub ledger confirm {entry} --order mall:{number} ...")
    _indented(confirmed_cli[1], out, limit=3)
    pending_state = next((mv["state"] for mv in pending_view.get("movements", []) if mv["entry_id"] == entry), None)
    checks.append(("finance's bank transfer is pending when recorded, then confirmed",
                   recorded[0] == 0 and confirmed_cli[0] == 0 and pending_state == "pending"
                   and pending_view.get("money", {}).get("pending_in") == total))

    # 5. Forged notifications for the unconfirmed order: signed with keys that are not the providers'.
    before = hub.ledger(LEFT_UNCONFIRMED)
    today = business_date(datetime.now(UTC), tz)
    _, day_before = http("GET", f"{runtime.api_url}/ledger/days/{today}", headers=hub.token)
    forged_wechat, forged_alipay = _forged(runtime, http, wechat, alipay, clock, LEFT_UNCONFIRMED,
                                           sent.orders[LEFT_UNCONFIRMED].total)
    hub.idle()
    _, day_after = http("GET", f"{runtime.api_url}/ledger/days/{today}", headers=hub.token)
    unchanged = hub.ledger(LEFT_UNCONFIRMED) == before and day_before == day_after
    out(f"  Forged notifications for {LEFT_UNCONFIRMED} (signed with a key that is not the provider's): "
        f"WeChat Pay -> {forged_wechat[0]} {forged_wechat[1]}; Alipay -> {forged_alipay[0]} {forged_alipay[1]!r}")
    wechat_fail = forged_wechat[1].startswith("{") and json.loads(forged_wechat[1]).get("code") == "FAIL"
    checks.append(("a forged WeChat Pay notification gets 401 FAIL and changes nothing",
                   forged_wechat[0] == 401 and wechat_fail and unchanged))
    checks.append(("a forged Alipay notification gets 401 failure and changes nothing",
                   forged_alipay == (401, "failure") and unchanged))

    # 6. The SLA watchdog: the scheduler's clock moves past the money exceptions' due times.
    grace = timedelta(minutes=config.exceptions.payment_unconfirmed_after_min)
    due = expected_exceptions(sent, grace)
    latest = max(due.values())
    step = max(0.0, (latest - runtime.clock.now()).total_seconds()) + 300
    out(f"  {step / 60:.0f} minutes later (the scheduler's clock moved past the last due time; the watchdog ran):")
    runtime.clock.advance(step)
    hub.idle()

    _money_checks(hub, sent, due, finance, wechat, alipay, checks, out)
    _money_report(hub, sent, due, runtime, config_path, twice_no, tz, checks, out)
    checks.append(("every mall webhook of the money story accepted", all(s == 200 for s in mall_status)))
    out(f"  the providers' line refused {line.refused} attempt(s) during the outage and lost {line.lost} reply(ies); "
        f"the hub refused {refused_by_hub(wechat, alipay)} genuine notification(s)")
    checks.append(("the hub refused no genuine WeChat Pay or Alipay notification", refused_by_hub(wechat, alipay) == 0))
    checks.append(("the late refund came on WeChat Pay's 7th attempt, the lost-reply payment on its 3rd",
                   [a.status for a in refund_delivery.attempts] == [None] * 6 + [200]
                   and [a.status for a in late_delivery.attempts] == [None, None, 200]))
    failed = {name: n - errors_before.get(name, 0) for name, n in runtime.errors.items()
              if n > errors_before.get(name, 0)}
    if failed:
        out(f"  function errors during the money story: {failed} (see {FUNCTION_LOGS_HINT})")
    checks.append(("no hub function failed during the money story", not failed))
    line.close()


def _forged(runtime: Any, http: Http, wechat: Any, alipay: Any, clock: FixedClock, order: str,
            amount: int) -> tuple[tuple[int, str], tuple[int, str]]:
    """A WeChat Pay and an Alipay payment notification for `order`, each signed with a forger's key."""
    from infra.standins.alipay import AlipayStandIn
    from infra.standins.wechatpay import WeChatPayStandIn

    catch_up(clock)
    forger = WeChatPayStandIn(runtime.api_url, wechat.apiv3_key, wechat.mchid, wechat.appid, forger_key_pem(),
                              wechat.serial, clock)
    headers, body = forger.request(forger.payment_notification(order, amount))
    forged_wechat = http("POST", f"{runtime.api_url}/webhooks/wechatpay", body, headers)
    alipay_forger = AlipayStandIn(runtime.api_url, alipay.app_id, alipay.seller_id, forger_key_pem(), clock)
    alipay_forger.pay(order, amount)  # queued by the forger, sent here
    paid = alipay_forger.notifications[-1]
    forged_alipay = http("POST", f"{runtime.api_url}/webhooks/alipay", paid.body, paid.headers)
    return forged_wechat, forged_alipay


def _money_checks(hub: _Hub, sent: Sent, due: Mapping[tuple[str, str], datetime], finance: Any, wechat: Any,
                  alipay: Any, checks: Checks, out: Out) -> None:
    views = {number: hub.ledger(number) for number in sent.orders}
    wrong = [number for number, view in views.items()
             if {k: view.get("money", {}).get(k) for k in ("paid", "refunded", "net")} != expected_money(sent, number)]
    samples = [n for n in sent.orders if n.startswith("M")]
    checks.append((f"the {len(samples)} sample mall orders' money (paid, refunded, net) is what the providers sent",
                   not [n for n in wrong if n in samples]))
    checks.append((f"the {len(sent.orders) - len(samples)} mini-program orders' money is what the providers and "
                   "finance sent", not [n for n in wrong if n not in samples]))
    for number in wrong:
        out(f"  WRONG money of {number}: hub {views[number].get('money')} sent {expected_money(sent, number)}")

    repeated = [m for m in sent.movements if m.copies > 1]
    once = all(sum(1 for mv in views[m.order].get("movements", []) if mv["entry_id"] == m.entry_id) == 1
               and len(next(mv for mv in views[m.order]["movements"] if mv["entry_id"] == m.entry_id)["records"]) == 1
               for m in repeated)
    checks.append((f"the duplicated and the late notifications ({len(repeated)}, "
                   f"{sum(m.copies for m in repeated)} copies) booked once each", bool(repeated) and once))

    raised = {(e["channel_order_id"], e["rule"]): e for e in hub.exceptions()
              if e["channel"] == "mall" and e["channel_order_id"] in sent.orders}
    want_money = {key for key in due if key[1] in MONEY_RULES}
    got_money = {key for key in raised if key[1] in MONEY_RULES}
    checks.append(("the four money exceptions are open for finance, on the orders that earned them",
                   got_money == want_money and {r for _, r in want_money} == set(MONEY_RULES)
                   and all(raised[k]["owner"] == "finance" for k in got_money)))
    want_unconfirmed = {key for key in due if key[1] == "payment_unconfirmed"}
    got_unconfirmed = {key for key in raised if key[1] == "payment_unconfirmed"}
    checks.append(("payment_unconfirmed only for the order left without a callback",
                   got_unconfirmed == want_unconfirmed == {(LEFT_UNCONFIRMED, "payment_unconfirmed")}))
    if got_money != want_money or got_unconfirmed != want_unconfirmed:
        out(f"  exceptions expected {sorted(want_money | want_unconfirmed)}")
        out(f"  exceptions raised   {sorted(got_money | got_unconfirmed)}")

    ours = {m.entry_id for m in sent.movements}
    received = Counter((e["type"], e["data"]["movement"]["entry_id"], e["data"]["movement"]["state"])
                       for e in finance.events if e["type"] in MONEY_EVENT_TYPES
                       and e["data"]["movement"]["entry_id"] in ours)
    wanted = expected_events(sent)
    checks.append((f"the finance subscriber got each money event once ({sum(wanted.values())})",
                   received == wanted and finance.duplicates == 0 and finance.bad_signatures == 0))
    if received != wanted:
        out(f"  finance events missing {sorted((wanted - received).elements())[:6]}, "
            f"unexpected {sorted((received - wanted).elements())[:6]}")
    out(f"  The finance subscriber (pattern source orderhub.payments) received {finance.delivered} money events in "
        f"all, {sum(received.values())} of them this story's: {dict(Counter(t for t, _, _ in received.elements()))}")


def _money_report(hub: _Hub, sent: Sent, due: Mapping[tuple[str, str], datetime], runtime: Any, config_path: str,
                  twice_no: str, tz: str, checks: Checks, out: Out) -> None:
    out("")
    out(f"  {'order':<18} {'paid':>9} {'refunded':>9} {'net':>9}  story")
    for number, order in sent.orders.items():
        money = expected_money(sent, number)
        if not sent.of(number) and order.claimed_paid_at is None:
            continue
        out(f"  {number:<18} {_yuan(money['paid']):>9} {_yuan(money['refunded']):>9} {_yuan(money['net']):>9}  "
            f"{order.story[:60]}")

    code, shown = cli(["ledger", "show", f"mall:{twice_no}"], runtime, config_path)
    out(f"  $ orderhub ledger show mall:{twice_no}      (paid twice)")
    _indented(shown, out, limit=16)

    mini = {n for n, o in sent.orders.items() if not n.startswith("M")}
    days = sorted({business_date(at, tz) for m in sent.movements if m.order in mini for _, at in m.states})
    for day in days:
        code, printed = cli(["ledger", "day", day], runtime, config_path)
        out(f"  $ orderhub ledger day {day}")
        _indented(printed, out, limit=16)
        rows = {}
        for line in printed.splitlines():
            cells = line.split()
            if len(cells) == 6 and cells[1] in ("online", "bank_transfer") and cells[4].isdigit():
                rows[(cells[1], cells[2], cells[3])] = (int(cells[4]), _fen(cells[5]))
        checks.append((f"ledger day {day}: online and bank-transfer totals by state are what was sent",
                       code == 0 and rows == expected_day(sent, day, tz)))
    for day in sorted({business_date(at, tz) for m in sent.movements for _, at in m.states}):
        _journal_check(runtime, config_path, sent, day, tz, checks, out, show=day in days)

    out("  Money exceptions for finance (GET /exceptions?type=payment):")
    for exc in sorted(hub.exceptions(), key=lambda e: (e["rule"], e["channel_order_id"])):
        if (exc["channel_order_id"], exc["rule"]) not in due:
            continue
        detail = exc.get("detail", {})
        said = detail.get("suggested_refund") and f"refund {detail['suggested_refund']}" or \
            ", ".join(f"{k} {v}" for k, v in detail.items() if k in ("paid", "payable", "refunded", "paid_at"))
        out(f"    {exc['rule']:<22} {exc['channel_order_id']:<18} owner {exc['owner']:<8} {said[:80]}")


def _journal_check(runtime: Any, config_path: str, sent: Sent, day: str, tz: str, checks: Checks, out: Out,
                   show: bool) -> None:
    import csv
    import io

    from infra.cli.reports import table

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"journal-{day}.csv"
        code, _ = cli(["ledger", "journal", day, "--out", str(path)], runtime, config_path)
        text = path.read_text(encoding="utf-8-sig") if path.exists() else ""
    rows = list(csv.DictReader(io.StringIO(text)))
    debit = sum(_fen(r["debit"]) for r in rows if r["debit"])
    credit = sum(_fen(r["credit"]) for r in rows if r["credit"])
    ours = sum(_fen(r["debit"]) for r in rows if r["debit"] and r["channel_order_id"] in sent.orders)
    want = expected_journal(sent, day, tz)
    if show:
        out(f"  $ orderhub ledger journal {day} --out journal-{day}.csv: {len(rows)} lines, debits {_yuan(debit)}, "
            f"credits {_yuan(credit)}; this story's {_yuan(ours)}")
        sample = [[r["channel_order_id"], r["summary"][:36], r["account"], r["debit"], r["credit"]]
                  for r in rows if r["channel_order_id"] in sent.orders][:4]
        _indented(table(["order", "summary", "account", "debit", "credit"], sample), out)
    checks.append((f"journal {day} balances and books this story's confirmed money",
                   code == 0 and bool(rows) and debit == credit and ours == want))
