"""Creates the topology's AWS resources in moto and resolves each function's environment.

Physical names follow the CDK stack's scheme, `{app}-{stage}-{name}` (a DLQ is
`{app}-{stage}-{name}-dlq`), so logs, the CLI and the runbook read the same locally and
in AWS. Every step is idempotent: provisioning twice, or onto a moto that already holds
the resources (a second runtime in the same process), changes nothing.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from infra.config import REPO_ROOT, HubConfig
from infra.topology import Bucket, Function, Ref, Table, Topology

log = logging.getLogger("orderhub.local.resources")

ClientFactory = Callable[[str], Any]
# Inherited by workers from the host: enough to run Python, reach moto, and tune logging.
_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "VIRTUAL_ENV", "SYSTEMROOT")
_PASSTHROUGH_PREFIXES = ("AWS_", "POWERTOOLS_", "COVERAGE_")


@dataclass
class Provisioned:
    """Physical identities of what was created, keyed by the topology's logical names."""

    region: str
    account_id: str
    tables: dict[str, str] = field(default_factory=dict)
    stream_arns: dict[str, str] = field(default_factory=dict)
    queue_urls: dict[str, str] = field(default_factory=dict)  # includes "<name>-dlq" entries
    queue_arns: dict[str, str] = field(default_factory=dict)
    buses: dict[str, str] = field(default_factory=dict)
    buckets: dict[str, str] = field(default_factory=dict)
    topics: dict[str, str] = field(default_factory=dict)  # ARNs

    def queue_name_for_url(self, url: str) -> str:
        return next(name for name, u in self.queue_urls.items() if u == url)


def physical_name(topology: Topology, config: HubConfig, name: str) -> str:
    return topology.physical_name(config.stage, name)


def provision(topology: Topology, config: HubConfig, client: ClientFactory, region: str,
              account_id: str) -> Provisioned:
    out = Provisioned(region=region, account_id=account_id)
    ddb, sqs, events, s3 = client("dynamodb"), client("sqs"), client("events"), client("s3")
    for table in topology.tables:
        _table(ddb, table, physical_name(topology, config, table.name), out)
    for queue in topology.queues:
        if not queue.is_dead_letter_only:
            dlq_url = _queue(sqs, physical_name(topology, config, queue.dlq_name), {
                "MessageRetentionPeriod": str(queue.dlq_retention_days * 86400)})
            out.queue_urls[queue.dlq_name] = dlq_url
            out.queue_arns[queue.dlq_name] = _queue_arn(sqs, dlq_url)
        attributes = {"VisibilityTimeout": str(queue.visibility_timeout_s),
                      "MessageRetentionPeriod": str(queue.retention_days * 86400)}
        if not queue.is_dead_letter_only:
            attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": out.queue_arns[queue.dlq_name],
                                                      "maxReceiveCount": queue.max_receive_count})
        url = _queue(sqs, physical_name(topology, config, queue.name), attributes)
        out.queue_urls[queue.name] = url
        out.queue_arns[queue.name] = _queue_arn(sqs, url)
    for bus in topology.buses:
        name = physical_name(topology, config, bus.name)
        _ignore(partial(events.create_event_bus, Name=name), "ResourceAlreadyExistsException")
        out.buses[bus.name] = name
    _rules(topology, config, events, sqs, out)
    for topic in topology.topics:
        created = client("sns").create_topic(Name=physical_name(topology, config, topic.name))
        out.topics[topic.name] = created["TopicArn"]
    for bucket in topology.buckets:
        name = physical_name(topology, config, bucket.name)
        _bucket(s3, name, region, bucket.expire_after_days)
        out.buckets[bucket.name] = name
        _notifications(s3, sqs, bucket, name, out)
    _parameters(config, client("ssm"), client("secretsmanager"))
    return out


def _table(ddb: Any, table: Table, name: str, out: Provisioned) -> None:
    # The topology does not declare key types; every key of ours is a string (ids, ISO times).
    keys = [table.partition_key, table.sort_key] + [k for i in table.indexes for k in (i.partition_key, i.sort_key)]
    key_names = {k for k in keys if k}
    request: dict[str, Any] = {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": _key_schema(table.partition_key, table.sort_key),
        "AttributeDefinitions": [{"AttributeName": k, "AttributeType": "S"} for k in sorted(key_names)],
    }
    if table.indexes:
        request["GlobalSecondaryIndexes"] = [
            {"IndexName": i.name, "KeySchema": _key_schema(i.partition_key, i.sort_key),
             "Projection": _projection(i.projection)} for i in table.indexes]
    if table.stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": table.stream}
    _ignore(lambda: ddb.create_table(**request), "ResourceInUseException")
    described = ddb.describe_table(TableName=name)["Table"]
    out.tables[table.name] = name
    if table.stream:
        out.stream_arns[table.name] = described["LatestStreamArn"]
    if table.ttl_attribute:
        status = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if status.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
                "Enabled": True, "AttributeName": table.ttl_attribute})
    if table.point_in_time_recovery:
        ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True})


def _projection(attributes: tuple[str, ...] | None) -> dict[str, Any]:
    """An index copies what it declares, as in AWS: a read that needs more than that fails here too."""
    if attributes is None:
        return {"ProjectionType": "ALL"}
    if not attributes:
        return {"ProjectionType": "KEYS_ONLY"}
    return {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(attributes)}


