"""The hub's wiring, declared once as plain data.

Both realisations read this and nothing else about wiring: the CDK stack
(`infra/cdk`) turns it into AWS resources, the local runtime (`infra/local`)
into moto resources plus the trigger loops moto does not run. An
infrastructure test checks the synthesised template against it.

No CDK import here: the local runtime must not need Node.
"""

from __future__ import annotations

from infra.declarations import (
    DEFAULT_BUSINESS_TZ,
    Access,
    AccessKind,
    Bucket,
    BucketNotification,
    Bus,
    Function,
    Index,
    Queue,
    Ref,
    Route,
    Rule,
    Schedule,
    SqsTrigger,
    StreamTrigger,
    Subscriber,
    Table,
    Topic,
    Topology,
    physical_name,
    subscriber_queue_name,
)

__all__ = [
    "DEFAULT_BUSINESS_TZ",
    "Access",
    "AccessKind",
    "Bucket",
    "BucketNotification",
    "Bus",
    "Function",
    "Index",
    "Queue",
    "Ref",
    "Route",
    "Rule",
    "Schedule",
    "SqsTrigger",
    "StreamTrigger",
    "Subscriber",
    "Table",
    "Topic",
    "Topology",
    "physical_name",
    "subscriber_queue_name",
]

# ---------------------------------------------------------------------------
# The orderhub topology
# ---------------------------------------------------------------------------

ORDERS_TABLE = "orders"
ORDER_EVENTS_TABLE = "order-events"
POLL_STATE_TABLE = "poll-state"
CHANNEL_HEALTH_TABLE = "channel-health"
INTAKE_QUEUE = "intake"
IMPORTS_QUEUE = "imports"
IMPORTS_PREFIX = "imports/"
PULL_CHANNELS = ("taobao", "jd", "pdd")
# Channels that push to the hub: each has its own route (`POST /webhooks/<channel>`), so each gets
# its own throttle and any other name is API Gateway's 404 without invoking a function.
WEBHOOK_CHANNELS = ("mall", "douyin", "youzan", "shopify", "woocommerce", "kuaidi100", "wms", "wechatpay", "alipay")
WEBHOOK_PATH = "/webhooks/"
PUBLISHER_FAILURES_QUEUE = "publisher-failures"
# Domain events the bus refused, published again by event_publisher (SQS retries, then its DLQ).
UNPUBLISHED_QUEUE = "unpublished"
BUS = "orderhub"
DROPS_BUCKET = "drops"
ALARM_TOPIC = "alarms"
# Alerts: every function that alerts sends to this queue; the notifier throttles and delivers them.
ALERTS_QUEUE = "alerts"
ALERTS_TABLE = "alerts"
# Exceptions and SLAs (EXC-1..3): domain events arm timers, the watchdog fires them.
SLA_EVENTS_QUEUE = "sla-events"
EXCEPTIONS_TABLE = "exceptions"
SLA_TIMERS_TABLE = "sla-timers"
# The payment voucher ledger (PAY-2): one record per (movement, state, reported time), written once by the
# mapper and never changed; listed by business day through a sharded index (orderhub/store/ledger.py).
PAYMENTS_TABLE = "payments"
# Channels whose money only a payment provider's notification (or finance) confirms: the orders channel of
# each configured payment provider (HubConfig.provider_confirmed); the status mapper reads it from its
# environment (orderhub.payments.ledger.provider_confirmed_channels).
DEFAULT_PROVIDER_CONFIRMED = "mall"
PAYMENT_PROVIDERS = ("wechatpay", "alipay")
PAYMENTS_BY_DAY_INDEX = "by-day"
LEDGER_API_TIMEOUT_S = 29  # the HTTP API waits 30 s for a function: a day's journal is read within it

# Domain events the hub publishes (events/schemas/ holds one JSON Schema each).
EVENT_SOURCE = "orderhub.orders"

DISPATCHER_TIMEOUT_S = 30
NOTIFIER_TIMEOUT_S = 30
WATCHDOG_TIMEOUT_S = 120
IMPORTER_TIMEOUT_S = 120
POLLER_TIMEOUT_S = 240


def alarm_state_change_pattern(alarm_name_prefix: str) -> dict:
    """EventBridge pattern (default bus) for this stage's alarms going off or clearing: the CDK stack
    sends them to the alerts queue, and the notifier tells the robots (orderhub/alerts/alarms.py)."""
    return {"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
            "detail": {"alarmName": [{"prefix": alarm_name_prefix}], "state": {"value": ["ALARM", "OK"]}}}


