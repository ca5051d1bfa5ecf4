"""Outbound: the event bus and one rule per subscriber, each delivering into its queue."""

from __future__ import annotations

import jsii
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from aws_cdk.interfaces import aws_events as events_refs
from constructs import Construct

from infra.cdk.naming import Settings
from infra.topology import Topology


class Outbound(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        topology: Topology,
        settings: Settings,
        queues: dict[str, sqs.Queue],
    ) -> None:
        super().__init__(scope, id)
        self.buses = {
            b.name: events.EventBus(self, f"Bus-{b.name}", event_bus_name=settings.name(b.name))
            for b in topology.buses
        }
        self.rules: dict[str, events.Rule] = {}
        for spec in topology.rules:
            queue = queues[spec.target_queue]
            # Events EventBridge cannot deliver land with the messages the subscriber gave up on.
            dead_letter = queues.get(topology.queue(spec.target_queue).dlq_name)
            self.rules[spec.name] = events.Rule(
                self,
                f"Rule-{spec.name}",
                rule_name=settings.name(spec.name),
                event_bus=self.buses[spec.bus],
                event_pattern=event_pattern(spec.pattern),
                targets=[QueueTarget(queue, dead_letter)],
            )


def event_pattern(pattern: dict) -> events.EventPattern:
    # The topology speaks EventBridge's JSON ("detail-type"); the L2 takes the same fields snake-cased.
    return events.EventPattern(**{key.replace("-", "_"): value for key, value in pattern.items()})


@jsii.implements(events.IRuleTarget)
class QueueTarget:
    """An SQS target that only its own rule may send to.

    The stock `SqsQueue` target allows every rule of the account when the queue has a KMS
    key (it cannot name the rule in the key policy without a dependency cycle); the queue
    policy can name it, so that is where the source is pinned.
    """

    def __init__(self, queue: sqs.Queue, dead_letter: sqs.Queue | None) -> None:
        self._queue = queue
        self._dead_letter = dead_letter

    def bind(self, rule: events_refs.IRuleRef, id: str | None = None) -> events.RuleTargetConfig:
        for queue in filter(None, (self._queue, self._dead_letter)):
            queue.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal("events.amazonaws.com")],
                    actions=["sqs:SendMessage"],
                    resources=[queue.queue_arn],
                    conditions={"ArnEquals": {"aws:SourceArn": rule.rule_ref.rule_arn}},
                )
            )
        dead_letter_config = (
            events.CfnRule.DeadLetterConfigProperty(arn=self._dead_letter.queue_arn) if self._dead_letter else None
        )
        return events.RuleTargetConfig(arn=self._queue.queue_arn, dead_letter_config=dead_letter_config)
