"""Ingest: the HTTP API, one route per topology route, each integrated with its function.

Every route has its own throttle (infra/cdk/limits.py) and detailed metrics, so a flood on one route
(a channel's retry storm, junk) is refused there and leaves the others their share; each route's 5xx
rate is alarmed (monitoring.py). A path no route declares is API Gateway's 404, with no function call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import jsii
from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.cdk.constructs import acknowledge
from infra.cdk.naming import LOG_RETENTION, Settings
from infra.topology import Route, Topology

# No query string or body: requests carry personal data, access logs must not.
_ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "sourceIp": "$context.identity.sourceIp",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
}


class Ingest(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        topology: Topology,
        settings: Settings,
        functions: Mapping[str, lambda_.IFunction],
    ) -> None:
        super().__init__(scope, id)
        self.api = apigwv2.HttpApi(
            self,
            "Api",
            api_name=settings.name("api"),
            description=f"{settings.stack_name}: channel webhooks and the operations API",
            create_default_stage=False,
        )
        access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            log_group_name=f"/aws/apigateway/{settings.name('api')}/access",
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.DESTROY,
        )
        limits = settings.limits
        self.stage = self.api.add_stage(
            "DefaultStage",
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=limits.default.rate_rps, burst_limit=limits.default.burst),
            detailed_metrics_enabled=True,
            access_log_settings=_AccessLogSettings(access_logs),
        )
        integrations_by_function = {
            name: integrations.HttpLambdaIntegration(
                f"{name}-Integration",
                functions[name],
                payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0,
            )
            for name in sorted({route.function for route in topology.routes})
        }
        self.routes: dict[str, Route] = {}
        route_settings: dict[str, dict[str, object]] = {}
        stage = cast(apigwv2.CfnStage, self.stage.node.default_child)
        for spec in topology.routes:
            key = route_key(spec)
            throttle = limits.throttle(spec)
            self.routes[key] = spec
            route_settings[key] = {"ThrottlingRateLimit": throttle.rate_rps, "ThrottlingBurstLimit": throttle.burst,
                                   "DetailedMetricsEnabled": True}
            for route in self.api.add_routes(
                path=spec.path,
                methods=[apigwv2.HttpMethod[spec.method]],
                integration=integrations_by_function[spec.function],
            ):
                # Route settings name routes by key: CloudFormation must create them first.
                stage.node.add_dependency(route)
                acknowledge(
                    route,
                    "AwsSolutions-APIG4",
                    "Authenticated in the function: webhooks by each channel's signature, timestamp and "
                    "IP rules (channels cannot send our tokens); the operations routes by a bearer token "
                    "from Secrets Manager.",
                )

        stage.route_settings = route_settings

    @property
    def url(self) -> str:
        return self.stage.url


def route_key(route: Route) -> str:
    """API Gateway's name of a route: "POST /webhooks/douyin"."""
    return f"{route.method} {route.path}"


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    """JSON access log lines into a log group (the L2 takes this interface, not a struct)."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return apigw.AccessLogFormat.custom(_json_line(_ACCESS_LOG_FIELDS))


def _json_line(fields: dict[str, str]) -> str:
    # $context values are substituted as bare text, so each is quoted here (numbers included:
    # "-" stands for a missing one, which would not be valid JSON unquoted).
    return "{" + ",".join(f'"{key}":"{value}"' for key, value in fields.items()) + "}"
