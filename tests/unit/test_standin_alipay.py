"""The local Alipay (infra/standins/alipay.py): what it sends passes the hub's checks and reads as the trade
it reports, and an unacknowledged notification is resent on Alipay's schedule by the injected clock."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infra.config import load_config
from infra.standins.alipay import (
    KEYS_DIR,
    MAX_ATTEMPTS,
    RETRY_INTERVALS,
    AlipayStandIn,
    development_key_for,
    load_private_key,
    public_pem,
)
from orderhub.channels.alipay import CHANNEL
from orderhub.channels.base import ChannelSettings, InboundRequest
from orderhub.clock import FixedClock
from orderhub.intake import accept_webhook
from orderhub.lifecycle.statuses import EventKind
from orderhub.models.envelope import IntakeMessage
from orderhub.models.order import MoneyKind, OrderEvent

CONFIG = load_config()
ALIPAY = CONFIG.channels["alipay"]
SETTINGS = ChannelSettings(secrets=ALIPAY.secrets, options=ALIPAY.options)
START = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


class Hub:
    """The hub's edge as a transport: accept_webhook over a recording queue, replies as configured."""

    def __init__(self, clock: FixedClock, replies: list[tuple[int, str] | Exception] | None = None) -> None:
        self.clock = clock
        self.replies = list(replies or [])
        self.queued: list[IntakeMessage] = []
        self.calls: list[tuple[datetime, str, bytes]] = []

    def send(self, message: IntakeMessage) -> None:
        self.queued.append(message)

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, str]:
        self.calls.append((self.clock.now(), url, body))
        if self.replies:
            reply = self.replies.pop(0)
            if isinstance(reply, Exception):
                raise reply
            return reply
        request = InboundRequest("alipay", {k.lower(): v for k, v in headers.items()}, body, "110.75.143.10")
        result = accept_webhook(request, "req", lambda _: SETTINGS, self, self.clock)
        return result.reply.status_code, result.reply.body


def alipay_with(hub_replies: list[tuple[int, str] | Exception] | None = None) -> tuple[AlipayStandIn, Hub]:
    clock = FixedClock(START)
    hub = Hub(clock, hub_replies)
    return AlipayStandIn.from_config(CONFIG, "http://hub.test/", clock, transport=hub), hub


def events(hub: Hub) -> list[OrderEvent]:
    return [event for message in hub.queued for event in (message.events or ())]


# What it sends ------------------------------------------------------------------------------------------

def test_a_trades_life_reaches_the_hub_verified_and_read_as_the_trade_it_reports():
    alipay, hub = alipay_with()
    alipay.create("M20261122001", 25800, notify=True)
    trade_no = alipay.pay("M20261122001", 25800)
    alipay.clock.advance(3600)  # type: ignore[attr-defined]
    alipay.refund(trade_no, 5800, out_biz_no="RF1")
    alipay.clock.advance(3600)  # type: ignore[attr-defined]
    alipay.refund(trade_no, 20000, out_biz_no="RF2")
    deliveries = alipay.deliver_due()
    assert [d.delivered for d in deliveries] == [True] * 4 and alipay.pending == []
    assert {url for _, url, _ in hub.calls} == {"http://hub.test/webhooks/alipay"}
    assert [(e.channel_code, e.kinds) for e in events(hub)] == [
        ("trade_status_sync WAIT_BUYER_PAY", ()),
        ("trade_status_sync TRADE_SUCCESS", (EventKind.PAID,)),
        ("trade_status_sync TRADE_SUCCESS refund", (EventKind.PAID,)),
        ("trade_status_sync TRADE_CLOSED refund", (EventKind.PAID,))]
    assert [[(f.kind, f.amount) for f in e.money] for e in events(hub)] == [
        [], [(MoneyKind.PAYMENT, 25800)], [(MoneyKind.PAYMENT, 25800), (MoneyKind.REFUND, 5800)],
        [(MoneyKind.PAYMENT, 25800), (MoneyKind.REFUND, 25800)]]
    assert all(e.drift == () and e.gaps == () for e in events(hub))


