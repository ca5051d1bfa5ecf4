"""accept_webhook: a rejected request leaves nothing behind; an accepted one is queued before the reply.

And the batch sending every other producer uses (`orderhub.intake_batch`: file import, replay, poller).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from unit.mall_events import created

from orderhub.channels.base import ChannelSettings, InboundRequest
from orderhub.channels.mall import sign
from orderhub.clock import FixedClock
from orderhub.intake import accept_webhook
from orderhub.intake_batch import IntakeBatchSender, batches, entry_bytes, send_with_retries
from orderhub.models.envelope import IntakeMessage

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
SETTINGS = ChannelSettings(secrets=["secret-1"])


class Queue:
    def __init__(self):
        self.sent: list[IntakeMessage] = []

    def send(self, message):
        self.sent.append(message)


def signed(body: bytes, channel: str = "mall") -> InboundRequest:
    ts = str(int(NOW.timestamp()))
    return InboundRequest(channel, {"x-mall-timestamp": ts, "x-mall-signature": sign("secret-1", ts, body),
                                    "user-agent": "shop"}, body, "198.51.100.7")


def accept(request):
    queue = Queue()
    return accept_webhook(request, "req-9", lambda _: SETTINGS, queue, FixedClock(NOW)), queue


def test_an_accepted_webhook_is_queued_raw_with_its_signature_headers():
    body = json.dumps(created()).encode()
    result, queue = accept(signed(body))
    assert result.reply.status_code == 200 and result.accepted_events == 1
    (message,) = queue.sent
    assert message.body == body and message.channel == "mall" and message.received_at.startswith("2026-11-22T03:00")
    assert set(message.headers) == {"x-mall-timestamp", "x-mall-signature"}  # only what replay needs


def test_a_forged_webhook_gets_401_and_nothing_is_queued():
    request = signed(json.dumps(created()).encode())
    forged = InboundRequest("mall", request.headers, request.body.replace(b"25800", b"25900"), request.source_ip)
    result, queue = accept(forged)
    assert result.reply.status_code == 401 and queue.sent == []


def test_a_malformed_webhook_gets_400_and_nothing_is_queued():
    result, queue = accept(signed(b'{"event_id": "evt_12345678"}'))
    assert result.reply.status_code == 400 and queue.sent == []
    assert "event_type" in json.loads(result.reply.body)["message"]


def test_an_unknown_channel_gets_404():
    result, queue = accept(signed(b"{}", channel="nosuch"))
    assert result.reply.status_code == 404 and queue.sent == []


def test_a_too_large_body_gets_413_before_any_parsing():
    result, queue = accept(signed(b"{" + b" " * 70_000 + b"}"))
    assert result.reply.status_code == 413 and queue.sent == []


def test_a_platform_ping_is_acknowledged_and_nothing_is_queued():
    # WooCommerce pings a new webhook with an unsigned form body; it must get 200 and leave nothing
    ping = InboundRequest("woocommerce", {"content-type": "application/x-www-form-urlencoded"}, b"webhook_id=7",
                          "198.51.100.7")
    result, queue = accept(ping)
    assert result.reply.status_code == 200 and result.accepted_events == 0 and queue.sent == []


def test_pulled_channels_have_no_webhook():
    result, queue = accept(signed(b"{}", channel="taobao"))
    assert result.reply.status_code == 404 and queue.sent == []


# --- batches to the intake queue ---------------------------------------------------------------


def message(n: int, size: int = 10) -> IntakeMessage:
    return IntakeMessage.wrap("taobao", "t", f"r{n}", "", {}, b"x" * size)


class Calls:
    """One SendMessageBatch per call; `fail(call, message)` -> (reason, retryable) or None."""

    def __init__(self, fail=lambda call, m: None):
        self.fail, self.calls, self.sent = fail, 0, []

    def __call__(self, messages):
        self.calls += 1
        failed = {i: f for i, m in enumerate(messages) if (f := self.fail(self.calls, m))}
        self.sent += [m for i, m in enumerate(messages) if i not in failed]
        return failed


def send(calls, messages, attempts=4):
    waits = []
    unsent = send_with_retries(calls, messages, attempts=attempts, backoff_s=0.05, max_backoff_s=0.15,
                               sleep=waits.append)
    return unsent, waits


def test_batches_keep_the_order_and_stay_within_ten_entries_and_256_kib_with_attributes():
    small = [message(i) for i in range(25)]
    assert [len(b) for b in batches(small, lambda m: m)] == [10, 10, 5]
    big = [message(i, size=70_000) for i in range(8)]  # ~93 KB each once base64-encoded
    runs = batches(list(enumerate(big)), lambda item: item[1])
    assert [i for run in runs for i, _ in run] == list(range(8))
    assert all(sum(entry_bytes(m) for _, m in run) <= 256 * 1024 for run in runs) and len(runs) == 4
    assert entry_bytes(small[0]) == len(small[0].model_dump_json()) + len("channel") + len("String") + len("taobao")


def test_failed_entries_are_sent_again_with_backoff_until_they_go():
    calls = Calls(fail=lambda call, m: ("InternalError", True) if call < 3 and m.request_id == "r1" else None)
    messages = [message(i) for i in range(3)]
    unsent, waits = send(calls, messages)
    assert unsent == {} and calls.calls == 3 and waits == [0.1, 0.15]
    assert sorted(m.request_id for m in calls.sent) == ["r0", "r1", "r2"]


def test_an_entry_refused_as_the_senders_fault_is_not_sent_again_the_others_are():
    def fail(call, m):
        if m.request_id == "r0":
            return ("InvalidMessageContents", False)
        return ("InternalError", True) if m.request_id == "r2" and call == 1 else None

    calls = Calls(fail)
    unsent, _ = send(calls, [message(i) for i in range(3)])
    assert unsent == {0: ("InvalidMessageContents", False)} and calls.calls == 2
    assert sorted(m.request_id for m in calls.sent) == ["r1", "r2"]


def test_entries_still_failing_after_the_last_attempt_are_returned_by_position():
    calls = Calls(fail=lambda call, m: ("ServiceUnavailable", True) if m.request_id in ("r1", "r3") else None)
    unsent, waits = send(calls, [message(i) for i in range(4)], attempts=5)
    assert unsent == {1: ("ServiceUnavailable", True), 3: ("ServiceUnavailable", True)}
    assert calls.calls == 5 and len(waits) == 4


def test_an_error_of_the_call_itself_is_the_callers_to_handle():
    def broken(messages):
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        send(broken, [message(0)])


def test_the_sqs_sender_sends_the_channel_attribute_and_reads_failures_and_sender_fault():
    class Sqs:
        def send_message_batch(self, QueueUrl, Entries):  # noqa: N803
            self.entries = Entries
            return {"Successful": [{"Id": "0"}], "Failed": [
                {"Id": "1", "Code": "InternalError", "Message": "try later", "SenderFault": False},
                {"Id": "2", "Code": "InvalidMessageContents", "SenderFault": True}]}

    sqs = Sqs()
    failed = IntakeBatchSender("u", sqs).send_batch([message(i) for i in range(3)])
    assert failed == {1: ("InternalError: try later", True), 2: ("InvalidMessageContents", False)}
    assert sqs.entries[0]["MessageAttributes"] == {"channel": {"DataType": "String", "StringValue": "taobao"}}
    assert IntakeMessage.model_validate_json(sqs.entries[2]["MessageBody"]) == message(2)


def test_a_signed_body_that_cannot_fit_the_queue_even_compressed_gets_413_and_nothing_is_queued():
    # Given a Shopify order near the 256 KiB body limit whose note is incompressible text
    import random

    from infra.config import load_config
    from infra.demo.traffic import ChannelRequest, load_channel_stories, signed_request
    from orderhub.intake_batch import MAX_MESSAGE_BYTES

    config = load_config()
    shopify = config.channels["shopify"]
    settings = ChannelSettings(secrets=shopify.secrets, app_key=shopify.app_key, options=shopify.options)
    first = load_channel_stories("shopify")[0].requests[0]
    order = json.loads(first.payload)
    rng = random.Random(7)
    room = 250 * 1024 - len(first.payload)
    printable = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"\\')
    order["note"] = "".join(rng.choice(printable) for _ in range(room))
    request = ChannelRequest("shopify", first.headers, json.dumps(order).encode())
    headers, body = signed_request(config, request, NOW)
    queue = Queue()
    # When it is posted, correctly signed
    result = accept_webhook(InboundRequest("shopify", {k.lower(): v for k, v in headers.items()}, body, "198.51.100.7"),
                            "req-9", lambda _: settings, queue, FixedClock(NOW))
    # Then no retry could make it fit: a 413 with the reason, nothing queued
    assert result.reply.status_code == 413 and "compressed" in (result.rejection or "")
    assert queue.sent == []
    # While the same order with a note that compresses is queued, within the queue's limit
    order["note"] = "gift " * (room // 5)
    headers, body = signed_request(config, ChannelRequest("shopify", first.headers, json.dumps(order).encode()), NOW)
    result = accept_webhook(InboundRequest("shopify", {k.lower(): v for k, v in headers.items()}, body, "198.51.100.7"),
                            "req-9", lambda _: settings, queue, FixedClock(NOW))
    assert result.reply.status_code == 200
    (message,) = queue.sent
    assert len(message.sqs_body(MAX_MESSAGE_BYTES).encode()) <= MAX_MESSAGE_BYTES
