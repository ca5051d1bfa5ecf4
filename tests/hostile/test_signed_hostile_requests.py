"""Signed requests of every shape, on every push channel: a 2xx is applied, anything else is a 4xx.

Each example is a channel's real request with hostile JSON text spliced into the object its parser
reads (tests/hostile/channel_payloads.py), signed with the channel's secret so the parser is
reached: odd keys and values, deep nesting, many fields, extreme numbers and dates, duplicate keys.
For every one: the reply is 2xx or 4xx and never an exception; a 4xx queues nothing; a 2xx queues
a message SQS can carry, which the status mapper then maps on moto's DynamoDB without raising, each
event logged (and its order written when it applied): nothing poisoned, nothing half-written.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hostile.channel_payloads import AMOUNT_FIELDS, IDENTITY_FIELDS, PUSH_CHANNELS, TIME_FIELDS, signed, template
from infra.config import load_config
from infra.demo.traffic import load_channel_stories, signed_request
from orderhub.channels.base import ChannelSettings, InboundRequest
from orderhub.clock import FixedClock
from orderhub.intake import accept_webhook
from orderhub.intake_batch import MAX_MESSAGE_BYTES
from orderhub.mapping import OrderNotFound, map_message
from orderhub.models.envelope import IntakeMessage

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
CONFIG = load_config()

ODD_CHARACTERS = st.sampled_from(["\x00", "\u202e", "\u0301", "\ud800", "\udfff", "\U0001f600", "\ufeff", "\u2028",
                                  "\\", '"', "%", "+", "&", "=", " ", "\u00b9", "\u0663", "\uff11", "."])
ODD_TEXT = (st.lists(ODD_CHARACTERS | st.characters(), max_size=12).map("".join)
            | st.integers(65, 3000).map(lambda n: "k" * n))
JSON_STRING = ODD_TEXT.map(json.dumps)  # ensure_ascii: a lone surrogate travels as its \\udXXX escape
NUMBERS = st.sampled_from(["true", "false", "null", "NaN", "Infinity", "-Infinity", "1e400", "-1", "0", "-0",
                           "0.001", "12.345", "1E+2", "18446744073709551616", "1" + "0" * 40, "9" * 5000,
                           '"12.345"', '"0.001"', '"-5"', '"\u00b9\u00b2\u00b3"', '"\u0663\u0664"', '"1e3"',
                           '"\uff11\uff12"']) | st.integers().map(str)
DATES = st.sampled_from(['"2286-11-20T17:46:40+00:00"', '"2286-11-20 17:46:40"', '"0001-01-01T00:00:00Z"',
                         '"1969-12-31T23:59:59Z"', '"9999-12-31T23:59:59+14:00"', '"2026-11-22T03:00:00"',
                         '"2026-13-45T99:99:99Z"', '"\uff12\uff10\uff12\uff16-11-22T03:00:00Z"',
                         '"\u00b9\u2077\u2079\u2075\u00b9\u00b3\u00b2\u2078\u2070\u2070"', '"1795132800"',
                         "9999999999", "99999999999999", "253402300800", "1e10", "-1", "0",
                         '"2026-11-23 03:00:00"', '"2026-11-21T03:00:00-14:00"']) \
    | st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
        lambda d: json.dumps(d.isoformat() + "+00:00"))


def _nested(depth: int, opener: str) -> str:
    return opener * depth + "1" + ("]" if opener == "[" else "}") * depth


DEEP = st.tuples(st.integers(1, 1200), st.sampled_from(["[", '{"a":'])).map(lambda t: _nested(*t))
VALUE = JSON_STRING | NUMBERS | DATES | DEEP | st.sampled_from(["{}", "[]", '{"": ""}'])
MEMBERS = st.lists(st.tuples(JSON_STRING, VALUE), max_size=4).map(
    lambda members: ", ".join(f"{key}: {value}" for key, value in members))
MANY_FIELDS = st.sampled_from([50, 400, 3000, 10_001]).map(lambda n: ", ".join(f'"x{i}": {i}' for i in range(n)))


def hostile_requests(channel: str) -> st.SearchStrategy[bytes]:
    """(field set to a hostile value, or none) x (hostile members added, a field count, or a key twice)."""
    t = template(channel)
    fields = IDENTITY_FIELDS[channel] + AMOUNT_FIELDS[channel] + TIME_FIELDS[channel]
    replaced = st.none() | st.tuples(st.sampled_from(fields), VALUE) \
        | st.tuples(st.sampled_from(TIME_FIELDS[channel]), DATES) \
        | st.tuples(st.sampled_from(AMOUNT_FIELDS[channel]), NUMBERS)
    twice = st.tuples(st.sampled_from(sorted(t.inner)), VALUE).map(lambda kv: f"{json.dumps(kv[0])}: {kv[1]}")
    added = st.just("") | MEMBERS | MANY_FIELDS | twice
    return st.tuples(replaced, added).map(
        lambda r: t.body_with(*(r[0] or (None, "null")), members=r[1]))


class SqsQueue:
    """What SQS would hold: the message as it is sent, refused beyond the queue's size limit."""

    def __init__(self) -> None:
        self.sent: list[IntakeMessage] = []

    def send(self, message: IntakeMessage) -> None:
        body = message.sqs_body(MAX_MESSAGE_BYTES)
        assert len(body.encode()) <= MAX_MESSAGE_BYTES, "acknowledged a message SQS would refuse"
        self.sent.append(IntakeMessage.model_validate_json(body))


