"""The local WeChat Pay: what it sends the hub accepts, and it retries on WeChat Pay's schedule by its clock."""

from __future__ import annotations

import base64
import json
import random
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import accumulate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.config import load_config
from infra.standins.wechatpay import (
    DEV_KEYS,
    RETRY_AFTER_S,
    SAMPLES_DIR,
    WeChatPayStandIn,
    from_config,
    samples,
)
from orderhub.channels.base import ChannelSettings, InboundRequest
from orderhub.channels.wechatpay import CHANNEL
from orderhub.clock import FixedClock
from orderhub.intake import accept_webhook
from orderhub.models.order import MoneyState
from orderhub.outbound_http import HttpReply
from orderhub.payments.ledger import line_of

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
CONFIG = load_config()
WECHATPAY = CONFIG.channels["wechatpay"]
SETTINGS = ChannelSettings(secrets=tuple(WECHATPAY.secrets), options={**WECHATPAY.options, **WECHATPAY.secret_options})
KEY_2025 = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"


@pytest.fixture(autouse=True)
def hub_settings(monkeypatch):
    monkeypatch.setattr(CHANNEL, "settings_source", lambda: SETTINGS)


class Queue:
    def __init__(self):
        self.sent = []

    def send(self, message):
        self.sent.append(message)


class Hub:
    """The hub's webhook intake in process, as the stand-in's transport; the first `failures` calls fail
    (`how`: an HTTP status, or "no answer")."""

    def __init__(self, clock: FixedClock, failures: int = 0, how: int | str = 500) -> None:
        self.clock, self.failures, self.how = clock, failures, how
        self.queue = Queue()
        self.calls: list[tuple[str, dict[str, str], bytes]] = []
        self.replies: list[int] = []

    def post(self, url, body, headers, timeouts):
        self.calls.append((url, headers, body))
        if self.failures > 0:
            self.failures -= 1
            if self.how == "no answer":
                raise TimeoutError("timed out")
            return HttpReply(int(self.how), b'{"message":"temporarily unable to store the request, retry"}')
        result = accept_webhook(InboundRequest("wechatpay", headers, body, "203.0.113.9"), "req", lambda _: SETTINGS,
                                self.queue, self.clock)
        self.replies.append(result.reply.status_code)
        return HttpReply(result.reply.status_code, result.reply.body.encode())


def standin(clock: FixedClock, hub: Hub | None = None, seed: int = 3, **kwargs) -> WeChatPayStandIn:
    return from_config(CONFIG, "http://hub.invalid/", clock, transport=hub, rng=random.Random(seed), **kwargs)


def drive(pay: WeChatPayStandIn, clock: FixedClock) -> list[float]:
    """Move the clock to each next due time and deliver; the attempts' offsets (s) from the start."""
    start = clock.now()
    offsets: list[float] = []
    while (due := min((d.due for d in pay.pending() if d.due is not None), default=None)) is not None:
        clock.advance((due - clock.now()).total_seconds())
        offsets += [(a.at - start).total_seconds() for a in pay.deliver_due()]
    return offsets


# What it sends ------------------------------------------------------------------------------------

def test_every_notification_it_sends_is_verified_decrypted_and_booked_by_the_hub():
    clock = FixedClock(NOW)
    hub = Hub(clock)
    pay = standin(clock, hub)
    transaction_id = pay.pay("M20261118001", 25800)
    abnormal = pay.refund(transaction_id, 5800, "ABNORMAL")
    pay.refund(transaction_id, 5800, "SUCCESS", refund_id=abnormal)
    pay.refund(transaction_id, 1000, "CLOSED")
    attempts = pay.deliver_due()
    assert [a.status for a in attempts] == [200] * 4 and all(a.reply == b"" for a in attempts)
    assert hub.calls[0][0] == "http://hub.invalid/webhooks/wechatpay"
    facts = [event.money[0] for message in hub.queue.sent for event in message.events]
    assert [(f.kind, f.reference, f.state, f.amount) for f in facts] == [
        ("payment", transaction_id, MoneyState.CONFIRMED, 25800), ("refund", abnormal, MoneyState.PENDING, 5800),
        ("refund", abnormal, MoneyState.CONFIRMED, 5800), ("refund", facts[3].reference, MoneyState.REVERSED, 1000)]


