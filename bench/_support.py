"""What the benchmarks share: figures and their report, function environments, AWS fakes, traffic.

The fakes (SQS, EventBridge, SSM, Secrets Manager here; DynamoDB in bench.fake_dynamodb) stand in
for boto3 clients in the CPU and cost benchmarks, directly or behind real clients (bench.wire), and
record every call with what it carried, so bench.billing bills what was actually sent and written.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import platform
import random
import statistics
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench import REPO

REGION = "us-east-1"
ACCOUNT = "123456789012"

# ---------------------------------------------------------------------------------------------
# Figures and the report
# ---------------------------------------------------------------------------------------------


@dataclass
class Figure:
    """One benchmark figure beside its same-run anchor, with the goal and whether it was met."""

    bench: str
    name: str
    value: float
    unit: str
    anchor: float | None = None
    anchor_unit: str = ""
    anchor_label: str = ""
    goal: str = ""
    passed: bool | None = None  # None: for information, no goal
    ratio: float | None = None  # value / anchor, when that is meaningful
    note: str = ""

    @property
    def verdict(self) -> str:
        return "info" if self.passed is None else ("PASS" if self.passed else "MISS")


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 100:
        text = f"{int(value):,}"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    if not unit:
        return text
    return f"${text}" if unit == "$" else f"{text} {unit}"


def print_figures(title: str, figures: list[Figure]) -> None:
    rows = [("figure", "value", "anchor (same run)", "ratio", "goal", "verdict")]
    for f in figures:
        rows.append((f.name, fmt(f.value, f.unit),
                     (fmt(f.anchor, f.anchor_unit or f.unit) if f.anchor is not None else "-"),
                     (f"{f.ratio:.2f}x" if f.ratio is not None else "-"), f.goal or "-", f.verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"\n== {title}")
    for i, row in enumerate(rows):
        print("  " + "  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)))
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))
    for f in figures:
        if f.note:
            print(f"  * {f.name}: {f.note}")


def dump_json(path: str | None, bench: str, figures: list[Figure], details: list[str], seconds: float) -> None:
    """Write a benchmark's figures for bench.run_all (no-op without a path)."""
    if not path:
        return
    from dataclasses import asdict

    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"bench": bench, "figures": [asdict(f) for f in figures], "details": details,
                   "seconds": seconds, "argv": sys.argv}, fh, ensure_ascii=False, indent=1)


def machine() -> str:
    return (f"{os.cpu_count()} cores ({platform.machine()}, {platform.processor() or platform.system()}), "
            f"Python {platform.python_version()} ({sys.executable})")


def median(values: list[float]) -> float:
    return statistics.median(values)


# ---------------------------------------------------------------------------------------------
# Configuration and function environments (the same names the CDK stack would resolve)
# ---------------------------------------------------------------------------------------------


def hub_config():
    from infra.config import load_config

    return load_config(REPO / "config" / "local.toml")


def topology(config=None):
    from infra.topology import build_topology

    config = config or hub_config()
    return build_topology(config.topology_subscribers(), config.business_timezone, config.provider_confirmed())


def physical(name: str, stage: str = "local") -> str:
    return f"orderhub-{stage}-{name}"


def queue_url(name: str, stage: str = "local") -> str:
    return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{physical(name, stage)}"


def queue_arn(name: str, stage: str = "local") -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{physical(name, stage)}"


def function_environment(function_name: str, config=None) -> dict[str, str]:
    """The function's environment as the stack resolves it (physical names, URLs)."""
    from infra.topology import Ref

    config = config or hub_config()
    topo = topology(config)
    fn = topo.function(function_name)
    all_queues = {}
    for q in topo.queues:
        all_queues[q.name] = queue_url(q.name, config.stage)
        if not q.is_dead_letter_only:
            all_queues[q.dlq_name] = queue_url(q.dlq_name, config.stage)

    def resolve(value: Any) -> str:
        if not isinstance(value, Ref):
            return str(value)
        return {
            "table": lambda: physical(value.name, config.stage),
            "queue_url": lambda: json.dumps(all_queues) if value.name == "*" else queue_url(value.name, config.stage),
            "bus": lambda: physical(value.name, config.stage),
            "bucket": lambda: physical(value.name, config.stage),
            "topic_arn": lambda: f"arn:aws:sns:{REGION}:{ACCOUNT}:{physical(value.name, config.stage)}",
            "stage": lambda: config.stage,
            "config_prefix": lambda: config.config_prefix,
            "secrets_prefix": lambda: config.secrets_prefix,
            "business_tz": lambda: config.business_timezone,
        }[value.kind]()

    env = {k: resolve(v) for k, v in fn.environment.items()}
    env.update({"AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
                "AWS_LAMBDA_FUNCTION_NAME": physical(function_name, config.stage),
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb)})
    return env


