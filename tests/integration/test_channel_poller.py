"""The real `channel_poller` on moto against the fake Taobao, JD and Pinduoduo over real local HTTP (ING-5).

Each test starts the three fake platforms (they check signatures, tokens and timestamps as the
platforms do), points the stage's pulled channels at them, provisions that configuration into
moto's SSM / Secrets Manager, and invokes the handler as the 5-minute schedule would. What it
enqueued is then mapped by the real `status_mapper` into the orders table.

The handler reads the system clock, so the fakes hold orders modified during the day before now.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.config import load_config
from infra.local.resources import provision
from infra.standins.downstream import by_subscriber, receiver_for
from infra.standins.embedded import embedded_platforms, stop_platforms
from infra.standins.platform_orders import generate_orders, modified_of, order_id_of, ts
from infra.standins.platforms import FakePlatform
from infra.topology import PULL_CHANNELS, build_topology
from orderhub.lifecycle.machine import hub_order_id
from orderhub.models.envelope import IntakeMessage
from orderhub.store.orders import DynamoOrderStore
from orderhub.store.watermarks import DynamoWatermarkStore, shop_key
from tests.integration.conftest import ACCOUNT, REGION, Context, Hub, _reset_lambda_state

SCHEDULE = {"source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}}
ORDERS_PER_SHOP = 20
# Small pages, so that the flash sale below crowds windows (halved) and one second holds more than a page (paged).
PAGE_SIZE = 10
FLASH_SALE = 14  # orders of the first shop of each channel modified again within a minute, a dozen in one second
LOOKBACK_MINUTES = 25 * 60  # a new shop is read from a day and an hour back


def shops_of(channel: str) -> list[dict[str, str]]:
    return [{"shop_id": f"{channel}-shop-{n}", "session": f"{channel}-session-{n}"} for n in (1, 2)]


def modified_key(channel: str) -> str:
    return "updated_at" if channel == "pdd" else "modified"


@dataclass
class Pulled:
    """The hub on moto, the fake platforms it pulls from, and what each configured shop holds there."""

    hub: Hub
    fakes: dict[str, FakePlatform]
    held: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)  # (channel, shop) -> orders

    def poll(self) -> dict[str, Any]:
        return self.hub.invoke("channel_poller", SCHEDULE)

    def expected(self) -> set[tuple[str, str]]:
        """(channel, channel order id) of every order the configured shops hold."""
        return {(ch, order_id_of(ch, o)) for (ch, _), orders in self.held.items() for o in orders}

    def expected_in_hub(self) -> set[str]:
        return {hub_order_id(ch, order_id) for ch, order_id in self.expected()}

    def watermarks(self) -> DynamoWatermarkStore:
        return DynamoWatermarkStore(self.hub.client("dynamodb"), self.hub.res.tables["poll-state"])

    def orders(self) -> DynamoOrderStore:
        return DynamoOrderStore(self.hub.client("dynamodb"), self.hub.res.tables["orders"],
                                self.hub.res.tables["order-events"])

    def map_all(self) -> list[IntakeMessage]:
        """Everything on the intake queue through the real status_mapper; the messages mapped."""
        raw: list[dict] = []
        while batch := self.hub.receive("intake"):
            raw += batch
        for i in range(0, len(raw), 10):
            reply = self.hub.invoke("status_mapper", self.hub.sqs_event("intake", raw[i:i + 10]))
            assert reply == {"batchItemFailures": []}
        return [IntakeMessage.model_validate_json(m["Body"]) for m in raw]

    def stored(self) -> dict[str, int]:
        """Hub order id -> version of every order in the orders table."""
        found: dict[str, int] = {}
        for page in self.hub.client("dynamodb").get_paginator("scan").paginate(
                TableName=self.hub.res.tables["orders"], ProjectionExpression="order_id, version"):
            found.update({item["order_id"]["S"]: int(item["version"]["N"]) for item in page["Items"]})
        return found


def flash_sale(channel: str, orders: list[dict[str, Any]], at: datetime) -> None:
    """The first orders modified again within a minute from `at` (later than any of their earlier changes)."""
    for n, order in enumerate(orders[:FLASH_SALE]):
        order[modified_key(channel)] = ts(at if n < 12 else at + timedelta(seconds=5 * (n - 11)))


def stage_config(without: tuple[str, ...]) -> tuple[Any, Any, dict[str, str]]:
    receiver, config, paths = receiver_for(load_config())
    channels = {}
    for name, channel in config.channels.items():
        if name in without:
            continue
        if name in PULL_CHANNELS:
            channel = channel.model_copy(update={
                "options": {**channel.options, "page_size": PAGE_SIZE, "initial_lookback_minutes": LOOKBACK_MINUTES},
                "secret_options": {**channel.secret_options, "shops": shops_of(name)}})
        channels[name] = channel
    return receiver, config.model_copy(update={"channels": channels}), paths


@contextmanager
def hub_on_platforms(monkeypatch: pytest.MonkeyPatch, without: tuple[str, ...] = ()) -> Iterator[Pulled]:
    """The `hub` fixture's moto hub, its pulled channels configured with two shops each on started fakes."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    receiver, config, paths = stage_config(without)
    fakes, config = embedded_platforms(config)
    try:
        now = datetime.now(UTC)
        held: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for seed, (channel, fake) in enumerate(sorted(fakes.items())):
            # One generated list split between the shops: order ids are unique per platform, as on the real one.
            day = generate_orders(channel, 2 * ORDERS_PER_SHOP, now - timedelta(days=1, minutes=20), seed=seed)
            first, second = day[0::2], day[1::2]
            flash_sale(channel, first, now - timedelta(minutes=15))
            for shop, orders in zip(shops_of(channel), (first, second), strict=True):
                fake.load(orders, shop=shop["shop_id"])
                held[(channel, shop["shop_id"])] = orders
        topology = build_topology(config.topology_subscribers(), config.business_timezone, config.provider_confirmed())
        with receiver, mock_aws():
            _reset_lambda_state()
            res = provision(topology, config, lambda s: boto3.client(s, region_name=REGION), REGION, ACCOUNT)
            hub = Hub(config, topology, res, receiver, by_subscriber(receiver, paths), monkeypatch)
            try:
                yield Pulled(hub, fakes, held)
            finally:
                _reset_lambda_state()
    finally:
        stop_platforms(fakes)