def test_the_signature_and_the_encryption_are_wechat_pays_checked_without_the_hubs_code():
    from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    pay = standin(FixedClock(NOW))
    notification = pay.refund_notification(pay.pay("M20261118001", 25800), 800)
    headers, body = pay.request(notification)
    assert headers["wechatpay-timestamp"] == str(int(NOW.timestamp())) and len(headers["wechatpay-nonce"]) == 32
    public = load_pem_public_key(SETTINGS.options["platform_keys"][headers["wechatpay-serial"]].encode())
    message = f"{headers['wechatpay-timestamp']}\n{headers['wechatpay-nonce']}\n{body.decode()}\n".encode()
    public.verify(base64.b64decode(headers["wechatpay-signature"]), message, PKCS1v15(), SHA256())
    resource = json.loads(body)["resource"]
    assert (resource["algorithm"], resource["associated_data"], resource["original_type"], len(resource["nonce"])) \
        == ("AEAD_AES_256_GCM", "refund", "refund", 12)
    opened = AESGCM(WECHATPAY.secrets[0].encode()).decrypt(resource["nonce"].encode(),
                                                          base64.b64decode(resource["ciphertext"]), b"refund")
    assert opened == notification.plaintext and json.loads(opened)["refund_status"] == "SUCCESS"


def test_each_attempt_is_signed_at_its_own_time_and_carries_the_same_body():
    clock = FixedClock(NOW)
    hub = Hub(clock, failures=2)
    pay = standin(clock, hub)
    pay.pay("M20261118001", 25800)
    drive(pay, clock)
    assert len({body for _, _, body in hub.calls}) == 1
    stamps = [int(headers["wechatpay-timestamp"]) for _, headers, _ in hub.calls]
    assert [s - stamps[0] for s in stamps] == [0, 15, 30]
    assert len({headers["wechatpay-nonce"] for _, headers, _ in hub.calls}) == 3


def test_a_notification_can_be_built_without_being_sent_and_sent_late():
    clock = FixedClock(NOW)
    hub = Hub(clock)
    pay = standin(clock, hub)
    notification = pay.payment_notification("M20261118001", 25800, NOW - timedelta(hours=3))
    assert pay.deliver_due() == [] and hub.calls == []
    result = accept_webhook(InboundRequest("wechatpay", *pay.request(notification), "203.0.113.9"), "req",
                            lambda _: SETTINGS, hub.queue, clock)
    assert result.reply.status_code == 200
    (event,) = hub.queue.sent[0].events
    assert event.event_time == NOW - timedelta(hours=3)  # when it was paid, not when it arrived


def test_a_duplicate_is_the_same_notification_again_and_books_the_same_records():
    clock = FixedClock(NOW)
    hub = Hub(clock)
    pay = standin(clock, hub)
    pay.pay("M20261118001", 25800)
    first = pay.deliveries[0].notification
    pay.duplicate(first)
    pay.deliver_due()
    one, two = hub.queue.sent
    assert one.body == two.body and one.events == two.events and one.events[0].event_id == first.id


# Its retry schedule -------------------------------------------------------------------------------

@pytest.mark.parametrize("failures", [0, 1, 4, 15])
@pytest.mark.parametrize("how", [500, 400, "no answer"])
def test_a_hub_that_fails_n_times_gets_the_attempts_at_wechat_pays_offsets(failures, how):
    clock = FixedClock(NOW)
    hub = Hub(clock, failures=failures, how=how)
    pay = standin(clock, hub)
    pay.pay("M20261118001", 25800)
    assert drive(pay, clock) == [0, *accumulate(RETRY_AFTER_S[:failures])]
    assert pay.deliveries[0].state == "delivered" and len(hub.queue.sent) == 1
    assert [a.status for a in pay.deliveries[0].attempts][-1] == 200