def apply_environment(function_name: str, config=None) -> dict[str, str]:
    env = function_environment(function_name, config)
    os.environ.update(env)
    # Fake credentials: nothing here may reach AWS, and botocore must not go looking for any.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    return env


class FakeLambdaContext:
    def __init__(self, function_name: str = "orderhub-local-fn", memory_mb: int = 512) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


# ---------------------------------------------------------------------------------------------
# Output: Powertools Logger and EMF metrics write to stdout. Keep them on, send them nowhere.
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """fd 1 -> /dev/null for the block (the writes still happen: they are part of the cost)."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


# ---------------------------------------------------------------------------------------------
# AWS fakes
# ---------------------------------------------------------------------------------------------


def _client_error(code: str, message: str, operation: str, item: dict | None = None):
    from botocore.exceptions import ClientError

    response: dict[str, Any] = {"Error": {"Code": code, "Message": message},
                                "ResponseMetadata": {"HTTPStatusCode": 400}}
    if item is not None:
        response["Item"] = item
    return ClientError(response, operation)


@dataclass
class Call:
    service: str
    op: str
    table: str = ""
    item: dict | None = None  # the item written (put), or read (get)
    old: dict | None = None  # the item it replaced / that made the condition fail
    ok: bool = True
    transactional: bool = False
    consistent: bool = False  # a strongly consistent read
    size: int = 0  # bytes of the message body (SQS)
    sizes: tuple[int, ...] = ()  # bytes of each entry (EventBridge PutEvents)


class Recorder:
    """Every call every fake saw, in order."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.enabled = True

    def add(self, call: Call) -> None:
        if self.enabled:
            self.calls.append(call)

    def clear(self) -> None:
        self.calls.clear()


