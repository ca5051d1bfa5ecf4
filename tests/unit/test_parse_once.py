"""A webhook is parsed once, at the edge: the events travel in the intake message with their drift, and
the status mapper maps them exactly as it maps a message it has to parse itself (a replay, a pulled
order, an imported row, or a message queued before events travelled with it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.demo.traffic import load_channel_stories, signed_request
from orderhub.channels import get_channel
from orderhub.channels.base import NO_RULES, ChannelSettings, FieldRules, InboundRequest
from orderhub.channels.shopify import client_request as shopify_request
from orderhub.clock import FixedClock
from orderhub.intake import accept_webhook
from orderhub.lifecycle.machine import HUB_BOOKKEEPING_FIELDS
from orderhub.mapping import OrderNotFound, map_message
from orderhub.models.envelope import IntakeMessage
from orderhub.store.orders import InMemoryOrderStore

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
PUSH_CHANNELS = ("mall", "douyin", "youzan", "shopify", "woocommerce", "wms", "kuaidi100")


class Queue:
    def __init__(self) -> None:
        self.sent: list[IntakeMessage] = []

    def send(self, message: IntakeMessage) -> None:
        # Through JSON, as SQS carries it.
        self.sent.append(IntakeMessage.model_validate_json(message.model_dump_json()))


class Health:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, tuple[str, ...], tuple[str, ...], str]] = []

    def record(self, channel, drift, gaps, event_id, at) -> None:
        self.recorded.append((channel, drift, gaps, event_id))


def settings_for(config):
    def settings(name: str) -> ChannelSettings:
        c = config.channels[name]
        return ChannelSettings(secrets=c.secrets, app_key=c.app_key, options=c.options)

    return settings


def accepted_messages(config, channel: str) -> list[IntakeMessage]:
    queue = Queue()
    for n, story in enumerate(load_channel_stories(channel)):
        for i, request in enumerate(story.requests):
            headers, body = signed_request(config, request, NOW)
            inbound = InboundRequest(request.channel, headers, body, "203.0.113.7")
            result = accept_webhook(inbound, f"req-{n}-{i}", settings_for(config), queue, FixedClock(NOW))
            assert result.reply.status_code < 300, (story.name, result.reply)
    return queue.sent


def mapped(messages: list[IntakeMessage]):
    store, health = InMemoryOrderStore(), Health()
    outcomes = [(o.order_id, o.outcome, o.status_after) for m in messages
                for o in map_message(m, store, FixedClock(NOW), health=health)]
    return store, outcomes, health.recorded


@pytest.mark.parametrize("channel", PUSH_CHANNELS)
def test_the_events_ingest_queues_are_the_events_the_body_parses_to(hub_config, channel):
    messages = accepted_messages(hub_config, channel)
    assert messages and all(m.events for m in messages)
    for m in messages:
        assert m.events == tuple(get_channel(m.channel).parse(m.body, m.headers))


@pytest.mark.parametrize("channel", PUSH_CHANNELS)
def test_mapping_the_queued_events_gives_what_parsing_the_bodies_gives(hub_config, channel):
    messages = accepted_messages(hub_config, channel)
    forwarded = mapped(messages)
    parsed = mapped([m.model_copy(update={"events": None}) for m in messages])
    assert forwarded[1] == parsed[1]  # outcome by outcome
    assert forwarded[0].orders == parsed[0].orders and forwarded[0].orders
    assert forwarded[0].events == parsed[0].events  # the logs, raw bodies included
    assert forwarded[2] == parsed[2]  # drift and gaps recorded alike


def first_shopify_order() -> dict:
    return json.loads(next(r.payload for s in load_channel_stories("shopify") for r in s.requests
                           if r.headers.get("x-shopify-topic") == "orders/create"))


def shopify_webhook(order: dict, event_id: str, rules: FieldRules = NO_RULES) -> list[IntakeMessage]:
    secret = "shopify-secret"
    headers, body = shopify_request(json.dumps(order).encode(), {"X-Shopify-Topic": "orders/create",
                                                                  "X-Shopify-Shop-Domain": "demo.myshopify.com",
                                                                  "X-Shopify-Event-Id": event_id}, secret, "", NOW)
    queue = Queue()
    result = accept_webhook(InboundRequest("shopify", headers, body, "203.0.113.7"), event_id,
                            lambda _: ChannelSettings(secrets=[secret], field_rules=rules), queue, FixedClock(NOW))
    assert result.reply.status_code == 200
    return queue.sent


def test_drift_found_at_the_edge_is_recorded_by_the_mapper_and_never_reaches_the_order_number():
    order = first_shopify_order()
    order["order_id_suffix"] = "-X"
    (message,) = shopify_webhook(order, "evt-drift-1")
    (event,) = message.events
    assert event.drift == ("order_id_suffix",) and event.channel_order_id == str(order["id"])
    store, _, recorded = mapped([message])
    assert [(c, d) for c, d, _, _ in recorded] == [("shopify", ("order_id_suffix",))]
    assert [o.channel_order_id for o in store.orders.values()] == [str(order["id"])]


def test_field_rules_apply_at_the_edge():
    order = first_shopify_order()
    order["order_id_suffix"] = "-X"
    (message,) = shopify_webhook(order, "evt-drift-2", FieldRules(ignore=("order_id_suffix",)))
    assert message.events[0].drift == ()
    (message,) = shopify_webhook(order, "evt-drift-3", FieldRules(drop=("order_id_suffix",)))
    assert message.events[0].drift == ()


def webhook_of_size(sqs_bytes_without_events: int, event_id: str) -> IntakeMessage:
    """A Shopify order webhook whose intake message, without its events, is about `sqs_bytes_without_events`."""
    order = first_shopify_order()
    order["note"] = ""
    (message,) = shopify_webhook(order, event_id + "-probe")
    base = len(message.model_copy(update={"events": None}).model_dump_json().encode())
    order["note"] = "gift wrap, " * ((sqs_bytes_without_events - base) * 3 // 4 // 11)
    (message,) = shopify_webhook(order, event_id)
    return message


def test_a_message_over_the_queue_limit_leaves_its_events_out_then_compresses_its_body():
    limit = 256 * 1024
    near = webhook_of_size(limit - 200, "evt-near")  # the body fits, with the events it does not
    body = near.sqs_body(limit)
    assert len(body.encode()) <= limit < len(near.model_dump_json().encode())
    travelled = IntakeMessage.model_validate_json(body)
    assert travelled.events is None and not travelled.body_zlib and travelled.body == near.body

    big = webhook_of_size(limit + 60_000, "evt-big")  # the body in base64 alone is over the limit
    body = big.sqs_body(limit)
    travelled = IntakeMessage.model_validate_json(body)
    assert len(body.encode()) <= limit and travelled.body_zlib and travelled.body == big.body
    # The mapper parses what travelled, and logs the body as received.
    assert mapped([travelled])[0].orders == mapped([big])[0].orders
    (entry,) = mapped([travelled])[0].events.values()
    assert entry.raw_body == big.body


def test_a_message_within_the_limit_travels_as_it_is():
    small = shopify_webhook(first_shopify_order(), "evt-small")[0]
    assert small.sqs_body(256 * 1024) == small.model_dump_json()


_ACCEPTED: dict[str, list[IntakeMessage]] = {}


def accepted_once(channel: str) -> list[IntakeMessage]:
    if channel not in _ACCEPTED:
        from infra.config import load_config

        _ACCEPTED[channel] = accepted_messages(load_config(), channel)
    return _ACCEPTED[channel]


def map_until_done(messages: list[IntakeMessage]) -> InMemoryOrderStore:
    """Map as the queue delivers: a carrier callback before its order's waybill is retried later."""
    store, waiting = InMemoryOrderStore(), list(messages)
    for _ in range(len(messages) * len(messages) + 1):
        if not waiting:
            return store
        message = waiting.pop(0)
        try:
            map_message(message, store, FixedClock(NOW))
        except OrderNotFound:
            waiting.append(message)
    raise AssertionError("messages never mapped")