def _function_timeout_to_visibility(timeout_s: int) -> int:
    # AWS guidance: visibility timeout at least 6x the consuming function's timeout.
    return 6 * timeout_s


def build_topology(subscribers: tuple[Subscriber, ...] = (), business_tz: str = DEFAULT_BUSINESS_TZ,
                   provider_confirmed: str = DEFAULT_PROVIDER_CONFIRMED) -> Topology:
    """The whole hub. Subscribers come from configuration, and which shops' money only the payment
    providers confirm (`HubConfig.provider_confirmed`); everything else is fixed."""
    status_mapper_timeout = 30
    common_env: dict[str, Ref | str] = {
        "ORDERHUB_STAGE": Ref("stage"),
        "ORDERHUB_BUSINESS_TZ": Ref("business_tz"),
        "POWERTOOLS_SERVICE_NAME": "orderhub",
        "POWERTOOLS_METRICS_NAMESPACE": "OrderHub",
    }

    tables = (
        # One item per order; its stream is the outbox for domain events.
        Table(ORDERS_TABLE, partition_key="order_id", stream="NEW_AND_OLD_IMAGES"),
        # The append-only system event log: one item per accepted channel event (raw kept for replay).
        # Also holds one `waybill#<tracking no>` item per waybill seen, so carrier callbacks find
        # their order with a GetItem (no index copying every write).
        # No index: a GSI would copy every log write and bill it again (see docs/decisions.md).
        Table(ORDER_EVENTS_TABLE, partition_key="order_id", sort_key="event_key", ttl_attribute="expires_at"),
        # Per pulled shop: the watermark of the last window fully fetched (ING-5).
        Table(POLL_STATE_TABLE, partition_key="shop_key"),
        # Schema drift and mapping gaps per channel: one counter item per unknown field / code.
        Table(CHANNEL_HEALTH_TABLE, partition_key="channel", sort_key="entry"),
        # Alert throttling: one item per problem (its current window, the count not yet reported).
        Table(ALERTS_TABLE, partition_key="alert_key", ttl_attribute="expires_at"),
        # Raised exceptions, per order; listed by state, the oldest SLA deadline first.
        Table(EXCEPTIONS_TABLE, partition_key="order_id", sort_key="exception_key",
              indexes=(Index("by-state", partition_key="state", sort_key="sla_deadline"),)),
        # SLA timers by the 5-minute slot they fall due in (plus the watchdog's slot watermark).
        Table(SLA_TIMERS_TABLE, partition_key="slot", sort_key="timer_key", ttl_attribute="expires_at"),
        # The payment voucher ledger: append-only, and no TTL (vouchers are kept as long as the books: 30
        # years under China's accounting-archive rules). Listed by business day over a few shards
        # (`day` = "<date>#<shard>") so a sales day's callbacks do not all write one index partition; the
        # index copies only `r` (the money and whose it was, not the payload), so its write is one unit.
        # No index by order: the order item lists its records, read by id.
        Table(PAYMENTS_TABLE, partition_key="record_id", append_only=True,
              indexes=(Index(PAYMENTS_BY_DAY_INDEX, partition_key="day", sort_key="record_id", projection=("r",)),)),
    )

    queues = [
        Queue(INTAKE_QUEUE, visibility_timeout_s=_function_timeout_to_visibility(status_mapper_timeout)),
        Queue(PUBLISHER_FAILURES_QUEUE, visibility_timeout_s=30, is_dead_letter_only=True, retention_days=14),
        Queue(UNPUBLISHED_QUEUE, visibility_timeout_s=_function_timeout_to_visibility(30)),
        # S3 announces each dropped import file here; a file that keeps failing is parked in the DLQ.
        Queue(IMPORTS_QUEUE, visibility_timeout_s=_function_timeout_to_visibility(IMPORTER_TIMEOUT_S),
              max_receive_count=3),
        Queue(ALERTS_QUEUE, visibility_timeout_s=_function_timeout_to_visibility(NOTIFIER_TIMEOUT_S)),
        Queue(SLA_EVENTS_QUEUE, visibility_timeout_s=_function_timeout_to_visibility(WATCHDOG_TIMEOUT_S)),
    ]
    # The watchdog hears every order change, as a subscriber does (it arms and clears SLA timers).
    rules = [Rule(name="to-sla", bus=BUS, pattern={"source": [EVENT_SOURCE]}, target_queue=SLA_EVENTS_QUEUE)]
    dispatcher_triggers = []
    for sub in subscribers:
        qname = subscriber_queue_name(sub.name)
        queues.append(
            Queue(
                qname,
                visibility_timeout_s=_function_timeout_to_visibility(DISPATCHER_TIMEOUT_S),
                max_receive_count=sub.max_attempts,
            )
        )
        rules.append(Rule(name=f"to-{sub.name}", bus=BUS, pattern=sub.pattern, target_queue=qname))
        dispatcher_triggers.append(SqsTrigger(queue=qname, batch_size=10))

    alerts_env: dict[str, Ref | str] = {"ALERTS_QUEUE_URL": Ref("queue_url", ALERTS_QUEUE)}
    functions = [
        Function(
            "webhook_ingest",
            "Authenticates channel webhooks and durably enqueues them before acknowledging.",
            memory_mb=512,
            timeout_s=10,
            access=(Access("queue:send", INTAKE_QUEUE),),
            environment={**common_env, "INTAKE_QUEUE_URL": Ref("queue_url", INTAKE_QUEUE),
                         "ORDERHUB_CONFIG_PREFIX": Ref("config_prefix"),
                         "ORDERHUB_SECRETS_PREFIX": Ref("secrets_prefix")},
            reads_config=("channels",),
        ),
        Function(
            "status_mapper",
            "Turns intake messages into canonical orders with convergent, idempotent writes.",
            memory_mb=512,
            timeout_s=status_mapper_timeout,
            triggers=(SqsTrigger(INTAKE_QUEUE, batch_size=10, max_batching_window_s=1),),
            access=(
                Access("queue:consume", INTAKE_QUEUE),
                Access("table:read", ORDERS_TABLE),
                Access("table:write", ORDERS_TABLE),
                Access("table:read", ORDER_EVENTS_TABLE),
                Access("table:write", ORDER_EVENTS_TABLE),
                Access("table:write", CHANNEL_HEALTH_TABLE),
                # Books ledger records (a conditional put; the refused put returns the record held) and
                # reads one back if a refusal came without it. Nothing else may write the ledger.
                Access("table:append", PAYMENTS_TABLE),
                Access("table:read", PAYMENTS_TABLE),
            ),
            environment={**common_env, "ORDERS_TABLE": Ref("table", ORDERS_TABLE),
                         "ORDER_EVENTS_TABLE": Ref("table", ORDER_EVENTS_TABLE),
                         "CHANNEL_HEALTH_TABLE": Ref("table", CHANNEL_HEALTH_TABLE),
                         "PAYMENTS_TABLE": Ref("table", PAYMENTS_TABLE),
                         "ORDERHUB_PROVIDER_CONFIRMED": provider_confirmed,
                         "ORDERHUB_CONFIG_PREFIX": Ref("config_prefix"),
                         "ORDERHUB_SECRETS_PREFIX": Ref("secrets_prefix")},
            # Field rules (schema drift) are channel configuration.
            reads_config=("channels",),
        ),
        Function(
            "channel_poller",
            "Every 5 minutes: pulls changed orders of each configured Taobao/JD/PDD shop by modified time.",
            memory_mb=512,
            timeout_s=POLLER_TIMEOUT_S,
            access=(
                Access("queue:send", INTAKE_QUEUE),
                Access("table:read", POLL_STATE_TABLE),
                Access("table:write", POLL_STATE_TABLE),
            ),
            environment={**common_env, "INTAKE_QUEUE_URL": Ref("queue_url", INTAKE_QUEUE),
                         "POLL_STATE_TABLE": Ref("table", POLL_STATE_TABLE),
                         "PULL_CHANNELS": ",".join(PULL_CHANNELS),
                         "ORDERHUB_CONFIG_PREFIX": Ref("config_prefix"),
                         "ORDERHUB_SECRETS_PREFIX": Ref("secrets_prefix")},
            reads_config=("channels",),
        ),
        Function(
            "file_importer",
            "Imports CSV order files dropped in the bucket: all rows valid, or none enqueued and a per-row report.",
            memory_mb=512,
            timeout_s=IMPORTER_TIMEOUT_S,
            triggers=(SqsTrigger(IMPORTS_QUEUE, batch_size=1),),
            access=(
                Access("queue:consume", IMPORTS_QUEUE),
                Access("queue:send", INTAKE_QUEUE),
                Access("bucket:read", DROPS_BUCKET),
                Access("bucket:write", DROPS_BUCKET),
            ),
            environment={**common_env, "INTAKE_QUEUE_URL": Ref("queue_url", INTAKE_QUEUE),
                         "DROPS_BUCKET": Ref("bucket", DROPS_BUCKET)},
        ),
        Function(
            "event_publisher",
            "Publishes every order change from the orders table stream (the outbox) to the event bus.",
            memory_mb=256,
            timeout_s=30,
            triggers=(StreamTrigger(ORDERS_TABLE, on_failure_queue=PUBLISHER_FAILURES_QUEUE),
                      SqsTrigger(UNPUBLISHED_QUEUE, batch_size=10)),
            access=(
                Access("stream:read", ORDERS_TABLE),
                Access("bus:put", BUS),
                Access("queue:send", PUBLISHER_FAILURES_QUEUE),
                Access("queue:send", UNPUBLISHED_QUEUE),
                Access("queue:consume", UNPUBLISHED_QUEUE),
            ),
            environment={**common_env, "EVENT_BUS_NAME": Ref("bus", BUS),
                         "UNPUBLISHED_QUEUE_URL": Ref("queue_url", UNPUBLISHED_QUEUE)},
        ),
        Function(
            "dispatcher",
            "Pushes domain events to subscribers, signed, with backoff; exhausted messages go to the DLQ.",
            memory_mb=256,
            timeout_s=DISPATCHER_TIMEOUT_S,
            triggers=tuple(dispatcher_triggers),
            # A permanent rejection (4xx other than 408/429) is parked in the subscriber's DLQ at once.
            access=tuple(
                access
                for s in subscribers
                for access in (
                    Access("queue:consume", subscriber_queue_name(s.name)),
                    Access("queue:send", f"{subscriber_queue_name(s.name)}-dlq"),
                )
            ) + (Access("queue:send", ALERTS_QUEUE),),
            environment={**common_env, "ORDERHUB_CONFIG_PREFIX": Ref("config_prefix"),
                         "ORDERHUB_SECRETS_PREFIX": Ref("secrets_prefix"),
                         "QUEUE_URLS": Ref("queue_url", "*"), **alerts_env},
            reads_config=("subscribers",),
        ),
        Function(
            "orders_api",
            "Operations API: one order, lookup by channel order id, the order's timeline.",
            memory_mb=512,
            timeout_s=10,
            access=(Access("table:read", ORDERS_TABLE), Access("table:read", ORDER_EVENTS_TABLE)),
            environment={**common_env, "ORDERS_TABLE": Ref("table", ORDERS_TABLE),
                         "ORDER_EVENTS_TABLE": Ref("table", ORDER_EVENTS_TABLE),
                         "ORDERHUB_SECRETS_PREFIX": Ref("secrets_prefix")},
            reads_config=("ops-token",),
        ),
        Function(
            "hub_health",
            "Every 5 minutes: queue backlog, DLQ depth and oldest message age as metrics, one log line, "
            "and an alert for every dead-letter queue that holds messages.",
            memory_mb=256,
            timeout_s=30,
            access=(Access("queue:inspect", "*"), Access("queue:send", ALERTS_QUEUE)),
            environment={**common_env, "QUEUE_URLS": Ref("queue_url", "*"), **alerts_env},
        ),
        Function(
            "notifier",
            "Delivers the hub's alerts to WeCom / DingTalk robots and SNS: one per problem per window, "
            "with the count; every 5 minutes, a digest of what was counted but not yet told.",
            memory_mb=256,
            timeout_s=NOTIFIER_TIMEOUT_S,
            triggers=(SqsTrigger(ALERTS_QUEUE, batch_size=100, max_batching_window_s=2),),
            access=(
                Access("queue:consume", ALERTS_QUEUE),
                Access("table:read", ALERTS_TABLE),
                Access("table:write", ALERTS_TABLE),
                Access("topic:publish", ALARM_TOPIC),
            ),
            environment={**common_env, "ALERTS_TABLE": Ref("table", ALERTS_TABLE),
                         "ALARM_TOPIC_ARN": Ref("topic_arn", ALARM_TOPIC),
                         "ORDERHUB_CONFIG_PREFIX": Ref("config_prefix"),
                         "ORDERHUB_SECRETS_PREFIX": Ref("secrets_prefix")},
            reads_config=("alerts",),
        ),
        Function(
            "sla_watchdog",
            "Arms SLA timers from order changes; every 5 minutes raises typed exceptions for timers that "
            "fell due, resolves those whose cause cleared, and escalates those past their SLA.",
            memory_mb=512,
            timeout_s=WATCHDOG_TIMEOUT_S,
            triggers=(SqsTrigger(SLA_EVENTS_QUEUE, batch_size=100, max_batching_window_s=5),),
            access=(
                Access("queue:consume", SLA_EVENTS_QUEUE),
                Access("table:read", ORDERS_TABLE),
                Access("table:read", EXCEPTIONS_TABLE),
                Access("table:write", EXCEPTIONS_TABLE),
                Access("table:read", SLA_TIMERS_TABLE),
                Access("table:write", SLA_TIMERS_TABLE),
                Access("queue:send", ALERTS_QUEUE),
            ),
            environment={**common_env, "ORDERS_TABLE": Ref("table", ORDERS_TABLE),
                         "EXCEPTIONS_TABLE": Ref("table", EXCEPTIONS_TABLE),
                         "SLA_TIMERS_TABLE": Ref("table", SLA_TIMERS_TABLE),
                         "ORDERHUB_CONFIG_PREFIX": Ref("config_prefix"), **alerts_env},
            reads_config=("exceptions",),
        ),
        Function(
            "exceptions_api",
            "Operations API for exceptions: list by state and type, one exception, acknowledge, resolve.",
            memory_mb=512,
            timeout_s=10,
            access=(Access("table:read", EXCEPTIONS_TABLE), Access("table:write", EXCEPTIONS_TABLE)),
            environment={**common_env, "EXCEPTIONS_TABLE": Ref("table", EXCEPTIONS_TABLE),
                         "ORDERHUB_SECRETS_PREFIX": Ref("secrets_prefix")},
            reads_config=("ops-token",),
        ),
        Function(
            "ledger_api",
            "Finance API for the payment voucher ledger: an order's records, a business day's records and "
            "journal (CSV); bank transfers recorded, confirmed or reversed as hub commands to the intake queue.",
            memory_mb=512,
            timeout_s=LEDGER_API_TIMEOUT_S,
            # It never writes the ledger: the mapper books what its commands say, as for any channel.
            access=(
                Access("table:read", PAYMENTS_TABLE),
                Access("table:read", ORDERS_TABLE),
                Access("queue:send", INTAKE_QUEUE),
            ),
            environment={**common_env, "PAYMENTS_TABLE": Ref("table", PAYMENTS_TABLE),
                         "ORDERS_TABLE": Ref("table", ORDERS_TABLE),
                         "INTAKE_QUEUE_URL": Ref("queue_url", INTAKE_QUEUE),
                         "ORDERHUB_SECRETS_PREFIX": Ref("secrets_prefix")},
            reads_config=("ops-token",),
        ),
    ]

    routes = (
        *(Route("POST", f"{WEBHOOK_PATH}{channel}", "webhook_ingest") for channel in WEBHOOK_CHANNELS),
        Route("GET", "/orders", "orders_api"),
        Route("GET", "/orders/{order_id}", "orders_api"),
        Route("GET", "/orders/{order_id}/timeline", "orders_api"),
        Route("GET", "/exceptions", "exceptions_api"),
        Route("GET", "/exceptions/{exception_id}", "exceptions_api"),
        Route("POST", "/exceptions/{exception_id}/acknowledge", "exceptions_api"),
        Route("POST", "/exceptions/{exception_id}/resolve", "exceptions_api"),
        Route("POST", "/ledger/transfers", "ledger_api"),
        Route("GET", "/ledger/orders/{order_id}", "ledger_api"),
        Route("GET", "/ledger/days/{date}", "ledger_api"),
        Route("GET", "/ledger/days/{date}/journal", "ledger_api"),
    )

    schedules = (
        Schedule("hub-health", "rate(5 minutes)", "hub_health", timezone=business_tz,
                 description="Queue backlog and DLQ depth as metrics."),
        Schedule("channel-poll", "rate(5 minutes)", "channel_poller", timezone=business_tz,
                 description="Incremental pull of Taobao, JD and PDD shops (ING-5)."),
        Schedule("sla-watch", "rate(5 minutes)", "sla_watchdog", timezone=business_tz,
                 description="Exceptions whose timers fell due; resolution of cleared ones, escalation (EXC-1..2)."),
        Schedule("alert-digest", "rate(5 minutes)", "notifier", timezone=business_tz,
                 description="Alerts counted in a closed window and not yet told."),
    )

    buckets = (
        Bucket(DROPS_BUCKET, purpose="File drops: CSV order imports (imports/) and their reports (reports/imports/).",
               expire_after_days=90,
               notifications=(BucketNotification(IMPORTS_PREFIX, IMPORTS_QUEUE, suffix=".csv"),)),
    )

    return Topology(
        app="orderhub",
        tables=tables,
        queues=tuple(queues),
        buckets=buckets,
        buses=(Bus(BUS),),
        topics=(Topic(ALARM_TOPIC, purpose="CloudWatch alarms and the hub's alerts (also sent to the robots)."),),
        rules=tuple(rules),
        functions=tuple(functions),
        routes=routes,
        schedules=schedules,
        subscribers=subscribers,
    )
