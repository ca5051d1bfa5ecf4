"""File import (CLI and S3 drop), replay and the drift/gap counters on moto, through the real handlers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from infra.cli.main import main
from infra.cli.replay import Selection, plan_replay, select_entries, send_plan
from orderhub.clock import utc_iso
from orderhub.imports import ENQUEUED, REJECTED, run_import
from orderhub.intake_batch import IntakeBatchSender
from orderhub.lifecycle.machine import hub_order_id
from orderhub.store.health import ChannelHealth
from orderhub.store.orders import DynamoOrderStore

SAMPLES = Path(__file__).resolve().parents[2] / "events" / "import"
STORE_FILE = "store-sh-01_2026-11-19.csv"
EXCEL_FILE = "mall-offline_2026-11-20_excel.csv"
ERRORS_FILE = "store-sh-01_2026-11-20_with-errors.csv"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def drain(hub, queue: str) -> list[dict]:
    messages: list[dict] = []
    while batch := hub.receive(queue):
        messages += batch
    return messages


def map_all(hub) -> list[dict]:
    messages = drain(hub, "intake")
    for i in range(0, len(messages), 10):
        assert hub.invoke("status_mapper", hub.sqs_event("intake", messages[i:i + 10])) == {"batchItemFailures": []}
    return messages


def import_file(hub, name: str, channel: str, now: datetime = NOW):
    sender = IntakeBatchSender(hub.queue_url("intake"), hub.client("sqs"))
    return run_import((SAMPLES / name).read_bytes(), file_name=name, channel=channel, shop_id="",
                      business_tz=hub.config.business_timezone, now=now, sender=sender)


def store(hub) -> DynamoOrderStore:
    return DynamoOrderStore(hub.client("dynamodb"), hub.res.tables["orders"], hub.res.tables["order-events"])


@pytest.fixture
def cli(hub, monkeypatch):
    """`orderhub ...` in this process: it resolves the hub's physical names from the committed configuration."""
    monkeypatch.setenv("ORDERHUB_CONFIG", str(Path(__file__).resolve().parents[2] / "config" / "local.toml"))
    assert hub.config.stage == "local"
    return main


def test_a_file_with_errors_enqueues_nothing(hub):
    report = import_file(hub, ERRORS_FILE, "store-sh-01")
    assert report.status == REJECTED and len({e.row for e in report.errors}) == 8
    assert drain(hub, "intake") == []


def test_every_row_lands_and_importing_the_file_again_changes_nothing(hub):
    report = import_file(hub, STORE_FILE, "store-sh-01")
    assert (report.status, report.enqueued) == (ENQUEUED, 15)
    assert len(map_all(hub)) == 15
    orders = store(hub)
    order = orders.get_order(hub_order_id("store-sh-01", "SH01-20261118-0001"))
    assert order is not None and (order.status, order.total_amount, len(order.lines)) == ("COMPLETED", 19790, 2)
    records = len(hub.stream_event()["Records"])
    version = order.version
    # Again, a day later: the same event ids, so every event is a duplicate and no order is written.
    assert import_file(hub, STORE_FILE, "store-sh-01", NOW + timedelta(days=1)).status == ENQUEUED
    map_all(hub)
    assert orders.get_order(order.order_id).version == version
    assert len(hub.stream_event()["Records"]) == records


def test_orderhub_import_prints_the_report_and_sends_through_the_stage_queue(hub, cli, capsys):
    assert cli(["import", str(SAMPLES / ERRORS_FILE), "--channel", "store-sh-01"]) == 1
    assert "row 6, channel_order_id" in capsys.readouterr().out
    assert cli(["import", str(SAMPLES / EXCEL_FILE), "--channel", "mall", "--shop", "SH02"]) == 0
    out = capsys.readouterr().out
    assert "5 rows, 5 events enqueued" in out and "备注" in out
    assert len(drain(hub, "intake")) == 5


def drop(hub, key: str, name: str) -> None:
    hub.client("s3").put_object(Bucket=hub.res.buckets["drops"], Key=key, Body=(SAMPLES / name).read_bytes())