@settings(max_examples=40, deadline=None)
@given(channel=st.sampled_from(PUSH_CHANNELS), data=st.data())
def test_queued_events_in_any_order_with_duplicates_converge_to_the_parsed_bodies_in_order(channel, data):
    messages = accepted_once(channel)
    arrivals = data.draw(st.permutations(messages + data.draw(st.lists(st.sampled_from(messages), max_size=6))))
    forwarded = map_until_done(arrivals)
    parsed = map_until_done([m.model_copy(update={"events": None}) for m in messages])
    assert forwarded.orders.keys() == parsed.orders.keys()
    for order_id, order in parsed.orders.items():
        assert forwarded.orders[order_id].model_dump(exclude=HUB_BOOKKEEPING_FIELDS) == order.model_dump(
            exclude=HUB_BOOKKEEPING_FIELDS)
    assert forwarded.events.keys() == parsed.events.keys()


def test_a_pulled_order_over_the_queue_limit_travels_compressed():
    # No parsed events to leave out (pollers, imports, replays): the body is compressed straight away.
    order = json.dumps({"tid": "1", "memo": "gift wrap, " * 30_000}).encode()
    message = IntakeMessage.wrap("taobao", "2026-11-22T03:00:00.000+00:00", "poll:1", "", {}, order)
    body = message.sqs_body(256 * 1024)
    travelled = IntakeMessage.model_validate_json(body)
    assert len(body.encode()) <= 256 * 1024 and travelled.body_zlib and travelled.events is None
    assert travelled.body == order