def test_a_trade_closed_unpaid_reaches_the_hub_and_moves_nothing():
    alipay, hub = alipay_with()
    alipay.create("M20261122009", 100)
    alipay.clock.advance(900)  # type: ignore[attr-defined]
    alipay.close("M20261122009")
    alipay.deliver_due()
    (closed,) = events(hub)
    assert closed.channel_code == "trade_status_sync TRADE_CLOSED" and closed.money == () and closed.kinds == ()


def test_its_notifications_authenticate_with_either_development_key_and_parse_in_gbk_too():
    for key in ("alipay_2026.pem", "alipay_2025.pem"):
        for charset in ("utf-8", "GBK"):
            alipay = AlipayStandIn("http://hub.test", ALIPAY.options["app_id"], ALIPAY.options["seller_id"],
                                   (KEYS_DIR / key).read_text(), FixedClock(START), charset=charset)
            alipay.pay("M1", 1, subject="龙井")
            notification = alipay.notifications[-1]
            request = InboundRequest("alipay", {k.lower(): v for k, v in notification.headers.items()},
                                     notification.body, "110.75.143.10")
            CHANNEL.authenticate(request, SETTINGS, START)
            (event,) = CHANNEL.parse(notification.body, request.headers)
            assert event.money[0].amount == 1


def test_from_config_signs_with_the_development_key_of_the_current_public_key():
    alipay, _ = alipay_with()
    assert public_pem(alipay._key) == ALIPAY.secrets[0].strip()
    assert development_key_for(ALIPAY.secrets[1]) == (KEYS_DIR / "alipay_2025.pem").read_text()
    rotated = CONFIG.model_copy(update={"channels": {
        **CONFIG.channels, "alipay": ALIPAY.model_copy(update={"secrets": list(reversed(ALIPAY.secrets))})}})
    assert public_pem(AlipayStandIn.from_config(rotated, "http://hub.test", FixedClock(START))._key) == \
        ALIPAY.secrets[1].strip()
    other = public_pem(load_private_key((KEYS_DIR / "wechatpay_platform_2026.pem").read_text()))
    with pytest.raises(ValueError, match="development keys only"):
        development_key_for(other)


def test_build_makes_a_signed_copy_with_a_new_notify_id_and_queues_nothing():
    alipay, hub = alipay_with()
    trade_no = alipay.pay("M1", 100)
    copy = alipay.build(trade_no)
    assert len(alipay.notifications) == 1 and copy.notify_id != alipay.notifications[0].notify_id
    assert alipay.send(copy).delivered and alipay.send(copy).delivered  # a duplicate is acknowledged again
    assert len(hub.queued) == 2 and hub.queued[0].events == hub.queued[1].events


def test_refunds_follow_alipays_rules():
    alipay, _ = alipay_with()
    trade_no = alipay.pay("M1", 1000)
    with pytest.raises(ValueError, match="out_biz_no"):
        alipay.refund(trade_no, 100)
    with pytest.raises(ValueError, match="REFUND_FEE_ERR"):
        alipay.refund(trade_no, 1001, out_biz_no="RF1")
    with pytest.raises(ValueError, match="move its clock"):
        alipay.refund(trade_no, 100, out_biz_no="RF1", at=START + timedelta(seconds=1))
    alipay.refund(trade_no, 1000)  # a full refund needs no out_biz_no
    assert "out_biz_no" not in alipay.notifications[-1].params
    assert alipay.notifications[-1].params["trade_status"] == "TRADE_CLOSED"
    with pytest.raises(ValueError, match="not refundable"):
        alipay.refund(trade_no, 1, out_biz_no="RF2")


# Resends ------------------------------------------------------------------------------------------------

def drive(alipay: AlipayStandIn) -> list[datetime]:
    """Move the clock to each due time and deliver; the times of every attempt."""
    times = [d.at for d in alipay.deliver_due()]
    while (due := alipay.next_due()) is not None:
        alipay.clock.advance((due - alipay.clock.now()).total_seconds() - 1)  # type: ignore[attr-defined]
        assert alipay.deliver_due() == [], "nothing is sent before it is due"
        alipay.clock.advance(1)  # type: ignore[attr-defined]
        times += [d.at for d in alipay.deliver_due()]
    return times