def settings_for(name: str) -> ChannelSettings:
    c = CONFIG.channels[name]
    return ChannelSettings(secrets=c.secrets, app_key=c.app_key, options=c.options)


def accept(channel: str, headers: dict[str, str], body: bytes):
    queue = SqsQueue()
    result = accept_webhook(InboundRequest(channel, headers, body, "203.0.113.7"), "req-hostile", settings_for,
                            queue, FixedClock(NOW))
    return result, queue.sent


@pytest.fixture(scope="module")
def seeded(moto_store):
    """The orders the templates refer to (a wms or kuaidi100 report needs its order): the stories up to them."""
    for channel in PUSH_CHANNELS:
        story = next(s for s in load_channel_stories(channel) if any(r.channel == channel for r in s.requests))
        for request in story.requests:
            if request.channel == channel:
                break
            headers, body = signed_request(CONFIG, request, NOW)
            _, sent = accept(request.channel, headers, body)
            for message in sent:
                map_message(message, moto_store, FixedClock(NOW))
    return moto_store


@pytest.mark.parametrize("channel", PUSH_CHANNELS)
def test_the_unchanged_template_is_accepted_and_applied(channel, seeded):
    result, sent = accept(channel, *signed(CONFIG, channel, template(channel).body_with(), NOW))
    assert result.reply.status_code == 200 and sent
    for message in sent:
        outcomes = map_message(message, seeded, FixedClock(NOW))
        assert outcomes and all(o.outcome != "conflict" for o in outcomes)


@pytest.mark.parametrize("channel", PUSH_CHANNELS)
@settings(settings.get_profile("hostile"))
@given(data=st.data())
def test_a_signed_request_of_any_shape_is_2xx_and_applied_or_4xx_with_a_reason(channel, seeded, data):
    payload = data.draw(hostile_requests(channel))
    result, sent = accept(channel, *signed(CONFIG, channel, payload, NOW))
    status = result.reply.status_code
    assert 200 <= status < 300 or 400 <= status < 500, result.reply
    if status >= 400:
        assert sent == [] and result.rejection
        return
    for message in sent:
        try:
            outcomes = map_message(message, seeded, FixedClock(NOW))
        except OrderNotFound:
            # A report for an order the hub has not seen (a hostile waybill or hub id): retried, then parked
            # in the intake DLQ with an alarm, the documented path for a report that comes before its order.
            assert channel in ("wms", "kuaidi100")
            continue
        events = message.events if message.events is not None else ()
        for outcome, event in zip(outcomes, events, strict=False):
            if outcome.outcome in ("duplicate", "conflict"):
                continue
            logged = {e.channel_event_id for e in seeded.list_events(outcome.order_id)}
            assert event.event_id in logged, "mapped without its log entry"
            if outcome.outcome == "applied":
                assert seeded.get_order(outcome.order_id) is not None, "applied but no order written"