class FakeSQS:
    def __init__(self, recorder: Recorder | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.recorder = recorder
        self.keep = True

    def send_message(self, QueueUrl: str, MessageBody: str, **kwargs: Any) -> dict[str, Any]:  # noqa: N803
        if self.keep:
            self.sent.append({"QueueUrl": QueueUrl, "MessageBody": MessageBody, **kwargs})
        if self.recorder:
            attrs = kwargs.get("MessageAttributes") or {}
            size = len(MessageBody.encode()) + sum(len(k) + len(json.dumps(v)) for k, v in attrs.items())
            self.recorder.add(Call("sqs", "SendMessage", size=size))
        return {"MessageId": "m", "MD5OfMessageBody": "x"}

    def change_message_visibility(self, **kwargs: Any) -> dict[str, Any]:
        return {}

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:  # noqa: N803
        return {"Attributes": dict.fromkeys(AttributeNames, "0")}


class FakeEvents:
    def __init__(self, recorder: Recorder | None = None) -> None:
        self.entries: list[dict[str, Any]] = []
        self.recorder = recorder
        self.keep = True

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        if self.keep:
            self.entries.extend(Entries)
        if self.recorder:
            sizes = tuple(sum(len(str(v).encode()) for v in e.values()) for e in Entries)
            self.recorder.add(Call("events", "PutEvents", sizes=sizes))
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e"} for _ in Entries]}


class FakeSSM:
    def __init__(self, parameters: dict[str, str]) -> None:
        self.parameters = parameters
        self.gets = 0
        self.names: set[str] = set()

    def get_parameter(self, Name: str, **kwargs: Any) -> dict[str, Any]:  # noqa: N803
        self.gets += 1
        self.names.add(Name)
        return {"Parameter": {"Name": Name, "Value": self.parameters[Name], "Type": "String"}}


class FakeSecrets:
    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = secrets
        self.gets = 0
        self.names: set[str] = set()

    def get_secret_value(self, SecretId: str, **kwargs: Any) -> dict[str, Any]:  # noqa: N803
        self.gets += 1
        self.names.add(SecretId)
        return {"Name": SecretId, "SecretString": self.secrets[SecretId]}


def install_config_stubs(config=None) -> tuple[FakeSSM, FakeSecrets]:
    """Powertools' SSM and Secrets Manager providers, on fake clients holding the hub configuration.

    The hub's own code path (settings -> Powertools parameters -> cache) stays as it is; only the
    AWS call behind a cache miss is answered locally.
    """
    from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    config = config or hub_config()
    params, secrets = config.parameter_documents()
    ssm, sm = FakeSSM(params), FakeSecrets(secrets)
    DEFAULT_PROVIDERS["ssm"] = SSMProvider(boto3_client=ssm)
    DEFAULT_PROVIDERS["secrets"] = SecretsProvider(boto3_client=sm)
    return ssm, sm


# ---------------------------------------------------------------------------------------------
# Traffic: a realistic stream of signed mall webhooks, as API Gateway HTTP API v2.0 events
# ---------------------------------------------------------------------------------------------


@dataclass
class Sent:
    event: dict[str, Any]  # the mall webhook
    body: bytes
    duplicate: bool = False  # a resend of an event sent before
    index: int = 0  # position of its first send
    extra: dict[str, Any] = field(default_factory=dict)


def realistic_stream(count: int, duplicate_rate: float = 0.05, seed: int = 11) -> list[Sent]:
    """`count` sends: synthetic mall orders interleaved by event time (as shops would send them),
    with ~`duplicate_rate` resends of earlier events a few positions later (a shop retrying)."""
    from infra.demo.traffic import encode, synthetic_mall_events

    rng = random.Random(seed)
    unique = round(count / (1 + duplicate_rate))
    events = sorted(synthetic_mall_events(unique), key=lambda e: datetime.fromisoformat(e["event_time"]))
    stream: list[Sent] = [Sent(e, encode(e), index=i) for i, e in enumerate(events)]
    for _ in range(count - len(stream)):
        original = rng.randrange(len(events))
        at = min(len(stream), original + 1 + rng.randrange(20))
        stream.insert(at, Sent(events[original], encode(events[original]), duplicate=True, index=original))
    return stream


def apigw_v2_event(body: bytes, headers: dict[str, str], channel: str = "mall",
                   source_ip: str = "203.0.113.10") -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event for POST /webhooks/{channel}."""
    now = datetime.now(UTC)
    request_id = uuid.uuid4().hex[:16]
    return {
        "version": "2.0",
        "routeKey": "POST /webhooks/{channel}",
        "rawPath": f"/webhooks/{channel}",
        "rawQueryString": "",
        "headers": {**{k.lower(): v for k, v in headers.items()}, "content-length": str(len(body)),
                    "host": "abc123.execute-api.us-east-1.amazonaws.com", "user-agent": "mall-shop/1.0",
                    "x-forwarded-for": source_ip, "x-forwarded-port": "443", "x-forwarded-proto": "https"},
        "requestContext": {
            "accountId": ACCOUNT, "apiId": "abc123", "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": "POST", "path": f"/webhooks/{channel}", "protocol": "HTTP/1.1",
                     "sourceIp": source_ip, "userAgent": "mall-shop/1.0"},
            "requestId": request_id, "routeKey": "POST /webhooks/{channel}", "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"), "timeEpoch": int(now.timestamp() * 1000),
        },
        "pathParameters": {"channel": channel},
        "body": body.decode(),
        "isBase64Encoded": False,
    }


def sqs_event(bodies: list[str], queue: str = "intake", attributes: list[dict] | None = None) -> dict[str, Any]:
    """An SQS event source mapping batch for `queue`."""
    records = []
    for i, body in enumerate(bodies):
        records.append({
            "messageId": str(uuid.uuid4()),
            "receiptHandle": base64.b64encode(os.urandom(24)).decode(),
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000",
                           "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1700000000001"},
            "messageAttributes": (attributes[i] if attributes else {}),
            "md5OfBody": "0" * 32,
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn(queue),
            "awsRegion": REGION,
        })
    return {"Records": records}


def message_attributes_for_lambda(sqs_attrs: dict[str, Any]) -> dict[str, Any]:
    """SendMessage MessageAttributes -> the shape an SQS event record carries."""
    return {k: {"stringValue": v.get("StringValue"), "binaryValue": None, "stringListValues": [],
                "binaryListValues": [], "dataType": v["DataType"]} for k, v in sqs_attrs.items()}
