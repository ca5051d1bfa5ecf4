"""Storage: the stack's KMS key, the DynamoDB tables and the S3 buckets of the topology."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.cdk.naming import (
    ACCESS_LOG_RETENTION_DAYS,
    INCOMPLETE_UPLOAD_DAYS,
    NONCURRENT_VERSION_DAYS,
    Settings,
)
from infra.topology import Bucket, Table, Topology

_STREAM_VIEW = {
    "NEW_AND_OLD_IMAGES": dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
    "NEW_IMAGE": dynamodb.StreamViewType.NEW_IMAGE,
}
# What an append-only table's policy denies every principal, this account's administrators included: the
# item writes that change or delete a record (a batch write can do both, unconditionally), their PartiQL
# forms, and switching on TTL, which would have DynamoDB delete records itself. A PutItem can still replace
# an item; the functions' code only ever puts on condition that the key is new.
APPEND_ONLY_DENIED = (
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PartiQLDelete",
    "dynamodb:UpdateTimeToLive",
)


class Storage(Construct):
    """Everything that keeps data: one customer managed key encrypts all of it."""

    def __init__(self, scope: Construct, id: str, *, topology: Topology, settings: Settings) -> None:
        super().__init__(scope, id)
        self.key = kms.Key(
            self,
            "Key",
            alias=f"alias/{settings.name('data')}",
            description=f"{settings.stack_name}: tables, queues, buckets and the alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self._allow_service_principals()
        self.tables = {t.name: self._table(t, settings) for t in topology.tables}
        self.access_logs = self._access_log_bucket(settings) if topology.buckets else None
        self.buckets = {b.name: self._bucket(b, settings) for b in topology.buckets}

    def _allow_service_principals(self) -> None:
        # EventBridge writes rule matches into the encrypted subscriber queues and CloudWatch
        # publishes alarms to the encrypted topic; SQS and SNS then use the key on behalf of
        # those services, not of a role in this account. AWS documents these statements without
        # Source* conditions (the KMS request may not carry them, and a mismatch drops messages
        # silently), so the queue and topic policies are where sources are narrowed to our rules
        # and alarms.
        for sid, service in (
            ("EventBridgeRulesToQueues", "events.amazonaws.com"),
            ("CloudWatchAlarmsToTopic", "cloudwatch.amazonaws.com"),
        ):
            self.key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=sid,
                    principals=[iam.ServicePrincipal(service)],
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=["*"],  # in a key policy "*" is this key
                )
            )

    def _table(self, spec: Table, settings: Settings) -> dynamodb.Table:
        # Key attributes are strings throughout the hub (ids, channel names, ISO timestamps).
        table = dynamodb.Table(
            self,
            f"Table-{spec.name}",
            table_name=settings.name(spec.name),
            partition_key=dynamodb.Attribute(name=spec.partition_key, type=dynamodb.AttributeType.STRING),
            sort_key=_string_key(spec.sort_key),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=spec.point_in_time_recovery
            ),
            stream=_STREAM_VIEW[spec.stream] if spec.stream else None,
            time_to_live_attribute=spec.ttl_attribute,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
            resource_policy=_append_only_policy() if spec.append_only else None,
        )
        for index in spec.indexes:
            table.add_global_secondary_index(
                index_name=index.name,
                partition_key=dynamodb.Attribute(name=index.partition_key, type=dynamodb.AttributeType.STRING),
                sort_key=_string_key(index.sort_key),
                projection_type=_projection(index.projection),
                non_key_attributes=list(index.projection) if index.projection else None,
            )
        return table

    def _access_log_bucket(self, settings: Settings) -> s3.Bucket:
        # cdk-nag accepts a bucket without access logs when it is the log target of another one.
        return s3.Bucket(
            self,
            "AccessLogs",
            bucket_name=f"{settings.name('access-logs')}-{Aws.ACCOUNT_ID}",
            # S3 server access logging cannot deliver to a KMS-encrypted bucket.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(ACCESS_LOG_RETENTION_DAYS))],
            removal_policy=RemovalPolicy.RETAIN,
        )

    def _bucket(self, spec: Bucket, settings: Settings) -> s3.Bucket:
        expiry = Duration.days(spec.expire_after_days) if spec.expire_after_days else None
        return s3.Bucket(
            self,
            f"Bucket-{spec.name}",
            # Bucket names are global: the account id keeps two accounts' stages apart.
            bucket_name=f"{settings.name(spec.name)}-{Aws.ACCOUNT_ID}",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=f"{spec.name}/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=expiry,
                    noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS),
                    abort_incomplete_multipart_upload_after=Duration.days(INCOMPLETE_UPLOAD_DAYS),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )


def add_bucket_notifications(storage: Storage, topology: Topology, queues: Mapping[str, sqs.Queue]) -> None:
    """S3 event notifications (objects created under a prefix -> an SQS queue), in the bucket itself.

    Native `NotificationConfiguration` rather than `Bucket.add_event_notification`, whose custom
    resource brings a Lambda function with a managed-policy role and `s3:PutBucketNotification`
    on "*". S3 checks at configuration time that it may send to the queue, so the bucket
    depends on the queue policy; the policy names the bucket by its ARN built from the bucket
    name (not a reference to the bucket), which keeps the dependency one-way.
    """
    for spec in topology.buckets:
        if not spec.notifications:
            continue
        bucket = storage.buckets[spec.name]
        cfn_bucket = cast(s3.CfnBucket, bucket.node.default_child)
        bucket_arn = f"arn:{Aws.PARTITION}:s3:::{cfn_bucket.bucket_name}"
        configurations = []
        for n in spec.notifications:
            queue = queues[n.queue]
            rules = [s3.CfnBucket.FilterRuleProperty(name="prefix", value=n.prefix)]
            if n.suffix:
                rules.append(s3.CfnBucket.FilterRuleProperty(name="suffix", value=n.suffix))
            configurations.append(s3.CfnBucket.QueueConfigurationProperty(
                event="s3:ObjectCreated:*", queue=queue.queue_arn,
                filter=s3.CfnBucket.NotificationFilterProperty(s3_key=s3.CfnBucket.S3KeyFilterProperty(rules=rules))))
            added = queue.add_to_resource_policy(iam.PolicyStatement(
                sid=f"FromBucket{spec.name.title().replace('-', '')}",
                principals=[iam.ServicePrincipal("s3.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[queue.queue_arn],
                # S3 ARNs carry no account: the account condition keeps a re-created bucket of the
                # same name elsewhere out.
                conditions={"ArnLike": {"aws:SourceArn": bucket_arn},
                            "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            ))
            if added.policy_dependable is not None:
                cfn_bucket.node.add_dependency(added.policy_dependable)
        cfn_bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            queue_configurations=configurations)
    if any(spec.notifications for spec in topology.buckets):
        # S3 writes the notifications into the encrypted queue (and reads back to validate the
        # destination); like EventBridge above, the queue policy is where the source is narrowed.
        storage.key.add_to_resource_policy(iam.PolicyStatement(
            sid="S3NotificationsToQueues",
            principals=[iam.ServicePrincipal("s3.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey"],
            resources=["*"],  # in a key policy "*" is this key
        ))


def _projection(attributes: tuple[str, ...] | None) -> dynamodb.ProjectionType:
    if attributes is None:
        return dynamodb.ProjectionType.ALL
    return dynamodb.ProjectionType.INCLUDE if attributes else dynamodb.ProjectionType.KEYS_ONLY


def _append_only_policy() -> iam.PolicyDocument:
    return iam.PolicyDocument(statements=[iam.PolicyStatement(
        sid="AppendOnly",
        effect=iam.Effect.DENY,
        principals=[iam.AnyPrincipal()],
        actions=list(APPEND_ONLY_DENIED),
        resources=["*"],  # in a table's policy "*" is this table
    )])


def _string_key(name: str | None) -> dynamodb.Attribute | None:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING) if name else None