def report_at(hub, key: str) -> dict:
    body = hub.client("s3").get_object(Bucket=hub.res.buckets["drops"], Key=key)["Body"].read()
    return json.loads(body)


def test_a_dropped_file_is_imported_and_its_report_written_next_to_it(hub):
    drop(hub, "imports/store-sh-01/2026-11-19 门店.csv", STORE_FILE)
    drop(hub, "imports/store-sh-01/bad.csv", ERRORS_FILE)
    drop(hub, "imports/store-sh-01/notes.txt", STORE_FILE)  # not a .csv: S3 does not announce it
    notifications = drain(hub, "imports")
    # S3 (and moto) first sends an s3:TestEvent when the notification is configured; it is skipped.
    assert any(json.loads(m["Body"]).get("Event") == "s3:TestEvent" for m in notifications)
    assert len(notifications) == 3
    assert hub.invoke("file_importer", hub.sqs_event("imports", notifications)) == {"batchItemFailures": []}

    good = report_at(hub, "reports/imports/store-sh-01/2026-11-19 门店.json")
    assert (good["status"], good["rows"], good["events"], good["enqueued"]) == ("enqueued", 18, 15, 15)
    assert good["source"].endswith("imports/store-sh-01/2026-11-19 门店.csv")
    bad = report_at(hub, "reports/imports/store-sh-01/bad.json")
    assert bad["status"] == "rejected" and bad["enqueued"] == 0
    assert [e["row"] for e in bad["errors"]] == [3, 4, 5, 6, 7, 8, 9, 10, 10]
    # Only the good file's events reached the intake; they map as the CLI's would.
    assert len(map_all(hub)) == 15
    assert store(hub).get_order(hub_order_id("store-sh-01", "SH01-20261119-0003")).status == "CANCELLED"
    # The reports announce nothing (outside imports/, not .csv).
    assert drain(hub, "imports") == []


def test_a_drop_outside_the_key_layout_gets_a_report_saying_so(hub):
    drop(hub, "imports/loose.csv", STORE_FILE)
    notifications = drain(hub, "imports")
    hub.invoke("file_importer", hub.sqs_event("imports", notifications))
    report = report_at(hub, "reports/imports/loose.json")
    assert report["status"] == "rejected" and "imports/<channel>/<file>.csv" in report["errors"][0]["error"]
    assert drain(hub, "intake") == []


def test_replay_by_order_and_by_channel_and_time_refeeds_exactly_the_chosen_entries(hub):
    first, second = NOW, NOW + timedelta(hours=2)
    import_file(hub, STORE_FILE, "store-sh-01", first)
    map_all(hub)
    import_file(hub, EXCEL_FILE, "mall", second)
    map_all(hub)
    client, table = hub.client("dynamodb"), hub.res.tables["order-events"]

    order_id = hub_order_id("store-sh-01", "SH01-20261118-0002")
    by_order = list(select_entries(client, table, Selection(order_id=order_id)))
    assert len(by_order) == 4 and {e.order_id for e in by_order} == {order_id}

    window = Selection(channel="import", since=utc_iso(second - timedelta(minutes=1)),
                       until=utc_iso(second + timedelta(minutes=1)))
    in_window = list(select_entries(client, table, window))
    assert len(in_window) == 5 and {e.order_id for e in in_window} == {
        hub_order_id("mall", "00123456789012345678"), hub_order_id("mall", "00123456789012345679")}
    assert list(select_entries(client, table, Selection(channel="mall"))) == []  # reported by `import`

    plan = plan_replay(in_window, NOW + timedelta(days=1))
    result = send_plan(plan, IntakeBatchSender(hub.queue_url("intake"), hub.client("sqs")))
    assert (result.planned, result.sent) == (5, 5)
    messages = drain(hub, "intake")
    assert sorted(json.loads(m["Body"])["replay_of"] for m in messages) == \
        sorted(f"{e.order_id}#{e.event_key}" for e in in_window)
    records = len(hub.stream_event()["Records"])
    assert hub.invoke("status_mapper", hub.sqs_event("intake", messages)) == {"batchItemFailures": []}
    assert len(hub.stream_event()["Records"]) == records  # idempotent: nothing changed