def _key_schema(partition_key: str, sort_key: str | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": partition_key, "KeyType": "HASH"}]
    if sort_key:
        schema.append({"AttributeName": sort_key, "KeyType": "RANGE"})
    return schema


def _queue(sqs: Any, name: str, attributes: dict[str, str]) -> str:
    # Create bare, then set: CreateQueue on an existing queue with other attributes is an error in AWS.
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return url


def _queue_arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _rules(topology: Topology, config: HubConfig, events: Any, sqs: Any, out: Provisioned) -> None:
    statements: dict[str, list[dict]] = {}
    for rule in topology.rules:
        bus = out.buses[rule.bus]
        name = physical_name(topology, config, rule.name)
        rule_arn = events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(rule.pattern),
                                   State="ENABLED")["RuleArn"]
        queue_arn = out.queue_arns[rule.target_queue]
        events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": rule.target_queue, "Arn": queue_arn}])
        # moto does not check it, AWS does: only this rule may send to the queue.
        statements.setdefault(rule.target_queue, []).append({
            "Sid": f"from-{rule.name}", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage", "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}})
    for queue, stmts in statements.items():
        policy = json.dumps({"Version": "2012-10-17", "Statement": stmts})
        sqs.set_queue_attributes(QueueUrl=out.queue_urls[queue], Attributes={"Policy": policy})


def _bucket(s3: Any, name: str, region: str, expire_after_days: int | None) -> None:
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    _ignore(lambda: s3.create_bucket(**kwargs), "BucketAlreadyOwnedByYou", "BucketAlreadyExists")
    if expire_after_days:
        # Stored for fidelity only: moto never expires objects.
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [{
            "ID": "expire", "Status": "Enabled", "Filter": {"Prefix": ""},
            "Expiration": {"Days": expire_after_days}}]})


def _notifications(s3: Any, sqs: Any, bucket: Bucket, name: str, out: Provisioned) -> None:
    """S3 -> SQS event notifications of the bucket (moto delivers them, as S3 does, with an s3:TestEvent first)."""
    if not bucket.notifications:
        return
    bucket_arn = f"arn:aws:s3:::{name}"
    configurations = []
    for n in bucket.notifications:
        rules = [{"Name": "prefix", "Value": n.prefix}] + ([{"Name": "suffix", "Value": n.suffix}] if n.suffix else [])
        configurations.append({"Id": f"{n.queue}-{n.prefix.strip('/')}", "QueueArn": out.queue_arns[n.queue],
                               "Events": ["s3:ObjectCreated:*"], "Filter": {"Key": {"FilterRules": rules}}})
        # moto does not check it, AWS does: only this bucket (of this account) may send to the queue.
        url = out.queue_urls[n.queue]
        current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {})
        policy = json.loads(current.get("Policy") or '{"Version": "2012-10-17", "Statement": []}')
        sid = f"from-bucket-{bucket.name}"
        policy["Statement"] = [st for st in policy["Statement"] if st.get("Sid") != sid] + [{
            "Sid": sid, "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage", "Resource": out.queue_arns[n.queue],
            "Condition": {"ArnLike": {"aws:SourceArn": bucket_arn},
                          "StringEquals": {"aws:SourceAccount": out.account_id}}}]
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={
        "QueueConfigurations": configurations})


def _parameters(config: HubConfig, ssm: Any, secrets: Any) -> None:
    params, secret_values = config.parameter_documents()
    for name, value in params.items():
        ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
    for name, value in secret_values.items():
        try:
            secrets.create_secret(Name=name, SecretString=value)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceExistsException":
                raise
            secrets.put_secret_value(SecretId=name, SecretString=value)


def _ignore(call: Callable[[], Any], *codes: str) -> None:
    try:
        call()
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in codes:
            raise


def function_environment(fn: Function, config: HubConfig, res: Provisioned) -> dict[str, str]:
    """The function's declared environment with every Ref resolved to its local value."""
    return {key: _resolve(value, config, res, fn.name) for key, value in fn.environment.items()}


def _resolve(value: Ref | str, config: HubConfig, res: Provisioned, fn: str) -> str:
    if isinstance(value, str):
        return value
    try:
        match value.kind:
            case "table":
                return res.tables[value.name]
            case "queue_url":
                if value.name == "*":
                    return json.dumps(dict(sorted(res.queue_urls.items())))
                return res.queue_urls[value.name]
            case "bus":
                return res.buses[value.name]
            case "bucket":
                return res.buckets[value.name]
            case "topic_arn":
                return res.topics[value.name]
            case "stage":
                return config.stage
            case "config_prefix":
                return config.config_prefix
            case "secrets_prefix":
                return config.secrets_prefix
            case "business_tz":
                return config.business_timezone
    except KeyError:
        raise KeyError(f"function {fn}: Ref({value.kind!r}, {value.name!r}) names nothing the topology declares") \
            from None
    raise ValueError(f"function {fn}: unknown Ref kind {value.kind!r}")


def worker_environment(fn: Function, fn_env: dict[str, str], physical: str, region: str) -> dict[str, str]:
    """What Lambda puts in a function's environment, plus the host's Python and AWS settings."""
    env = {k: v for k, v in os.environ.items()
           if k in _PASSTHROUGH or (k.startswith(_PASSTHROUGH_PREFIXES) and not k.startswith("AWS_LAMBDA_"))}
    env.pop("AWS_PROFILE", None)  # Lambda credentials come from the environment, never a profile
    lambda_env = {
        "AWS_LAMBDA_FUNCTION_NAME": physical,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{physical}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "LAMBDA_TASK_ROOT": str(REPO_ROOT),
        "TZ": ":UTC",
        # The emulator flag SAM CLI sets: Powertools Tracer then stays off (no X-Ray daemon here).
        "AWS_SAM_LOCAL": "true",
        # The code and the layer (shared/), as /var/task and /opt/python are on Lambda.
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "shared")]),
        "PYTHONUNBUFFERED": "1",
    }
    clash = set(lambda_env) & set(fn_env)
    if clash:
        raise ValueError(f"function {fn.name} declares reserved environment variables: {sorted(clash)}")
    return {**env, **lambda_env, **fn_env}
