"""A function's IAM statements, derived from its topology `access` tuple and nothing else.

Each access kind maps to the narrowest actions on the named resources' ARNs. Where AWS gives
no resource-level permission, the statement uses "*" and says why, and that reason becomes
the cdk-nag acknowledgment on the role.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from aws_cdk import Aws, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3

from infra.cdk.constructs.wiring import Wiring
from infra.topology import Access, Function, Topology

_TABLE_READ = ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem")
# Conditional PutItem/UpdateItem only: the hub never deletes an order or an event.
_TABLE_WRITE = ("dynamodb:PutItem", "dynamodb:UpdateItem")
# An append-only table's one write: a PutItem conditional on the key being new. The refused put's
# ReturnValuesOnConditionCheckFailure=ALL_OLD needs no other action (and bills no read).
_TABLE_APPEND = ("dynamodb:PutItem",)
_QUEUE_SEND = ("sqs:SendMessage",)
_QUEUE_CONSUME = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility")
_QUEUE_INSPECT = ("sqs:GetQueueAttributes",)
_STREAM_READ = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator")
# The encrypted resource's data key: reading needs Decrypt, writing also GenerateDataKey.
_KMS_READ = ("kms:Decrypt",)
_KMS_WRITE = ("kms:Decrypt", "kms:GenerateDataKey")

_ARN_PARTS = {"partition": Aws.PARTITION, "region": Aws.REGION, "account": Aws.ACCOUNT_ID}
# How cdk-nag prints the same pseudo parameters in a finding id.
_NAG_PARTS = {"partition": "<AWS::Partition>", "region": "<AWS::Region>", "account": "<AWS::AccountId>"}


@dataclass
class RolePolicy:
    statements: list[iam.PolicyStatement] = field(default_factory=list)
    # cdk-nag finding id (AwsSolutions-IAM5[Resource::...]) -> why the wildcard is needed.
    wildcards: dict[str, str] = field(default_factory=dict)
    kms_actions: set[str] = field(default_factory=set)

    def allow(self, actions: tuple[str, ...], resources: list[str]) -> None:
        self.statements.append(iam.PolicyStatement(actions=list(actions), resources=resources))

    def allow_wildcard(self, actions: tuple[str, ...], template: str, reason: str) -> None:
        """`template` is an ARN with {partition}/{region}/{account} placeholders and a wildcard."""
        self.allow(actions, [template.format(**_ARN_PARTS)])
        finding = f"AwsSolutions-IAM5[Resource::{template.format(**_NAG_PARTS)}]"
        reasons = self.wildcards.get(finding, "")
        if reason not in reasons:
            self.wildcards[finding] = f"{reasons} {reason}".strip()

    def allow_objects(self, actions: tuple[str, ...], bucket: s3.Bucket) -> None:
        """Every object of a declared bucket: object keys are data (file names), not wiring."""
        self.allow(actions, [bucket.arn_for_objects("*")])
        stack = Stack.of(bucket)
        logical_id = stack.resolve(stack.get_logical_id(cast(s3.CfnBucket, bucket.node.default_child)))
        self.wildcards[f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/*]"] = (
            "Objects of a declared bucket, whatever their keys: the keys are file names chosen by "
            "whoever drops the files."
        )


def function_role_policy(
    function: Function,
    topology: Topology,
    wiring: Wiring,
    log_group: logs.ILogGroup,
    *,
    tracing: bool,
) -> RolePolicy:
    policy = RolePolicy()
    policy.allow(("logs:CreateLogStream", "logs:PutLogEvents"), [log_group.log_group_arn])
    for access in function.access:
        _grant(policy, access, topology, wiring)
    for kind in function.reads_config:
        _grant_config(policy, kind, wiring)
    if tracing:
        policy.allow_wildcard(
            ("xray:PutTraceSegments", "xray:PutTelemetryRecords"),
            "*",
            "X-Ray trace submission has no resource-level permissions.",
        )
    if policy.kms_actions:
        policy.allow(tuple(sorted(policy.kms_actions)), [wiring.key.key_arn])
    return policy


def _grant(policy: RolePolicy, access: Access, topology: Topology, wiring: Wiring) -> None:
    resource_kind = access.kind.split(":")[0]
    named = wiring.named("table" if resource_kind == "stream" else resource_kind, access.resource)
    match access.kind:
        case "table:read":
            arns = []
            for name, table in named.items():
                arns.append(table.table_arn)
                arns += [f"{table.table_arn}/index/{index.name}" for index in topology.table(name).indexes]
            policy.allow(_TABLE_READ, arns)
            policy.kms_actions.update(_KMS_READ)
        case "table:write":
            append_only = sorted(name for name in named if topology.table(name).append_only)
            if append_only:
                raise ValueError(f"table:write on append-only tables {append_only}: declare table:append")
            policy.allow(_TABLE_WRITE, [t.table_arn for t in named.values()])
            policy.kms_actions.update(_KMS_WRITE)
        case "table:append":
            policy.allow(_TABLE_APPEND, [t.table_arn for t in named.values()])
            policy.kms_actions.update(_KMS_WRITE)
        case "stream:read":
            policy.allow(_STREAM_READ, [_stream_arn(name, t) for name, t in named.items()])
            policy.allow_wildcard(
                ("dynamodb:ListStreams",),
                "*",
                "dynamodb:ListStreams, which the stream event source mapping calls, "
                "has no resource-level permissions.",
            )
            policy.kms_actions.update(_KMS_READ)
        case "queue:send":
            policy.allow(_QUEUE_SEND, [q.queue_arn for q in named.values()])
            policy.kms_actions.update(_KMS_WRITE)
        case "queue:consume":
            policy.allow(_QUEUE_CONSUME, [q.queue_arn for q in named.values()])
            policy.kms_actions.update(_KMS_READ)
        case "queue:inspect":
            # Queue attributes are metadata: no data key involved.
            policy.allow(_QUEUE_INSPECT, [q.queue_arn for q in named.values()])
        case "bus:put":
            policy.allow(("events:PutEvents",), [b.event_bus_arn for b in named.values()])
        case "topic:publish":
            policy.allow(("sns:Publish",), [t.topic_arn for t in named.values()])
            policy.kms_actions.update(_KMS_WRITE)
        case "bucket:read":
            for bucket in named.values():
                # The buckets are versioned: S3 notifications name the object version to read.
                policy.allow_objects(("s3:GetObject", "s3:GetObjectVersion"), bucket)
            policy.allow(("s3:ListBucket",), [b.bucket_arn for b in named.values()])
            policy.kms_actions.update(_KMS_READ)
        case "bucket:write":
            for bucket in named.values():
                policy.allow_objects(("s3:PutObject",), bucket)
            policy.kms_actions.update(_KMS_WRITE)
        case _:
            raise ValueError(f"{access.kind!r} has no IAM mapping")


def _stream_arn(name: str, table: dynamodb.Table) -> str:
    if table.table_stream_arn is None:
        raise ValueError(f"table {name!r} has no stream to read")
    return table.table_stream_arn


def _grant_config(policy: RolePolicy, kind: str, wiring: Wiring) -> None:
    settings = wiring.settings
    if kind == "ops-token":
        # One secret; Secrets Manager appends "-" and six random characters to its ARN.
        policy.allow(
            ("secretsmanager:GetSecretValue",),
            [f"arn:{Aws.PARTITION}:secretsmanager:{Aws.REGION}:{Aws.ACCOUNT_ID}:secret:"
             f"{settings.secrets_prefix}/ops-token-??????"],
        )
        return
    reason = (
        f"One {kind} entry per configured name under the stage's prefix; the names come from the "
        "operator's configuration, not from the stack."
    )
    policy.allow_wildcard(
        ("ssm:GetParameter",),
        f"arn:{{partition}}:ssm:{{region}}:{{account}}:parameter{settings.config_prefix}/{kind}/*",
        reason,
    )
    policy.allow_wildcard(
        ("secretsmanager:GetSecretValue",),
        f"arn:{{partition}}:secretsmanager:{{region}}:{{account}}:secret:{settings.secrets_prefix}/{kind}/*",
        reason,
    )
