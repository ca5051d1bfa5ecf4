"""The hub's one stack: the topology turned into constructs, one per concern."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.cdk.assets import AssetPaths
from infra.cdk.constructs.ingest import Ingest
from infra.cdk.constructs.monitoring import PULL_MAX_LAG, Monitoring
from infra.cdk.constructs.outbound import Outbound
from infra.cdk.constructs.processing import Processing
from infra.cdk.constructs.queues import Queues
from infra.cdk.constructs.schedules import DEAD_LETTER_NAME, DEAD_LETTER_RETENTION, Schedules
from infra.cdk.constructs.storage import Storage, add_bucket_notifications
from infra.cdk.constructs.wiring import Wiring
from infra.cdk.naming import Settings
from infra.topology import ALERTS_QUEUE, PULL_CHANNELS, WEBHOOK_CHANNELS, StreamTrigger, Topology


class OrderHubStack(Stack):
    def __init__(
        self,
        scope: Construct,
        *,
        topology: Topology,
        settings: Settings,
        assets: AssetPaths,
    ) -> None:
        # No env: account and region stay tokens, resolved at deploy time (no AWS call at synth).
        super().__init__(
            scope,
            settings.stack_name,
            description=f"{topology.app} ({settings.stage}): serverless order hub, built from infra/topology.py",
        )
        self.topology = topology
        self.settings = settings
        storage = Storage(self, "Storage", topology=topology, settings=settings)
        queues = Queues(self, "Queues", topology=topology, settings=settings, key=storage.key)
        add_bucket_notifications(storage, topology, queues.by_name)
        outbound = Outbound(self, "Outbound", topology=topology, settings=settings, queues=queues.by_name)
        monitoring = Monitoring(self, "Monitoring", topology=topology, settings=settings, key=storage.key)
        wiring = Wiring(
            settings=settings,
            key=storage.key,
            tables=storage.tables,
            queues=queues.by_name,
            buses=outbound.buses,
            buckets=storage.buckets,
            topics=monitoring.topics,
        )
        processing = Processing(self, "Processing", topology=topology, wiring=wiring, assets=assets)
        ingest = Ingest(self, "Ingest", topology=topology, settings=settings, functions=processing.functions)
        schedules = Schedules(
            self, "Schedules", topology=topology, settings=settings, functions=processing.functions, key=storage.key
        )

        for name, queue in queues.by_name.items():
            monitoring.watch_queue(
                name, queue, dead_letter=name in queues.dead_letter_names, retention=queues.retention[name]
            )
        monitoring.watch_queue(
            DEAD_LETTER_NAME, schedules.dead_letter_queue, dead_letter=True, retention=DEAD_LETTER_RETENTION
        )
        for spec in topology.functions:
            monitoring.watch_function(
                spec.name,
                processing.functions[spec.name],
                reads_stream=any(isinstance(t, StreamTrigger) for t in spec.triggers),
            )
        # Failures of the hub's own are 503s the function handles (so Lambda's error metric does not see
        # them): what it counts, and what API Gateway counts per route, are what alarm.
        monitoring.watch_sum(
            "webhook-store-failed",
            "WebhookStoreFailed",
            dimension_sets=[{"channel": channel, "service": _service(topology, "webhook_ingest")}
                            for channel in WEBHOOK_CHANNELS],
            description="Webhooks could not be stored (intake queue, its key or the channel configuration "
            "unreachable): channels got a 503 and retry. See webhook_ingest's 'webhook not stored' log lines.",
        )
        monitoring.watch_routes(ingest.api.api_id, ingest.stage.stage_name, ingest.routes,
                                max_5xx_percent=settings.limits.route_5xx_percent)
        monitoring.tell_robots(queues.by_name[ALERTS_QUEUE], queues.by_name.get(topology.queue(ALERTS_QUEUE).dlq_name))
        # ING-5: every run, the channel poller reports each pulled channel's lag (its slowest shop). Powertools
        # puts its service dimension beside the channel, so the alarm names both (or it watches no metric).
        service = _service(topology, "channel_poller")
        for channel in PULL_CHANNELS:
            monitoring.watch_metric(
                f"pull-lag-{channel}",
                "PullLagSeconds",
                dimensions={"channel": channel, "service": service},
                threshold=PULL_MAX_LAG.to_seconds(),
                description=f"{channel} orders are pulled more than {PULL_MAX_LAG.to_human_string()} late: "
                "see PullShopFailures and the channel_poller's 'shop polled' warnings.",
            )

        CfnOutput(self, "ApiUrl", value=ingest.url, description="Base URL of the HTTP API")
        for name, bus in outbound.buses.items():
            CfnOutput(self, f"EventBus-{name}", value=bus.event_bus_name, description=f"Event bus {name!r}")
        for name, bucket in storage.buckets.items():
            CfnOutput(self, f"Bucket-{name}", value=bucket.bucket_name, description=f"Bucket {name!r}")
        CfnOutput(self, "AlarmTopicArn", value=monitoring.topic.topic_arn, description="Subscribe to get alarms")


def _service(topology: Topology, function: str) -> str:
    """The function's Powertools service: a dimension of every metric it emits."""
    service = topology.function(function).environment["POWERTOOLS_SERVICE_NAME"]
    if not isinstance(service, str):
        raise TypeError(f"{function}: POWERTOOLS_SERVICE_NAME must be a literal (it is a metric dimension)")
    return service
