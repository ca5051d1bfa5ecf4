"""Schedules: one EventBridge Scheduler schedule per topology schedule, in its time zone."""

from __future__ import annotations

import json
from collections.abc import Mapping

from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.cdk.constructs import acknowledge
from infra.cdk.naming import SCHEDULE_MAX_EVENT_AGE, SCHEDULE_MAX_RETRIES, Settings
from infra.topology import Topology

# The topology names no queue for invocations the scheduler gives up on, so the stack adds one.
DEAD_LETTER_NAME = "schedules-dlq"
DEAD_LETTER_RETENTION = Duration.days(14)


class Schedules(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        topology: Topology,
        settings: Settings,
        functions: Mapping[str, lambda_.IFunction],
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetters",
            queue_name=settings.name(DEAD_LETTER_NAME),
            retention_period=DEAD_LETTER_RETENTION,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
        )
        acknowledge(
            self.dead_letter_queue,
            "AwsSolutions-SQS3",
            "It is the scheduler's dead-letter queue (cdk-nag only recognises queue and function DLQs).",
        )
        self.schedules: dict[str, scheduler.CfnSchedule] = {}
        for spec in topology.schedules:
            target = functions[spec.function]
            role = iam.Role(
                self,
                f"{spec.name}-Role",
                assumed_by=iam.ServicePrincipal(
                    "scheduler.amazonaws.com",
                    conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
                ),
                description=f"{settings.name(spec.name)}: invoke {spec.function}, park failures",
                inline_policies={
                    "invoke": iam.PolicyDocument(
                        statements=[
                            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[target.function_arn]),
                            iam.PolicyStatement(
                                actions=["sqs:SendMessage"], resources=[self.dead_letter_queue.queue_arn]
                            ),
                            iam.PolicyStatement(
                                actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn]
                            ),
                        ]
                    )
                },
            )
            self.schedules[spec.name] = scheduler.CfnSchedule(
                self,
                spec.name,
                name=settings.name(spec.name),
                description=spec.description or None,
                schedule_expression=spec.expression,
                schedule_expression_timezone=spec.timezone,
                # Jobs expect to run at their time (and say so in their input), not within a window.
                flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
                state="ENABLED",
                target=scheduler.CfnSchedule.TargetProperty(
                    arn=target.function_arn,
                    role_arn=role.role_arn,
                    input=json.dumps({"schedule": spec.name, "scheduled_time": "<aws.scheduler.scheduled-time>"}),
                    retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                        maximum_event_age_in_seconds=int(SCHEDULE_MAX_EVENT_AGE.to_seconds()),
                        maximum_retry_attempts=SCHEDULE_MAX_RETRIES,
                    ),
                    dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(
                        arn=self.dead_letter_queue.queue_arn
                    ),
                ),
            )