def test_an_unacknowledged_notification_is_sent_8_times_on_alipays_schedule_then_given_up():
    alipay, hub = alipay_with([(500, "internal error")] * 20)
    alipay.pay("M1", 100)
    times = drive(alipay)
    assert len(times) == MAX_ATTEMPTS == 8
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps == [timedelta(minutes=4), timedelta(minutes=10), timedelta(minutes=10), timedelta(hours=1),
                    timedelta(hours=2), timedelta(hours=6), timedelta(hours=15)] == list(RETRY_INTERVALS)
    assert times[-1] - times[0] == timedelta(hours=24, minutes=24)
    assert alipay.notifications[0].given_up and alipay.pending == [] and hub.queued == []
    assert len({body for _, _, body in hub.calls}) == 1  # the same signed body every time


@pytest.mark.parametrize("reply", [(200, "SUCCESS"), (200, "success\n"), (200, " success"), (200, "fail"),
                                   (200, ""), (401, "success"), (503, "success"), OSError("connection refused")])
def test_only_http_200_with_exactly_success_is_delivered(reply):
    alipay, hub = alipay_with([reply])
    alipay.pay("M1", 100)
    (first,) = alipay.deliver_due()
    assert not first.delivered and alipay.next_due() == START + timedelta(minutes=4)
    if isinstance(reply, Exception):
        assert (first.status, first.error) == (None, "OSError")
    alipay.clock.advance(240)  # type: ignore[attr-defined]
    (second,) = alipay.deliver_due()
    assert second.delivered and second.attempt == 2 and alipay.pending == [] and len(hub.queued) == 1


def test_the_hubs_window_takes_the_last_resend_with_the_first_notify_time():
    alipay, hub = alipay_with([(503, "")] * 7)
    alipay.pay("M1", 100)
    times = drive(alipay)
    assert times[-1] - times[0] == timedelta(hours=24, minutes=24)
    assert alipay.notifications[0].delivered and len(hub.queued) == 1


def test_notifications_are_resent_independently():
    alipay, hub = alipay_with([(500, ""), (200, "success")])
    alipay.pay("M1", 100)
    alipay.pay("M2", 200)
    first = alipay.deliver_due()
    assert [d.delivered for d in first] == [False, True]
    assert [n.notify_id for n in alipay.pending] == [first[0].notify_id]


# Over HTTP ----------------------------------------------------------------------------------------------

@pytest.fixture
def hub_server() -> Iterator[tuple[str, Hub]]:
    """The hub's edge on a loopback port the system chose."""
    hub = Hub(FixedClock(START))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, reply = hub(self.path, body, dict(self.headers.items()))
            data = reply.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_over_http_the_hubs_success_delivers_and_its_failure_is_resent(hub_server):
    url, hub = hub_server
    alipay = AlipayStandIn.from_config(CONFIG, url, hub.clock)
    alipay.pay("M1", 100)
    forged = alipay.build(alipay.pay("M2", 200), total_amount="0.01")
    forged.params["total_amount"] = "2.00"  # what the hub will read; the sign is over 0.01
    forged.body = forged.body.replace(b"total_amount=0.01", b"total_amount=2.00")
    alipay.notifications.append(forged)
    forged.next_at = hub.clock.now()
    deliveries = alipay.deliver_due()
    assert [(d.status, d.reply, d.delivered) for d in deliveries] == [
        (200, "success", True), (200, "success", True), (401, "failure", False)]
    assert len(hub.queued) == 2 and alipay.pending == [forged]


def test_over_http_a_hub_that_is_not_there_is_a_transport_error_and_resent():
    with socket.socket() as bound:  # a port the system chose, bound and not listening: refused
        bound.bind(("127.0.0.1", 0))
        alipay = AlipayStandIn.from_config(CONFIG, f"http://127.0.0.1:{bound.getsockname()[1]}", FixedClock(START))
        alipay.pay("M1", 100)
        (delivery,) = alipay.deliver_due()
    assert delivery.status is None and delivery.error and not delivery.delivered
    assert alipay.next_due() == START + timedelta(minutes=4)
