"""The built resources by topology name, and how a topology `Ref` becomes a value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs

from infra.cdk.naming import Settings
from infra.topology import Ref


@dataclass(frozen=True)
class Wiring:
    settings: Settings
    key: kms.Key
    tables: dict[str, dynamodb.Table]
    queues: dict[str, sqs.Queue]  # every queue, DLQs included as `<name>-dlq`
    buses: dict[str, events.EventBus]
    buckets: dict[str, s3.Bucket]
    topics: dict[str, sns.Topic]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        """The resources of one kind an access or a Ref names; "*" is every declared one."""
        pools: dict[str, dict[str, Any]] = {
            "table": self.tables, "queue": self.queues, "bus": self.buses, "bucket": self.buckets,
            "topic": self.topics,
        }
        pool = pools[kind]
        return dict(sorted(pool.items())) if name == "*" else {name: pool[name]}

    def env_value(self, value: Ref | str) -> str:
        if isinstance(value, str):
            return value
        settings = self.settings
        match value.kind:
            case "table":
                return self.tables[value.name].table_name
            case "queue_url" if value.name == "*":
                urls = {name: queue.queue_url for name, queue in self.named("queue", "*").items()}
                return Stack.of(self.key).to_json_string(urls)
            case "queue_url":
                return self.queues[value.name].queue_url
            case "bus":
                return self.buses[value.name].event_bus_name
            case "bucket":
                return self.buckets[value.name].bucket_name
            case "topic_arn":
                return self.topics[value.name].topic_arn
            case "stage":
                return settings.stage
            case "config_prefix":
                return settings.config_prefix
            case "secrets_prefix":
                return settings.secrets_prefix
            case "business_tz":
                return settings.business_tz
        raise ValueError(f"unknown Ref kind {value.kind!r}")
