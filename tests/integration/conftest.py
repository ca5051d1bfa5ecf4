"""Integration tier: the real handlers, in this process, against moto (mock_aws).

Resources come from the topology exactly as the local runtime provisions them; each handler
runs with its own resolved environment (patched in for the call), so what passes here is
the code that runs in Lambda, talking to AWS APIs through boto3.
"""

from __future__ import annotations

import base64
import importlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.config import load_config
from infra.local.resources import function_environment, provision
from infra.standins.downstream import by_subscriber, receiver_for
from infra.topology import build_topology

REGION = "ap-southeast-1"
ACCOUNT = "123456789012"


class Context:
    function_name = "test"
    memory_limit_in_mb = 256
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:test"
    aws_request_id = "req-test"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


@dataclass
class Hub:
    config: Any
    topology: Any
    res: Any
    receiver: Any
    inboxes: dict
    monkeypatch: Any

    def client(self, service: str):
        if service == "dynamodbstreams":
            # botocore derives an account-specific endpoint from the stream ARN, which moto's in-process
            # interceptor does not route; the regional endpoint is the same API.
            return boto3.client(service, region_name=REGION,
                                endpoint_url=f"https://streams.dynamodb.{REGION}.amazonaws.com")
        return boto3.client(service, region_name=REGION)

    def invoke(self, function: str, event: dict) -> Any:
        """Call functions.<function>.handler.lambda_handler with that function's environment."""
        env = function_environment(self.topology.function(function), self.config, self.res)
        with self.monkeypatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            module = importlib.import_module(f"functions.{function}.handler")
            return module.lambda_handler(event, Context())

    def queue_url(self, name: str) -> str:
        return self.res.queue_urls[name]

    def receive(self, queue: str, max_messages: int = 10) -> list[dict]:
        reply = self.client("sqs").receive_message(QueueUrl=self.queue_url(queue), MaxNumberOfMessages=max_messages,
                                                   AttributeNames=["All"], MessageAttributeNames=["All"])
        return reply.get("Messages", [])

    def sqs_event(self, queue: str, messages: list[dict]) -> dict:
        arn = self.res.queue_arns[queue]
        return {"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": REGION} for m in messages]}

    def stream_event(self) -> dict:
        """Every record on the orders table stream so far, as Lambda would hand them over."""
        streams = self.client("dynamodbstreams")
        arn = self.res.stream_arns["orders"]
        records = []
        for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            for r in streams.get_records(ShardIterator=iterator)["Records"]:
                r["dynamodb"].pop("ApproximateCreationDateTime", None)
                records.append({**r, "eventSourceARN": arn})
        return {"Records": records}

    def webhook_event(self, body: bytes, headers: dict[str, str], channel: str = "mall",
                      source_ip: str = "198.51.100.10") -> dict:
        return {"version": "2.0", "routeKey": "POST /webhooks/{channel}", "rawPath": f"/webhooks/{channel}",
                "rawQueryString": "", "headers": {k.lower(): v for k, v in headers.items()},
                "pathParameters": {"channel": channel}, "isBase64Encoded": True,
                "body": base64.b64encode(body).decode(),
                "requestContext": {"requestId": str(uuid.uuid4()), "http": {"method": "POST", "sourceIp": source_ip,
                                                                            "path": f"/webhooks/{channel}"},
                                   "timeEpoch": int(time.time() * 1000)}}

    def api_event(self, path: str, query: dict[str, str] | None = None, token: str | None = None) -> dict:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
                "headers": headers, "queryStringParameters": query or None, "isBase64Encoded": False,
                "requestContext": {"requestId": "r", "stage": "$default",
                                   "http": {"method": "GET", "path": path, "sourceIp": "127.0.0.1"}}}


def _reset_lambda_state() -> None:
    """Module-level clients and caches survive between invocations, as in Lambda; not between tests."""
    from aws_lambda_powertools.utilities import parameters

    from orderhub import settings
    from orderhub.aws import reset_clients

    reset_clients()
    parameters.clear_caches()
    settings._built.clear()
    for name in ("webhook_ingest", "event_publisher"):
        module = importlib.import_module(f"functions.{name}.handler")
        for attr in ("_queue", "_publisher"):
            if hasattr(module, attr):
                setattr(module, attr, None)
    for name in ("status_mapper", "orders_api"):
        module = importlib.import_module(f"functions.{name}.handler")
        module._store._client = None
    importlib.import_module("functions.status_mapper.handler")._ledger._client = None
    ledger_api = importlib.import_module("functions.ledger_api.handler")
    for attr in ("_store", "_ledger"):
        if getattr(ledger_api, attr, None) is not None and hasattr(getattr(ledger_api, attr), "_client"):
            getattr(ledger_api, attr)._client = None
    if hasattr(ledger_api, "_queue"):
        ledger_api._queue = None
    notifier = importlib.import_module("functions.notifier.handler")
    notifier._store._client = None
    notifier._transport = type(notifier._transport)()  # no kept connection to another test's robots


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    receiver, config, paths = receiver_for(load_config())
    # A push the receiver answers after the dispatcher stopped waiting is sent again (a duplicate by design):
    # on a busy machine, wait for the in-process receiver as long as the configuration allows.
    config = config.model_copy(update={"subscribers": [
        s.model_copy(update={"timeout_s": 25, "connect_timeout_s": 10}) for s in config.subscribers]})
    topology = build_topology(config.topology_subscribers(), config.business_timezone, config.provider_confirmed())
    with receiver, mock_aws():
        _reset_lambda_state()
        res = provision(topology, config, lambda s: boto3.client(s, region_name=REGION), REGION, ACCOUNT)
        yield Hub(config, topology, res, receiver, by_subscriber(receiver, paths), monkeypatch)
        _reset_lambda_state()

