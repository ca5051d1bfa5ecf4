"""Child-process side of bench.imports: time one handler import, then (optionally) its first call.

Run by bench.imports as `python -c` code in a fresh interpreter; the import is timed before this
module is imported, so nothing here is in the import figure. The first invocation runs with AWS
answered by in-process fakes and the configuration reads patched to constants: it is the hub's
own first-request cost (lazy channel module, first validation, first log line, first EMF flush),
not boto3's import or client creation, which real AWS calls would add.

The inputs are built with the standard library only, so setting them up loads nothing the first
call would otherwise have to load.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sys
import time
import tomllib
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ACCOUNT, REGION = "123456789012", "us-east-1"


def _config() -> dict[str, Any]:
    with (REPO / "config" / "local.toml").open("rb") as fh:
        return tomllib.load(fh)


def _created_event(order_no: str = "BENCH0000001") -> dict[str, Any]:
    return {"event_id": f"evt_{order_no}_01", "event_type": "order.created",
            "event_time": "2026-11-21T09:00:00+08:00", "shop_id": "mini-01",
            "order": {"order_no": order_no, "currency": "CNY", "total_amount": 25800,
                      "lines": [{"sku": "TEA-LJ-250", "name": "tea", "quantity": 2, "unit_price": 12900}],
                      "receiver": {"name": "x", "phone": "13900000000", "province": "浙江省", "city": "杭州市",
                                   "address": "x"}}}


def _context(name: str) -> Any:
    class Ctx:
        function_name = f"orderhub-local-{name}"
        function_version = "$LATEST"
        memory_limit_in_mb = 512
        invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:orderhub-local-{name}"
        aws_request_id = str(uuid.uuid4())

        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 30_000

    return Ctx()


class _Sqs:
    def send_message(self, **kwargs: Any) -> dict:
        return {"MessageId": "m"}

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict:  # noqa: N803
        return {"Attributes": dict.fromkeys(AttributeNames, "0")}

    def change_message_visibility(self, **kwargs: Any) -> dict:
        return {}


_KEY_NAMES = ("order_id", "event_key", "slot", "timer_key", "alert_key")


class _Dynamo:
    """get/put/query on a dict; the first call never fails a condition, so no botocore is needed."""

    def __init__(self) -> None:
        self.items: dict[tuple, dict] = {}

    def get_item(self, TableName: str, Key: dict, **kw: Any) -> dict:  # noqa: N803
        item = self.items.get((TableName, json.dumps(Key, sort_keys=True)))
        return {"Item": item} if item else {}

    def put_item(self, TableName: str, Item: dict, **kw: Any) -> dict:  # noqa: N803
        key = {k: Item[k] for k in _KEY_NAMES if k in Item}
        self.items[(TableName, json.dumps(key, sort_keys=True))] = Item
        return {}

    def update_item(self, TableName: str, Key: dict, **kw: Any) -> dict:  # noqa: N803
        self.items.setdefault((TableName, json.dumps(Key, sort_keys=True)), dict(Key))
        return {}

    def query(self, **kw: Any) -> dict:
        return {"Items": []}

    def scan(self, **kw: Any) -> dict:
        return {"Items": []}


class _Events:
    def put_events(self, Entries: list) -> dict:  # noqa: N803
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e"} for _ in Entries]}


def _patch_aws(dynamo: _Dynamo | None = None) -> dict[str, Any]:
    import orderhub.aws

    fakes = {"sqs": _Sqs(), "dynamodb": dynamo or _Dynamo(), "events": _Events()}
    orderhub.aws.client = lambda service: fakes[service]  # type: ignore[assignment]
    return fakes


def _patch_settings(cfg: dict[str, Any]) -> None:
    from orderhub import settings

    settings.channel_settings = lambda ch: {"timestamp_tolerance_s": 300, "allowed_ips": []}
    settings._secret = lambda name: json.dumps({"secrets": list(cfg["channels"][name.rsplit("/", 1)[-1]]["secrets"])})
    subs = {s["name"]: s for s in cfg["subscribers"]}
    settings.subscriber_settings = lambda s: {"endpoint": subs[s]["endpoint"], "timeout_s": 5,
                                              "backoff_seconds": subs[s]["backoff_seconds"], "max_attempts": 5}
    settings.subscriber_secrets = lambda s: {"signing_secret": subs[s]["signing_secret"]}
    settings.ops_token = lambda: cfg["ops_token"]


def _stored_configuration() -> None:
    """The hub configuration where the functions read it (SSM and Secrets Manager), answered from
    config/local.toml's parameter documents: settings' own lookups, no AWS call."""
    from infra.config import load_config
    from orderhub import settings

    params, secrets = load_config().parameter_documents()
    settings._parameter = lambda name: json.loads(params[name])
    settings._secret = lambda name: secrets[name]


def _sqs_record(body: str, queue: str) -> dict[str, Any]:
    return {"messageId": str(uuid.uuid4()), "receiptHandle": "rh", "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000",
                           "SenderId": "A", "ApproximateFirstReceiveTimestamp": "1700000000001"},
            "messageAttributes": {}, "md5OfBody": "0" * 32, "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:orderhub-local-{queue}", "awsRegion": REGION}


def _ingest_event(cfg: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(_created_event(), ensure_ascii=False, separators=(",", ":")).encode()
    ts = str(int(time.time()))
    sig = "sha256=" + hmac.new(cfg["channels"]["mall"]["secrets"][0].encode(), ts.encode() + b"." + body,
                               hashlib.sha256).hexdigest()
    return {"version": "2.0", "routeKey": "POST /webhooks/{channel}", "rawPath": "/webhooks/mall",
            "headers": {"content-type": "application/json", "x-mall-timestamp": ts, "x-mall-signature": sig},
            "requestContext": {"requestId": "r1", "http": {"method": "POST", "path": "/webhooks/mall",
                                                          "sourceIp": "203.0.113.10"}},
            "pathParameters": {"channel": "mall"}, "body": body.decode(), "isBase64Encoded": False}


def _order_item() -> dict[str, Any]:
    """A stored order in the hub's own item format (its codec is imported by the handlers that read it)."""
    from orderhub.models.order import Order
    from orderhub.store.order_item import order_to_item

    return order_to_item(Order(order_id="oh_x", channel="mall", channel_order_id="B1", shop_id="mini-01",
                               currency="CNY", total_amount=25800, version=1,
                               updated_in_hub_at="2026-11-21T01:00:00.000+00:00"))