def test_orderhub_replay_dry_run_lists_and_sends_nothing(hub, cli, capsys):
    import_file(hub, STORE_FILE, "store-sh-01")
    map_all(hub)
    order_id = hub_order_id("store-sh-01", "SH01-20261119-0003")
    assert cli(["replay", "--order", order_id, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count(order_id) == 2 and "dry run: 2 requests would be re-fed" in out
    assert drain(hub, "intake") == []
    assert cli(["replay", "--channel", "import", "--since", "2026-11-21T19:00:00", "--until",
                 "2026-11-21T21:00:00"]) == 0  # business time: 12:00 UTC is 20:00 in Shanghai
    assert "re-fed 15 of 15 requests" in capsys.readouterr().out
    assert len(drain(hub, "intake")) == 15


def test_drift_and_gaps_are_counted_by_the_mapper_and_reported(hub, cli, capsys):
    import_file(hub, EXCEL_FILE, "mall")
    map_all(hub)
    health = ChannelHealth(hub.client("dynamodb"), hub.res.tables["channel-health"])
    (entry,) = health.entries("import")
    assert (entry.kind, entry.key, entry.count) == ("drift", "rows[].values.备注", 5)
    assert entry.first_seen == utc_iso(NOW) and entry.last_event_id.split(":")[1] in {"2", "3", "4", "5", "6"}
    health.record("douyin", [], ["order_status=999"], "evt-1", utc_iso(NOW))
    health.record("douyin", [], ["order_status=999"], "evt-2", utc_iso(NOW + timedelta(minutes=5)))

    assert cli(["drift", "report"]) == 0
    out = capsys.readouterr().out
    assert "channel import: 1 unknown field path" in out and "rows[].values.备注" in out
    assert cli(["gaps", "report", "--channel", "douyin"]) == 0
    out = capsys.readouterr().out
    assert "order_status=999" in out and "evt-2" in out


def test_the_local_runtime_delivers_a_drop_to_the_importer_and_on_to_the_orders(tmp_path, monkeypatch):
    """The local realisation of the bucket notification: moto's S3 -> SQS, the runtime's pollers."""
    import re

    import boto3

    from infra.config import DEFAULT_CONFIG_PATH, load_config
    from infra.local.clock import ManualClock
    from infra.local.runtime import LocalRuntime

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    path = tmp_path / "hub.toml"
    path.write_text(re.sub(r'(?m)^stage = .*$', 'stage = "itimport"', DEFAULT_CONFIG_PATH.read_text()))
    quiet = {"dispatcher": lambda event, context: {"batchItemFailures": []}}
    with LocalRuntime(load_config(path), port=0, prewarm=False, handler_overrides=quiet, clock=ManualClock(),
                      timers_follow_clock=True) as runtime:
        s3 = boto3.client("s3", endpoint_url=runtime.endpoint_url, region_name=runtime.region)
        bucket = runtime.resources.buckets["drops"]
        s3.put_object(Bucket=bucket, Key="imports/store-sh-01/2026-11-19.csv", Body=(SAMPLES / STORE_FILE).read_bytes())
        # S3 queued its notification before put_object returned: once the runtime is idle, the file
        # was imported and every order it enqueued was applied
        runtime.wait_until_idle()
        report = json.loads(s3.get_object(Bucket=bucket, Key="reports/imports/store-sh-01/2026-11-19.json")
                            ["Body"].read())
        assert (report["status"], report["enqueued"]) == ("enqueued", 15)
        orders = DynamoOrderStore(boto3.client("dynamodb", endpoint_url=runtime.endpoint_url,
                                               region_name=runtime.region),
                                  runtime.resources.tables["orders"], runtime.resources.tables["order-events"])
        order = orders.get_order(hub_order_id("store-sh-01", "SH01-20261118-0001"))
        assert order is not None and order.status == "COMPLETED"
        assert runtime.errors == {}
