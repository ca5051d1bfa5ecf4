"""The kinds of things the wiring is made of: tables, queues, buses, topics, rules, functions, routes,
schedules, buckets, subscribers. Plain frozen dataclasses, no CDK import (the local runtime must
not need Node); `infra/topology.py` declares the hub with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DEFAULT_BUSINESS_TZ = "Asia/Shanghai"

# ---------------------------------------------------------------------------
# Resource declarations
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Index:
    name: str
    partition_key: str
    sort_key: str | None = None
    # The attributes besides the keys the index copies (INCLUDE), or None for all of them (ALL). An index
    # write is billed on what it copies: a narrow projection keeps it at one write unit.
    projection: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Table:
    name: str
    partition_key: str
    sort_key: str | None = None
    # NEW_AND_OLD_IMAGES when the table is an outbox, else None.
    stream: Literal["NEW_AND_OLD_IMAGES", "NEW_IMAGE"] | None = None
    ttl_attribute: str | None = None
    indexes: tuple[Index, ...] = ()
    point_in_time_recovery: bool = True
    # Items are written once and never changed (the payment voucher ledger): functions may only be given
    # `table:append` (PutItem) on it, never `table:write`, and the table's own policy denies every principal
    # the actions that change or delete items.
    append_only: bool = False


@dataclass(frozen=True)
class Queue:
    """A standard SQS queue. Every consumed queue has a DLQ named `<name>-dlq`."""

    name: str
    visibility_timeout_s: int
    max_receive_count: int = 5
    retention_days: int = 4
    dlq_retention_days: int = 14
    # A queue that only ever receives failures (e.g. a stream's on-failure destination).
    is_dead_letter_only: bool = False

    @property
    def dlq_name(self) -> str:
        return f"{self.name}-dlq"


@dataclass(frozen=True)
class BucketNotification:
    """Objects created under `prefix` are announced on an SQS queue (S3 event notification)."""

    prefix: str
    queue: str
    suffix: str = ""


@dataclass(frozen=True)
class Bucket:
    name: str
    purpose: str
    # Objects expire after this many days (None: kept).
    expire_after_days: int | None = None
    notifications: tuple[BucketNotification, ...] = ()


@dataclass(frozen=True)
class Bus:
    name: str


@dataclass(frozen=True)
class Topic:
    """An SNS topic people subscribe to (mail, SMS, chat bridges): alarms and the hub's own alerts."""

    name: str
    purpose: str


@dataclass(frozen=True)
class Rule:
    """An EventBridge rule on `bus` whose matches go to an SQS queue (never a Lambda: see DESIGN §5)."""

    name: str
    bus: str
    pattern: dict
    target_queue: str


@dataclass(frozen=True)
class Route:
    method: Literal["GET", "POST", "PUT", "DELETE"]
    path: str  # API Gateway v2 route syntax, e.g. /orders/{order_id}
    function: str


@dataclass(frozen=True)
class SqsTrigger:
    queue: str
    batch_size: int = 10
    max_batching_window_s: int = 0
    max_concurrency: int | None = None


@dataclass(frozen=True)
class StreamTrigger:
    table: str
    on_failure_queue: str
    batch_size: int = 100
    max_batching_window_s: int = 1
    starting_position: Literal["TRIM_HORIZON", "LATEST"] = "TRIM_HORIZON"
    max_retry_attempts: int = 5
    bisect_batch_on_error: bool = True


@dataclass(frozen=True)
class Schedule:
    """An EventBridge Scheduler schedule. `expression` is rate(...) or cron(...) in `timezone`."""

    name: str
    expression: str
    function: str
    timezone: str = DEFAULT_BUSINESS_TZ
    description: str = ""


# What a function may do to a declared resource; the CDK stack turns each into the
# narrowest IAM statement for it and the infrastructure test checks them.
AccessKind = Literal[
    "table:read",  # GetItem, Query, BatchGetItem
    "table:write",  # PutItem, UpdateItem (conditional), no DeleteItem
    "table:append",  # PutItem only (conditional on the key being new): the one write of an append-only table
    "queue:send",  # SendMessage
    "queue:consume",  # what an event source mapping needs, plus ChangeMessageVisibility
    "queue:inspect",  # GetQueueAttributes
    "bus:put",  # PutEvents
    "topic:publish",  # SNS Publish
    "stream:read",  # what a stream event source mapping needs
    "bucket:read",
    "bucket:write",
]


@dataclass(frozen=True)
class Access:
    kind: AccessKind
    # A declared name, a DLQ name (`<queue>-dlq`), or "*" for every declared resource of that kind.
    resource: str


@dataclass(frozen=True)
class Ref:
    """An environment value resolved by each realisation (physical name, URL, ARN)."""

    kind: Literal["table", "queue_url", "bus", "bucket", "topic_arn", "stage", "config_prefix", "secrets_prefix",
                  "business_tz"]
    name: str = ""


@dataclass(frozen=True)
class Function:
    name: str  # functions/<name>/handler.py, entry point lambda_handler
    description: str
    memory_mb: int = 512
    timeout_s: int = 10
    triggers: tuple[SqsTrigger | StreamTrigger, ...] = ()
    access: tuple[Access, ...] = ()
    environment: dict[str, Ref | str] = field(default_factory=dict)
    # Reads its configuration (channel secrets, subscribers, alert robots, exception rules, tokens)
    # from SSM / Secrets Manager.
    reads_config: tuple[Literal["channels", "subscribers", "alerts", "exceptions", "ops-token"], ...] = ()

    @property
    def module(self) -> str:
        return f"functions.{self.name}.handler"


@dataclass(frozen=True)
class Subscriber:
    """A downstream system that gets domain events pushed to it (WMS, ERP, finance, CRM, robots)."""

    name: str
    # EventBridge pattern on the domain events (source/detail-type/detail filters).
    pattern: dict
    max_attempts: int = 5
    # Upper bound of one delivery attempt; the queue's visibility timeout is derived from it.
    timeout_s: int = 10


@dataclass(frozen=True)
class Topology:
    app: str
    tables: tuple[Table, ...]
    queues: tuple[Queue, ...]
    buckets: tuple[Bucket, ...]
    buses: tuple[Bus, ...]
    topics: tuple[Topic, ...]
    rules: tuple[Rule, ...]
    functions: tuple[Function, ...]
    routes: tuple[Route, ...]
    schedules: tuple[Schedule, ...]
    subscribers: tuple[Subscriber, ...]

    def physical_name(self, stage: str, name: str) -> str:
        return physical_name(self.app, stage, name)

    def function(self, name: str) -> Function:
        return _by_name(self.functions, name)

    def queue(self, name: str) -> Queue:
        return _by_name(self.queues, name)

    def table(self, name: str) -> Table:
        return _by_name(self.tables, name)

    def subscriber_for_queue(self, queue_name: str) -> Subscriber | None:
        for sub in self.subscribers:
            if subscriber_queue_name(sub.name) == queue_name:
                return sub
        return None


def subscriber_queue_name(subscriber: str) -> str:
    return f"sub-{subscriber}"


def physical_name(app: str, stage: str, name: str) -> str:
    """The AWS name of a declared resource (a DLQ: `<queue>-dlq`), the same in AWS and locally."""
    return f"{app}-{stage}-{name}"


def _by_name(items, name):
    for item in items:
        if item.name == name:
            return item
    raise KeyError(name)
