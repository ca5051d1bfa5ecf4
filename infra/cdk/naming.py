"""Physical names and the tunable numbers of the stack, in one place.

Names are deterministic (`orderhub-{stage}-{name}`) because the CLI and the runbook find
queues, tables and functions on AWS by name, not by CloudFormation outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_logs as logs

from infra.cdk.limits import Limits
from infra.topology import physical_name


@dataclass(frozen=True)
class Settings:
    """What the stack needs from the operator's configuration (HubConfig) and the CDK context."""

    app: str
    stage: str
    config_prefix: str
    secrets_prefix: str
    business_tz: str
    tracing: bool
    # Throttles per route and reserved concurrency (cdk.json `orderhub:limits`).
    limits: Limits

    def name(self, name: str) -> str:
        return physical_name(self.app, self.stage, name)

    @property
    def stack_name(self) -> str:
        return f"{self.app}-{self.stage}"


# CDK context key (cdk.json / `-c`) that switches X-Ray tracing and the Powertools tracer.
TRACING_CONTEXT_KEY = "orderhub:tracing"

LOG_RETENTION = logs.RetentionDays.ONE_MONTH

# A work queue whose oldest message is older than this is not being drained.
WORK_QUEUE_MAX_AGE = Duration.minutes(15)
# Warn this long before a dead-letter message would expire unseen (SQS deletes it at retention).
DLQ_EXPIRY_WARNING_DAYS = 3
# The outbox (orders stream) is behind by more than this: domain events are late.
STREAM_MAX_ITERATOR_AGE = Duration.minutes(1)
ALARM_PERIOD = Duration.minutes(5)

# Scheduled jobs are idempotent; a late run is still useful within this window.
SCHEDULE_MAX_EVENT_AGE = Duration.hours(1)
SCHEDULE_MAX_RETRIES = 3

# Old object versions in versioned buckets are kept this long (undo an overwrite or delete).
NONCURRENT_VERSION_DAYS = 30
INCOMPLETE_UPLOAD_DAYS = 7
ACCESS_LOG_RETENTION_DAYS = 365
