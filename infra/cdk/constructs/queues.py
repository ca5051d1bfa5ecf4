"""Queues: every topology queue with its dead-letter queue, KMS-encrypted and TLS-only."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.cdk.constructs import acknowledge
from infra.cdk.naming import Settings
from infra.topology import Queue, Topology


class Queues(Construct):
    """`by_name` holds every queue under its topology name, DLQs as `<name>-dlq`."""

    def __init__(self, scope: Construct, id: str, *, topology: Topology, settings: Settings, key: kms.IKey) -> None:
        super().__init__(scope, id)
        self._settings = settings
        self._key = key
        self.by_name: dict[str, sqs.Queue] = {}
        # Names of the queues that only ever hold failures: their depth is what alarms.
        self.dead_letter_names: set[str] = set()
        self.retention: dict[str, Duration] = {}
        for spec in topology.queues:
            if spec.is_dead_letter_only:
                queue = self._queue(spec.name, spec, retention_days=spec.retention_days)
                acknowledge(
                    queue,
                    "AwsSolutions-SQS3",
                    "A failure destination itself (stream on-failure records): nothing consumes it "
                    "automatically, operators inspect and redrive it, so it needs no DLQ of its own.",
                )
                self.dead_letter_names.add(spec.name)
                continue
            dlq = self._queue(spec.dlq_name, spec, retention_days=spec.dlq_retention_days)
            self.dead_letter_names.add(spec.dlq_name)
            self._queue(
                spec.name,
                spec,
                retention_days=spec.retention_days,
                dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=spec.max_receive_count),
            )

    def _queue(
        self,
        name: str,
        spec: Queue,
        *,
        retention_days: int,
        dead_letter_queue: sqs.DeadLetterQueue | None = None,
    ) -> sqs.Queue:
        queue = sqs.Queue(
            self,
            name,
            queue_name=self._settings.name(name),
            visibility_timeout=Duration.seconds(spec.visibility_timeout_s),
            retention_period=Duration.days(retention_days),
            dead_letter_queue=dead_letter_queue,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self._key,
            enforce_ssl=True,
        )
        self.by_name[name] = queue
        self.retention[name] = Duration.days(retention_days)
        return queue
