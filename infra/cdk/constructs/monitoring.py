"""Monitoring: one encrypted SNS topic, and the alarms that say something is stuck or lost.

Every alarm publishes to the topic, and its going off or clearing also reaches the robots: an EventBridge
rule on the default bus puts this stage's alarm state changes on the alerts queue, which the notifier
reads (orderhub/alerts/alarms.py; it leaves the topic out, CloudWatch published there already).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.cdk.constructs.outbound import QueueTarget, event_pattern
from infra.cdk.naming import (
    ALARM_PERIOD,
    DLQ_EXPIRY_WARNING_DAYS,
    STREAM_MAX_ITERATOR_AGE,
    WORK_QUEUE_MAX_AGE,
    Settings,
)
from infra.topology import ALARM_TOPIC, Route, Topology, alarm_state_change_pattern

# The namespace of the functions' own metrics (POWERTOOLS_METRICS_NAMESPACE in infra/topology.py).
METRICS_NAMESPACE = "OrderHub"
API_NAMESPACE = "AWS/ApiGateway"
# CloudWatch metric math takes at most 10 metrics per alarm.
MATH_MAX_METRICS = 10
# A pulled channel whose slowest shop's watermark is further behind the clock than this is not being
# caught up (ING-5): the platform keeps failing, or the runs have no time left for its shops.
PULL_MAX_LAG = Duration.minutes(30)


class Monitoring(Construct):
    """The topology's SNS topics (the alarm topic among them) and the alarms that publish to it.

    Functions publish to a topic through their declared access (the notifier's alerts); CloudWatch
    publishes alarms to the alarm topic.
    """

    def __init__(self, scope: Construct, id: str, *, topology: Topology, settings: Settings, key: kms.IKey) -> None:
        super().__init__(scope, id)
        self._settings = settings
        self.topics = {
            spec.name: sns.Topic(
                self,
                "Alarms" if spec.name == ALARM_TOPIC else f"Topic-{spec.name}",
                topic_name=settings.name(spec.name),
                display_name=f"{settings.stack_name} {spec.name}",
                master_key=key,
                enforce_ssl=True,
            )
            for spec in topology.topics
        }
        self.topic = self.topics[ALARM_TOPIC]
        # The topic policy replaces SNS's default one, so CloudWatch is named explicitly,
        # for this stage's alarms only.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarms",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:"
                        f"{settings.name('*')}"
                    },
                },
            )
        )
        self._action = actions.SnsAction(self.topic)
        self.alarms: dict[str, cloudwatch.Alarm] = {}

    def watch_queue(self, name: str, queue: sqs.Queue, *, dead_letter: bool, retention: Duration) -> None:
        """Work queues alarm when they stop draining; dead-letter queues when anything lands in
        them, and again before SQS would delete what nobody looked at."""
        if dead_letter:
            self._alarm(
                f"{name}-depth",
                queue.metric_approximate_number_of_messages_visible(statistic="Maximum", period=ALARM_PERIOD),
                threshold=0,
                description=f"Messages in dead-letter queue {queue.queue_name}: inspect and redrive.",
            )
            max_age = Duration.days(retention.to_days() - DLQ_EXPIRY_WARNING_DAYS)
        else:
            max_age = WORK_QUEUE_MAX_AGE
        self._alarm(
            f"{name}-oldest-age",
            queue.metric_approximate_age_of_oldest_message(statistic="Maximum", period=ALARM_PERIOD),
            threshold=max_age.to_seconds(),
            description=f"Oldest message in {queue.queue_name} is older than {max_age.to_human_string()}.",
        )

    def watch_function(self, name: str, function: lambda_.IFunction, *, reads_stream: bool) -> None:
        self._alarm(
            f"{name}-errors",
            function.metric_errors(statistic="Sum", period=ALARM_PERIOD),
            threshold=0,
            description=f"{function.function_name} failed invocations.",
        )
        if reads_stream:
            self._alarm(
                f"{name}-iterator-age",
                function.metric("IteratorAge", statistic="Maximum", period=ALARM_PERIOD),
                threshold=STREAM_MAX_ITERATOR_AGE.to_milliseconds(),
                description=f"{function.function_name} is behind on its stream: domain events are late.",
            )

    def watch_metric(self, name: str, metric_name: str, *, dimensions: Mapping[str, str], threshold: float,
                     description: str, statistic: str = "Maximum") -> None:
        """A metric a function emits itself (namespace OrderHub) above `threshold` over one alarm period.

        `dimensions` must be the metric's whole dimension set (CloudWatch matches it exactly). These
        metrics come once per run, which need not fall in every period: a period without a data point
        leaves the alarm as it is (a late run neither clears nor raises it).
        """
        self._alarm(
            name,
            cloudwatch.Metric(namespace=METRICS_NAMESPACE, metric_name=metric_name, dimensions_map=dict(dimensions),
                              statistic=statistic, period=ALARM_PERIOD),
            threshold=threshold,
            description=description,
            treat_missing_data=cloudwatch.TreatMissingData.IGNORE,
        )

    def watch_sum(self, name: str, metric_name: str, *, dimension_sets: Iterable[Mapping[str, str]],
                  description: str) -> None:
        """Any occurrence of a count the functions emit under several dimension sets (e.g. one per
        channel), summed into one alarm: one problem, one alarm."""
        sets = list(dimension_sets)
        if not 0 < len(sets) <= MATH_MAX_METRICS:
            raise ValueError(f"{name}: one alarm sums 1 to {MATH_MAX_METRICS} metrics, not {len(sets)}")
        using = {f"m{i}": cloudwatch.Metric(namespace=METRICS_NAMESPACE, metric_name=metric_name,
                                            dimensions_map=dict(dims), statistic="Sum", period=ALARM_PERIOD)
                 for i, dims in enumerate(sets)}
        self._alarm(
            name,
            cloudwatch.MathExpression(expression=" + ".join(f"FILL({m}, 0)" for m in using), using_metrics=using,
                                      label=metric_name, period=ALARM_PERIOD),
            threshold=0,
            description=description,
        )

    def watch_routes(self, api_id: str, stage: str, routes: Mapping[str, Route], *, max_5xx_percent: float) -> None:
        """Each route's share of 5xx answers (detailed route metrics), and the whole stage's as a backstop.

        A 5xx is the hub's own failure (bad input is a 4xx): a webhook not stored, a function that crashed,
        timed out or hit its reserved concurrency.
        """
        for key, route in routes.items():
            dims = {"ApiId": api_id, "Stage": stage, "Method": route.method, "Resource": route.path}
            hint = ("webhooks are not being stored and the channel retries: see WebhookStoreFailed and "
                    "webhook_ingest's 'webhook not stored' log lines" if route.function == "webhook_ingest"
                    else f"see {route.function}'s errors and logs")
            self._alarm(
                f"route-5xx-{_slug(key)}",
                _error_rate(dims),
                threshold=max_5xx_percent,
                description=f"{key} answered more than {max_5xx_percent:g} % of its requests with a 5xx: {hint}.",
            )
        self._alarm(
            "api-5xx",
            _error_rate({"ApiId": api_id, "Stage": stage}),
            threshold=max_5xx_percent,
            description=f"The HTTP API answered more than {max_5xx_percent:g} % of its requests with a 5xx "
            "(all routes together); the route alarms say which.",
        )

    def tell_robots(self, alerts_queue: sqs.Queue, dead_letter: sqs.Queue | None) -> events.Rule:
        """This stage's alarm state changes onto the alerts queue (EventBridge's default bus)."""
        return events.Rule(
            self,
            "AlarmsToAlerts",
            rule_name=self._settings.name("alarms-to-alerts"),
            description="CloudWatch alarms of this stage going off or clearing, for the notifier to tell the robots",
            event_pattern=event_pattern(alarm_state_change_pattern(self._settings.name(""))),
            targets=[QueueTarget(alerts_queue, dead_letter)],
        )

    def _alarm(self, name: str, metric: cloudwatch.IMetric, *, threshold: float, description: str,
               treat_missing_data: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING) -> None:
        alarm = cloudwatch.Alarm(
            self,
            name,
            alarm_name=self._settings.name(name),
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=treat_missing_data,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms[name] = alarm


def _error_rate(dimensions: Mapping[str, str]) -> cloudwatch.MathExpression:
    """Percent of the requests answered with a 5xx over one alarm period (0 without requests)."""
    def metric(name: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(namespace=API_NAMESPACE, metric_name=name, dimensions_map=dict(dimensions),
                                 statistic="Sum", period=ALARM_PERIOD)

    return cloudwatch.MathExpression(expression="IF(requests > 0, 100 * errors / requests, 0)",
                                     using_metrics={"errors": metric("5xx"), "requests": metric("Count")},
                                     label="5xx %", period=ALARM_PERIOD)


def _slug(route_key: str) -> str:
    """"GET /orders/{order_id}" -> "get-orders-order-id" (construct ids and alarm names)."""
    return re.sub(r"[^a-z0-9]+", "-", route_key.lower()).strip("-")