@pytest.fixture
def pulled(monkeypatch):
    with hub_on_platforms(monkeypatch) as hub:
        yield hub


def by_shop(reply: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["channel"], r["shop_id"]): r for r in reply["shops"]}


def pulled_ids(messages: list[IntakeMessage]) -> set[tuple[str, str]]:
    return {(m.channel, order_id_of(m.channel, json.loads(m.body))) for m in messages}


def page_asked(channel: str, params: dict[str, str]) -> int:
    if channel == "jd":
        return int(json.loads(params["360buy_param_json"])["page"])
    return int(params["page_no" if channel == "taobao" else "page"])


def emf_lines(output: str) -> list[dict[str, Any]]:
    """The CloudWatch embedded-metric documents among a handler's stdout lines."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{") and '"_aws"' in line]


def total(value: float | list[float]) -> float:
    return sum(value) if isinstance(value, list) else value


def metrics_in(output: str) -> dict[tuple[str, str], float]:
    """(metric, channel) -> value of every EMF line the invocation printed."""
    found = {}
    for document in emf_lines(output):
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                if "channel" in document:
                    found[(metric["Name"], document["channel"])] = total(document[metric["Name"]])
    return found


def mapped_outcomes(output: str) -> dict[str, float]:
    """Outcome -> events, summed over the status_mapper invocations that printed `output`."""
    found: dict[str, float] = {}
    for document in emf_lines(output):
        for name, value in document.items():
            if name.startswith("Events_"):
                outcome = name.removeprefix("Events_")
                found[outcome] = found.get(outcome, 0) + total(value)
    return found


def test_every_order_the_platforms_hold_for_the_configured_shops_becomes_an_order(pulled, capsys):
    # Given three platforms, two shops each, a day of orders and a flash sale a quarter of an hour ago
    assert {ch for ch, _ in pulled.held} == set(PULL_CHANNELS)
    capsys.readouterr()
    # When the schedule fires
    reply = pulled.poll()
    # Then every shop is read up to its settled end, with nothing failed or unconfigured
    assert reply["unconfigured"] == []
    shops = by_shop(reply)
    assert set(shops) == set(pulled.held)
    assert {r["outcome"] for r in shops.values()} == {"caught_up"}
    for key, orders in pulled.held.items():
        # Window bounds are inclusive at both ends: an order on a bound may be read twice, never missed.
        assert shops[key]["orders"] >= len(orders)
        assert shops[key]["new_shop"] is True
    # The flash sale was too dense for one page per window: windows were halved and its busiest second paged.
    for channel, fake in pulled.fakes.items():
        assert shops[(channel, f"{channel}-shop-1")]["window_s"] < 30 * 60
        assert max(page_asked(channel, call) for call in fake.requests) > 1
    metrics = metrics_in(capsys.readouterr().out)
    for channel in PULL_CHANNELS:
        assert metrics[("OrdersPulled", channel)] == sum(shops[(channel, s["shop_id"])]["orders"]
                                                         for s in shops_of(channel))
        assert metrics[("PullShopFailures", channel)] == 0
        assert 0 < metrics[("PullLagSeconds", channel)] < 10 * 60
    # And every order held is on the intake queue and, mapped, an order in the hub; nothing else is
    messages = pulled.map_all()
    assert pulled_ids(messages) == pulled.expected()
    assert set(pulled.stored()) == pulled.expected_in_hub()
    for (channel, _), orders in pulled.held.items():
        for order in orders:
            # The order as the platform holds it now (the flash sale's later change, not the earlier one).
            hub_order = pulled.orders().get_order(hub_order_id(channel, order_id_of(channel, order)))
            assert hub_order is not None and hub_order.channel == channel
            assert hub_order.last_event_time == modified_of(channel, order).astimezone(UTC).isoformat(
                timespec="milliseconds")


def test_a_failed_window_keeps_the_watermark_and_the_run_after_the_outage_catches_up(pulled, capsys):
    # Given Taobao fails every call whose window touches an hour of the day around one of its orders
    taobao, key = pulled.fakes["taobao"], ("taobao", "taobao-shop-1")
    victim = min(pulled.held[key][FLASH_SALE:], key=lambda o: modified_of("taobao", o))  # early in the day
    lost = hub_order_id("taobao", order_id_of("taobao", victim))
    at = modified_of("taobao", victim)
    outage = (at - timedelta(minutes=30), at + timedelta(minutes=30))
    taobao.fail_window(*outage)
    capsys.readouterr()
    # When the schedule fires
    first = by_shop(pulled.poll())
    # Then the invocation answers; each Taobao shop's result names the failure and its watermark stops before
    # the outage; JD and Pinduoduo are read as usual
    taobao_shops = [(ch, shop) for ch, shop in first if ch == "taobao"]
    for shop in taobao_shops:
        assert first[shop]["outcome"] == "failed" and "HTTP 503" in first[shop]["error"]
        assert datetime.fromisoformat(first[shop]["watermark_after"]) <= outage[0]
    assert {r["outcome"] for (ch, _), r in first.items() if ch != "taobao"} == {"caught_up"}
    metrics = metrics_in(capsys.readouterr().out)
    assert metrics[("PullShopFailures", "taobao")] == len(taobao_shops) == 2
    assert metrics[("PullShopFailures", "jd")] == metrics[("PullShopFailures", "pdd")] == 0
    # What the channel's alarm watches: its slowest shop, far behind (the alarm fires above 30 minutes).
    assert metrics[("PullLagSeconds", "taobao")] == max(first[shop]["lag_s"] for shop in taobao_shops) > 3600
    stopped_at = datetime.fromisoformat(first[key]["watermark_after"])
    state = pulled.watermarks().get(shop_key(*key))
    assert state is not None and state.watermark == stopped_at and "HTTP 503" in state.last_error
    pulled.map_all()
    assert pulled.orders().get_order(lost) is None

    # When it fires again during the outage
    second = by_shop(pulled.poll())
    # Then the watermark stays exactly where it was: the failed window is not stepped over
    for shop in taobao_shops:
        assert second[shop]["outcome"] == "failed"
        assert second[shop]["watermark_before"] == second[shop]["watermark_after"] == first[shop]["watermark_after"]
    assert pulled.watermarks().get(shop_key(*key)).watermark == stopped_at
    pulled.map_all()
    assert pulled.orders().get_order(lost) is None

    # When the platform is back and the schedule fires
    taobao.heal()
    third = by_shop(pulled.poll())
    # Then each shop catches up from where it stopped: the missed window is read and every order is in the hub
    for shop in taobao_shops:
        assert third[shop]["outcome"] == "caught_up"
        assert third[shop]["watermark_before"] == first[shop]["watermark_after"]
    state = pulled.watermarks().get(shop_key(*key))
    assert state is not None and state.last_error == "" and state.watermark > outage[1]
    pulled.map_all()
    assert pulled.orders().get_order(lost) is not None
    assert set(pulled.stored()) == pulled.expected_in_hub()


def test_pulling_the_same_orders_again_changes_no_order(pulled, capsys):
    # Given every order pulled and mapped once
    pulled.poll()
    assert pulled_ids(pulled.map_all()) == pulled.expected()
    versions = pulled.stored()
    assert set(versions) == pulled.expected_in_hub()
    # When the poll state is lost (every watermark back to the start) and the schedule fires again
    table = pulled.hub.res.tables["poll-state"]
    for channel, shop in pulled.held:
        pulled.hub.client("dynamodb").delete_item(TableName=table, Key={"shop_key": {"S": shop_key(channel, shop)}})
    again = pulled.poll()
    # Then every order is sent again...
    assert {r["outcome"] for r in again["shops"]} == {"caught_up"}
    capsys.readouterr()
    resent = pulled.map_all()
    assert pulled_ids(resent) == pulled.expected()
    # ...and, each being an event the hub already has (same order, same modified time), changes nothing
    assert mapped_outcomes(capsys.readouterr().out) == {"duplicate": len(resent)}
    assert pulled.stored() == versions


def test_a_pulled_channel_without_configuration_in_the_stage_is_reported_not_a_crash(monkeypatch):
    # Given a stage that configures Taobao and Pinduoduo but not JD
    with hub_on_platforms(monkeypatch, without=("jd",)) as pulled:
        assert "jd" not in pulled.fakes
        # When the schedule fires
        reply = pulled.poll()
        # Then JD is reported as not configured, and the configured channels are pulled as usual
        (missing,) = reply["unconfigured"]
        assert missing["channel"] == "jd" and "/channels/jd not found" in missing["error"]
        assert {r["channel"] for r in reply["shops"]} == {"taobao", "pdd"}
        assert {r["outcome"] for r in reply["shops"]} == {"caught_up"}
        assert pulled_ids(pulled.map_all()) == pulled.expected()


def test_a_channel_the_run_had_no_time_for_still_reports_how_far_behind_it_is(pulled, capsys, monkeypatch):
    # Given Taobao's shops far behind after an outage
    pulled.fakes["taobao"].fail_window(datetime.now(UTC) - timedelta(hours=12), datetime.now(UTC))
    first = by_shop(pulled.poll())
    behind = [first[("taobao", shop["shop_id"])]["lag_s"] for shop in shops_of("taobao")]
    assert min(behind) > 3600
    pulled.fakes["taobao"].heal()
    # When an invocation starts with no time left for any shop (what earlier shops overrunning leaves the last)
    monkeypatch.setattr(Context, "get_remaining_time_in_millis", staticmethod(lambda: 20_000))
    capsys.readouterr()
    reply = pulled.poll()
    # Then every shop is reported skipped, and the lag the alarm watches is still the stored watermark's
    assert {r["outcome"] for r in reply["shops"]} == {"skipped"}
    metrics = metrics_in(capsys.readouterr().out)
    assert metrics[("PullShopFailures", "taobao")] == 2
    assert metrics[("PullLagSeconds", "taobao")] >= max(behind)
    assert 0 < metrics[("PullLagSeconds", "jd")] < 10 * 60  # read a moment ago, skipped now: not behind
