"""A webhook whatever its unknown fields (any number, any length, any Unicode, lone surrogates
included) is mapped and its drift recorded on DynamoDB (moto, with its key-size limits) in at most
one channel-health write: nothing a channel adds to a payload can poison its intake message."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from unit.moto_tables import moto_channel_health

from infra.demo.traffic import load_channel_stories
from orderhub.channels import get_channel
from orderhub.channels.drift import MAX_LISTED_PER_EVENT
from orderhub.channels.rejections import ChannelRejection
from orderhub.clock import FixedClock
from orderhub.mapping import map_message
from orderhub.models.envelope import IntakeMessage
from orderhub.store.orders import InMemoryOrderStore

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
(FIRST_REQUEST, *_) = load_channel_stories("shopify")[0].requests

PLAIN = st.sampled_from(["a", "é", "中", "\x00", "_", "😀", " "])
ODD = PLAIN | st.sampled_from([".", "[]", "[", "]", "\ud800", "\udfff"])  # separators; lone surrogates


def names(chars):
    return (st.lists(chars, min_size=1, max_size=8).map("".join)
            | st.tuples(chars, st.integers(900, 2_500)).map(lambda t: t[0] * t[1]))  # past the 1,024-byte key limit


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plain=st.lists(names(PLAIN), max_size=6), odd=st.lists(names(ODD), max_size=3), many=st.integers(0, 4_000),
       stem=names(PLAIN), nested=st.integers(0, 300), parsed_at_the_edge=st.booleans())
def test_any_unknown_fields_are_one_health_write_that_dynamodb_accepts(plain, odd, many, stem, nested,
                                                                       parsed_at_the_edge):
    # Given a real Shopify order with unknown fields added at the top and inside a line item
    payload = json.loads(FIRST_REQUEST.payload)
    payload.update(dict.fromkeys(plain + odd, 1))
    payload.update({f"{stem}{i}": i for i in range(many)})
    payload["line_items"][0].update({f"{stem}{i}": {"x": i} for i in range(nested)})
    body = json.dumps(payload).encode()  # JSON spells a lone surrogate as "\ud800"
    try:
        events = tuple(get_channel("shopify").parse(body, FIRST_REQUEST.headers))
    except ChannelRejection as refused:  # refused at the edge with a 4xx: nothing acknowledged, nothing queued
        assert 400 <= refused.status_code < 500
        return
    message = IntakeMessage.wrap("shopify", "2026-11-22T03:00:00.000+00:00", "req-1", "203.0.113.7",
                                 FIRST_REQUEST.headers, body, events=events if parsed_at_the_edge else None)
    with mock_aws():
        health, recording = moto_channel_health(boto3.client("dynamodb", region_name="ap-southeast-1"))
        # When the status mapper maps it
        outcomes = map_message(message, InMemoryOrderStore(), FixedClock(NOW), health=health)
        # Then the order is applied, and its drift was one write, within DynamoDB's key limits
        assert [o.outcome for o in outcomes] == ["applied"]
        assert len(recording.writes()) == (1 if plain or odd or many or nested else 0)
        for write in recording.writes():
            assert len(write["Key"]["channel"]["S"].encode()) <= 2_048
            assert len(write["Key"]["entry"]["S"].encode()) <= 1_024
        # And the report lists at most the cap per event and says how many more there were
        drift = health.entries("shopify", kind="drift")
        listed = [e for e in drift if not e.key.startswith("(+")]
        assert len(listed) <= MAX_LISTED_PER_EVENT and all(e.count == 1 for e in drift)
        if odd:  # keys with separators may sit under one another: the unit tests count those
            return
        unknown = len(set(plain) | {f"{stem}{i}" for i in range(many)}) + nested
        more = [e.key for e in drift if e.key.startswith("(+")]
        assert more == ([f"(+{unknown - MAX_LISTED_PER_EVENT} more unknown field paths: an event lists its first "
                         f"{MAX_LISTED_PER_EVENT})"] if unknown > MAX_LISTED_PER_EVENT else [])
        assert len(listed) == min(unknown, MAX_LISTED_PER_EVENT)