def setup(name: str) -> tuple[Any, dict[str, Any]]:
    """(event, expectations) for the first call of `name`, with AWS and config patched."""
    cfg = _config()
    _patch_settings(cfg)
    if name == "webhook_ingest":
        _patch_aws()
        return _ingest_event(cfg), {"statusCode": 200}
    if name == "status_mapper":
        _patch_aws()
        body = json.dumps(_created_event(), separators=(",", ":")).encode()
        message = {"channel": "mall", "received_at": "2026-11-21T01:00:00.000+00:00", "request_id": "r1",
                   "source_ip": "203.0.113.10", "headers": {}, "body_b64": base64.b64encode(body).decode()}
        return {"Records": [_sqs_record(json.dumps(message), "intake")]}, {"batchItemFailures": []}
    if name == "event_publisher":
        _patch_aws()
        image = _order_item()
        record = {"eventID": "1", "eventName": "INSERT", "eventSource": "aws:dynamodb", "awsRegion": REGION,
                  "eventSourceARN": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/orderhub-local-orders/stream/x",
                  "dynamodb": {"Keys": {"order_id": {"S": "oh_x"}}, "NewImage": image,
                               "StreamViewType": "NEW_AND_OLD_IMAGES", "SequenceNumber": "1", "SizeBytes": 100}}
        return {"Records": [record]}, {"batchItemFailures": []}
    if name == "dispatcher":
        _patch_aws()
        handler = sys.modules["functions.dispatcher.handler"]

        from orderhub.outbound_http import HttpReply

        class _Transport:
            def post(self, url: str, body: bytes, headers: dict, timeouts: Any) -> HttpReply:
                return HttpReply(200)

        handler._transport = _Transport()
        bus_event = {"version": "0", "id": "1", "detail-type": "OrderCreated", "source": "orderhub.orders",
                     "account": ACCOUNT, "time": "2026-11-21T01:00:00Z", "region": REGION, "resources": [],
                     "detail": {"event_id": "abc", "order_id": "oh_x", "status": "PAID"}}
        return {"Records": [_sqs_record(json.dumps(bus_event), "sub-wms")]}, {"batchItemFailures": []}
    if name == "orders_api":
        dynamo = _Dynamo()
        dynamo.put_item("orderhub-local-orders", _order_item())
        _patch_aws(dynamo)
        event = {"version": "2.0", "routeKey": "GET /orders/{order_id}", "rawPath": "/orders/oh_x",
                 "rawQueryString": "", "headers": {"authorization": f"Bearer {cfg['ops_token']}"},
                 "requestContext": {"requestId": "r1", "stage": "$default",
                                    "http": {"method": "GET", "path": "/orders/oh_x", "sourceIp": "10.0.0.1"}},
                 "pathParameters": {"order_id": "oh_x"}, "isBase64Encoded": False}
        return event, {"statusCode": 200}
    if name == "hub_health":
        fakes = _patch_aws()
        sys.modules["functions.hub_health.handler"].client = lambda service: fakes[service]
        return {"schedule": "hub-health", "scheduled_time": "2026-11-21T01:00:00Z"}, {}
    if name in ("notifier", "sla_watchdog"):  # their scheduled runs: the alert digest, the SLA watch
        _patch_aws()
        _stored_configuration()
        return {"schedule": name, "scheduled_time": "2026-11-21T01:00:00Z"}, {}
    if name == "exceptions_api":
        _patch_aws()
        _stored_configuration()
        event = {"version": "2.0", "routeKey": "GET /exceptions", "rawPath": "/exceptions", "rawQueryString": "",
                 "headers": {"authorization": f"Bearer {cfg['ops_token']}"},
                 "requestContext": {"requestId": "r1", "stage": "$default",
                                    "http": {"method": "GET", "path": "/exceptions", "sourceIp": "10.0.0.1"}},
                 "isBase64Encoded": False}
        return event, {"statusCode": 200}
    raise KeyError(name)


def first_call(name: str) -> float:
    """Seconds for the first invocation of functions.<name>.handler (already imported)."""
    handler = sys.modules[f"functions.{name}.handler"]
    event, expect = setup(name)
    context = _context(name)
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(1)
    sys.stdout.flush()
    os.dup2(devnull, 1)
    try:
        t0 = time.perf_counter()
        reply = handler.lambda_handler(event, context)
        elapsed = time.perf_counter() - t0
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
    for key, value in expect.items():
        if reply.get(key) != value:
            raise RuntimeError(f"{name} first call replied {reply!r}")
    return elapsed