def test_nothing_is_resent_before_it_is_due():
    clock = FixedClock(NOW)
    pay = standin(clock, Hub(clock, failures=2))
    pay.pay("M20261118001", 25800)
    assert len(pay.deliver_due()) == 1
    clock.advance(14)
    assert pay.deliver_due() == []
    clock.advance(1)
    assert len(pay.deliver_due()) == 1


def test_after_sixteen_attempts_over_24_hours_4_minutes_it_gives_up():
    clock = FixedClock(NOW)
    hub = Hub(clock, failures=100)
    pay = standin(clock, hub)
    pay.pay("M20261118001", 25800)
    offsets = drive(pay, clock)
    assert len(offsets) == 16 and offsets[-1] == 24 * 3600 + 4 * 60
    assert pay.deliveries[0].state == "abandoned" and pay.pending() == []
    clock.advance(7 * 86400)
    assert pay.deliver_due() == [] and len(hub.calls) == 16


def test_only_200_and_204_are_deliveries():
    clock = FixedClock(NOW)
    for status, delivered in ((200, True), (204, True), (202, False), (302, False)):
        class Answers:
            def post(self, url, body, headers, timeouts, status=status):
                return HttpReply(status)

        pay = standin(clock, Answers())
        pay.pay("M20261118001", 25800)
        (attempt,) = pay.deliver_due()
        assert attempt.delivered is delivered
        assert pay.deliveries[0].state == ("delivered" if delivered else "pending")


@given(copies=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 30_000)), max_size=8),
       failures=st.integers(0, 4))
def test_duplicates_retries_and_late_copies_queue_exactly_the_records_of_one_clean_delivery(copies, failures):
    # Given a payment and its refund's three reports, each delivered, some of them again later (WeChat Pay's
    # duplicates), through a hub that fails the first attempts
    clock = FixedClock(NOW)
    hub = Hub(clock, failures=failures)
    pay = standin(clock, hub)
    transaction_id = pay.pay("M20261118001", 25800)
    refund_id = pay.refund(transaction_id, 5800, "ABNORMAL")
    pay.refund(transaction_id, 5800, "SUCCESS", refund_id=refund_id)
    pay.refund(transaction_id, 800, "CLOSED")
    made = [d.notification for d in pay.deliveries]
    for index, delay in sorted(copies, key=lambda c: c[1]):
        clock.advance(delay - (clock.now() - NOW).total_seconds())
        pay.deliver_due()
        pay.duplicate(made[index])
    # When everything due has been delivered
    drive(pay, clock)
    # Then the hub queued only those notifications, and their ledger records are those of one delivery each
    events = [event for message in hub.queue.sent for event in message.events]
    assert len(events) == len(made) + len(copies)
    assert {e.event_id for e in events} == {n.id for n in made}
    clean = {line_of(f).record_id for n in made for e in CHANNEL.parse(n.body) for f in e.money}
    assert {line_of(f).record_id for e in events for f in e.money} == clean and len(clean) == 4


# Over HTTP, built from the configuration ---------------------------------------------------------

