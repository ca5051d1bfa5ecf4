"""Exceptions and SLAs on moto, through the real handlers: webhooks -> order -> domain events -> SLA timers ->
scheduled watchdog runs raise, alert and escalate; operators acknowledge and resolve through the API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from infra.cli.main import main as cli
from infra.demo.traffic import encode, mall_headers, mall_secret

# Ten minutes before the test starts, set per test (the hub's handlers read the real clock): a value fixed
# when the module was collected would fall further behind with every minute the earlier tests take.
START = (datetime.now(UTC) - timedelta(minutes=10)).replace(second=0, microsecond=0)


@pytest.fixture(autouse=True)
def start_ten_minutes_ago(monkeypatch):
    start = (datetime.now(UTC) - timedelta(minutes=10)).replace(second=0, microsecond=0)
    monkeypatch.setitem(globals(), "START", start)


def mall(no: str, n: int, event_type: str, minutes: int, **order) -> dict:
    return {"event_id": f"evt_{no}_{n:02d}", "event_type": event_type, "shop_id": "mini-01",
            "event_time": (START + timedelta(minutes=minutes)).isoformat(), "order": {"order_no": no, **order}}


def paid_order(no: str, sku: str = "TEA-LJ-250") -> list[dict]:
    return [mall(no, 1, "order.created", 0, currency="CNY", total_amount=12900,
                 lines=[{"sku": sku, "quantity": 1, "unit_price": 12900}]),
            mall(no, 2, "order.paid", 1, payment={"transaction_id": f"42{no}", "amount": 12900})]


def through_the_pipeline(hub, events: list[dict]) -> int:
    """Post the webhooks (a paid order's payment confirmed by WeChat Pay's callback, as the merchant's shop is
    paid), map them, publish the order changes, and arm timers from the sla-events queue."""
    from infra.standins.wechatpay import from_config
    from orderhub.clock import SystemClock

    wechatpay = from_config(hub.config, "http://unused", SystemClock())
    for event in events:
        body = encode(event)
        assert hub.invoke("webhook_ingest", hub.webhook_event(body, mall_headers(mall_secret(hub.config), body))
                          )["statusCode"] == 200
        if event["event_type"] == "order.paid":
            order = event["order"]
            notification = wechatpay.payment_notification(order["order_no"], order["payment"]["amount"],
                                                          at=datetime.fromisoformat(event["event_time"]))
            headers, body = wechatpay.request(notification)
            assert hub.invoke("webhook_ingest", hub.webhook_event(body, headers, channel="wechatpay"))["statusCode"] \
                in (200, 204)
    assert hub.invoke("status_mapper", hub.sqs_event("intake", hub.receive("intake")))["batchItemFailures"] == []
    assert hub.invoke("event_publisher", hub.stream_event()) == {"batchItemFailures": []}
    messages = []
    while batch := hub.receive("sla-events"):
        messages += batch
    assert hub.invoke("sla_watchdog", hub.sqs_event("sla-events", messages)) == {"batchItemFailures": []}
    return len(messages)


def watch(hub, minutes: float) -> dict:
    at = START + timedelta(minutes=minutes)
    return hub.invoke("sla_watchdog", {"schedule": "sla-watch", "scheduled_time": at.strftime("%Y-%m-%dT%H:%M:%SZ")})


def api(hub, method: str, path: str, body: dict | str | None = None, query: dict | None = None,
        token: str | None = "ops") -> tuple[int, dict]:
    headers = {"authorization": f"Bearer {hub.config.ops_token if token == 'ops' else token}"} if token else {}
    event = {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "", "headers": headers,
             "queryStringParameters": query, "isBase64Encoded": False,
             "body": body if isinstance(body, str) or body is None else json.dumps(body),
             "requestContext": {"requestId": "r", "stage": "$default",
                                "http": {"method": method, "path": path, "sourceIp": "127.0.0.1"}}}
    reply = hub.invoke("exceptions_api", event)
    return reply["statusCode"], json.loads(reply["body"])


def alerts(hub) -> list[dict]:
    out = []
    while batch := hub.receive("alerts"):
        out += [json.loads(m["Body"]) for m in batch]
        hub.client("sqs").delete_message_batch(QueueUrl=hub.queue_url("alerts"), Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])
    return out


def configure_catalogue(hub, skus: list[str]) -> None:
    """The operator sets the catalogue in Parameter Store: no deploy."""
    document = {**hub.config.exceptions.model_dump(mode="json"), "known_skus": skus}
    hub.client("ssm").put_parameter(Name=f"{hub.config.config_prefix}/exceptions/settings", Type="String",
                                    Overwrite=True, Value=json.dumps(document))


def test_an_order_paid_and_not_shipped_raises_a_logistics_exception_for_the_warehouse_then_escalates_once(hub):
    # Given an order paid at minute 1 and never shipped, its domain events through the pipeline
    assert through_the_pipeline(hub, paid_order("EXC001")) >= 3
    timers = hub.client("dynamodb").scan(TableName=hub.res.tables["sla-timers"])["Items"]
    # (the shop's "paid" arms the payment-confirmation timer too; WeChat Pay's callback confirmed the payment,
    # so when it fires it raises nothing)
    assert sorted(t["rule"]["S"] for t in timers if "rule" in t) == ["not_shipped", "payment_unconfirmed"]
    assert [t["slot"]["S"] for t in timers if "rule" not in t] == ["watermark"]  # set by the first arming
    # When the watchdog runs before the 2 hours are up, nothing is raised
    assert watch(hub, 100)["raised"] == 0
    assert api(hub, "GET", "/exceptions") == (200, {"exceptions": [], "count": 0, "truncated": False,
                                                    "state": "unresolved", "order": "nearest"})
    # Then the first run past paid + 2 h raises it, with owner and deadline, and tells the warehouse
    assert watch(hub, 125)["raised"] == 1
    status, listing = api(hub, "GET", "/exceptions")
    (exc,) = listing["exceptions"]
    assert status == 200 and (exc["type"], exc["rule"], exc["state"]) == ("logistics", "not_shipped", "open")
    assert (exc["owner"], exc["supervisor"], exc["channel_order_id"]) == ("warehouse", "supervisors", "EXC001")
    raised_at = datetime.fromisoformat(exc["raised_at"])
    assert raised_at == START + timedelta(minutes=125)
    assert datetime.fromisoformat(exc["sla_deadline"]) == raised_at + timedelta(minutes=3 * 24 * 60)
    (told,) = alerts(hub)
    assert (told["route"], told["key"], told["count"]) == ("warehouse", "exception-raised:not_shipped:warehouse", 1)
    assert exc["exception_id"] in told["text"]
    # And running again changes nothing
    assert watch(hub, 125)["raised"] == 0 and watch(hub, 130)["alerts"] == 0 and alerts(hub) == []
    # When a run is past the SLA deadline, it escalates once and tells the supervisors
    past = 125 + 3 * 24 * 60
    assert watch(hub, past)["escalated"] == 1
    assert watch(hub, past + 5)["escalated"] == 0
    (escalation,) = alerts(hub)
    assert (escalation["route"], escalation["severity"]) == ("supervisors", "critical")
    status, one = api(hub, "GET", f"/exceptions/{exc['exception_id']}")
    assert status == 200 and one["escalated_at"] == one["supervisor_alerted_at"]
    # The API counts down on the real clock: the deadline (3 days after minute 125) is still ahead of it.
    assert one["overdue"] is False and 0 < one["sla_remaining_s"] <= 3 * 24 * 3600 + 125 * 60


def test_the_catalogue_is_configuration_an_unknown_sku_is_a_product_exception_for_ops(hub):
    configure_catalogue(hub, ["TEA-BLC-100"])
    through_the_pipeline(hub, paid_order("EXC002", sku="TEA-XX-999"))
    assert watch(hub, 15)["raised"] == 1  # due when the order was written (START + 10 min, the hub's clock)
    status, listing = api(hub, "GET", "/exceptions", query={"type": "product"})
    (exc,) = listing["exceptions"]
    assert (exc["owner"], exc["detail"]) == ("ops", {"unknown_skus": "TEA-XX-999"})
    # When the SKU is added to the catalogue, the next run resolves it and says why
    configure_catalogue(hub, ["TEA-BLC-100", "TEA-XX-999"])
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()  # the function's 60 s configuration cache, as if a minute passed
    assert watch(hub, 20)["resolved"] == 1
    status, one = api(hub, "GET", f"/exceptions/{exc['exception_id']}")
    assert (one["state"], one["resolved_by"], one["resolution_note"]) == (
        "resolved", "sla_watchdog", "cleared: every SKU is in the catalogue")


@pytest.fixture
def raised(hub) -> str:
    through_the_pipeline(hub, paid_order("EXC003"))
    watch(hub, 125)
    (exc,) = api(hub, "GET", "/exceptions")[1]["exceptions"]
    return exc["exception_id"]


def test_operators_acknowledge_then_resolve_with_a_note_and_the_api_says_clearly_what_is_wrong(hub, raised):
    base = f"/exceptions/{raised}"
    assert api(hub, "GET", base, token=None)[0] == 401
    assert api(hub, "POST", f"{base}/acknowledge", {"by": "li.wei"}, token="not-the-token-at-all")[0] == 401
    assert api(hub, "GET", "/exceptions/oh_nosuch~not_shipped.20261118T020500000Z")[0] == 404
    assert api(hub, "POST", "/exceptions/garbage/acknowledge", {"by": "li.wei"})[0] == 404
    assert api(hub, "POST", f"{base}/acknowledge", "{not json")[0] == 400
    assert api(hub, "POST", f"{base}/acknowledge", {"who": "li.wei"})[0] == 400
    assert api(hub, "GET", "/exceptions", query={"state": "closed"})[0] == 400
    # Acknowledge once
    status, acked = api(hub, "POST", f"{base}/acknowledge", {"by": "li.wei"})
    assert status == 200 and (acked["state"], acked["acknowledged_by"]) == ("acknowledged", "li.wei")
    status, again = api(hub, "POST", f"{base}/acknowledge", {"by": "zhang.min"})
    assert status == 409 and again["exception"]["acknowledged_by"] == "li.wei"
    # Resolving needs a note; then it is resolved once
    assert api(hub, "POST", f"{base}/resolve", {"by": "li.wei"})[0] == 400
    note = "parcel was on the packing table; outbound scanned by hand"
    status, done = api(hub, "POST", f"{base}/resolve", {"by": "li.wei", "note": note})
    assert status == 200 and (done["state"], done["resolution_note"]) == ("resolved", note)
    status, twice = api(hub, "POST", f"{base}/resolve", {"by": "zhang.min", "note": "me too"})
    assert status == 409 and twice["exception"]["resolved_by"] == "li.wei"
    assert api(hub, "GET", "/exceptions")[1]["count"] == 0
    assert [e["exception_id"] for e in api(hub, "GET", "/exceptions", query={"state": "resolved"})[1]["exceptions"]] \
        == [raised]
    # And the watchdog leaves a resolved exception alone: the same occurrence is not raised again
    assert watch(hub, 130)["raised"] == 0 and watch(hub, 130)["resolved"] == 0


def test_the_cli_lists_exceptions_and_reports_them_by_type_and_month(hub, raised, capsys, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert cli(["exceptions", "list"]) == 0
    listed = capsys.readouterr().out
    assert "not_shipped" in listed and "mall/EXC003" in listed and raised in listed
    assert cli(["exceptions", "report"]) == 0
    report = capsys.readouterr().out.splitlines()
    assert report[0].split()[:3] == ["month", "type", "raised"]
    month = (START + timedelta(minutes=125)).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Shanghai"))
    assert report[1].split()[:6] == [month.strftime("%Y-%m"), "logistics", "1", "0", "0", "1"]
    assert cli(["exceptions", "report", "--type", "payment"]) == 0
    assert capsys.readouterr().out.strip() == "no exceptions recorded"