class Receiver:
    """A loopback HTTP server (port 0) answering 204, recording what it got."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


def test_it_posts_over_http_and_counts_a_connection_refused_as_a_failure_to_retry():
    clock = FixedClock(NOW)
    with Receiver() as receiver:
        pay = from_config(CONFIG, receiver.url, clock)
        pay.pay("M20261118001", 25800)
        (attempt,) = pay.deliver_due()
        assert attempt.status == 204 and attempt.delivered
        ((path, headers, body),) = receiver.received
        assert path == "/webhooks/wechatpay" and body == pay.deliveries[0].notification.body
        CHANNEL.authenticate(InboundRequest("wechatpay", headers, body, "127.0.0.1"), SETTINGS, NOW)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{unused.getsockname()[1]}"  # bound, not listening: refused
        pay = from_config(CONFIG, closed, clock)
        pay.pay("M20261118001", 25800)
        (attempt,) = pay.deliver_due()
    assert attempt.status is None and pay.deliveries[0].due == NOW + timedelta(seconds=15)


def test_from_config_signs_with_the_development_key_of_the_first_configured_serial_or_the_one_asked_for():
    clock = FixedClock(NOW)
    assert from_config(CONFIG, "http://hub.invalid", clock).serial == next(iter(SETTINGS.options["platform_keys"]))
    older = from_config(CONFIG, "http://hub.invalid", clock, serial=KEY_2025)
    headers, body = older.request(older.payment_notification("M20261118001", 100, NOW))
    CHANNEL.authenticate(InboundRequest("wechatpay", headers, body, "203.0.113.9"), SETTINGS, NOW)
    with pytest.raises(ValueError, match="development key"):
        from_config(CONFIG, "http://hub.invalid", clock, serial="PUB_KEY_ID_0000")
    swapped = dict(WECHATPAY.secret_options["platform_keys"])
    swapped[KEY_2025] = swapped[next(s for s in DEV_KEYS if s != KEY_2025)]
    mixed = CONFIG.model_copy(update={"channels": {**CONFIG.channels, "wechatpay": WECHATPAY.model_copy(
        update={"secret_options": {"platform_keys": swapped}})}})
    with pytest.raises(ValueError, match="not the development key's public half"):
        from_config(mixed, "http://hub.invalid", clock, serial=KEY_2025)


def test_refunds_are_held_to_the_payment_they_return():
    pay = standin(FixedClock(NOW))
    transaction_id = pay.pay("M20261118001", 25800)
    with pytest.raises(ValueError, match="no payment"):
        pay.refund("4200000000000000000000000000", 100)
    first = pay.refund(transaction_id, 25000, "ABNORMAL")
    with pytest.raises(ValueError, match="beyond what is left"):
        pay.refund(transaction_id, 801)
    pay.refund(transaction_id, 25000, "CLOSED", refund_id=first)  # closed: the money is the merchant's again
    assert pay.refund(transaction_id, 25800) != first
    with pytest.raises(ValueError, match="SUCCESS, ABNORMAL or CLOSED"):
        pay.refund(transaction_id, 1, "PROCESSING")


# The samples in events/wechatpay -----------------------------------------------------------------

def test_the_samples_are_what_the_standin_makes_and_the_hub_accepts_each_when_it_was_sent():
    made = samples(CONFIG)
    assert sorted(made) == sorted(p.stem for p in SAMPLES_DIR.glob("*.json"))
    booked = {}
    for name, sample in made.items():
        assert json.loads((SAMPLES_DIR / f"{name}.json").read_text()) == sample, f"regenerate {name}.json"
        body, sent_at = sample["body"].encode(), datetime.fromisoformat(sample["sent_at"])
        CHANNEL.authenticate(InboundRequest("wechatpay", sample["headers"], body, "203.0.113.9"), SETTINGS, sent_at)
        (event,) = CHANNEL.parse(body)
        assert json.loads(event.money[0].payload) == sample["resource (decrypted)"]
        booked[name] = (event.money[0].kind, event.money[0].state, event.money[0].amount)
    assert booked == {"transaction_success": ("payment", MoneyState.CONFIRMED, 25800),
                      "refund_abnormal": ("refund", MoneyState.PENDING, 5800),
                      "refund_success": ("refund", MoneyState.CONFIRMED, 5800),
                      "refund_closed": ("refund", MoneyState.REVERSED, 1000)}
