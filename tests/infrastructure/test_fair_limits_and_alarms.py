"""Fair limits and failures that are seen, on the synthesised template: a route and a throttle per push
channel, the operations routes throttled apart, reserved concurrency as configured; alarms on webhook
store failures (the metric the handler really emits) and on each route's 5xx rate; and the rule that
takes this stage's alarm state changes to the alerts queue."""

from __future__ import annotations

import json
import re

import pytest

from infra.cdk.app import cdk_json_context
from infra.cdk.limits import LIMITS_CONTEXT_KEY, Limits
from infra.topology import ALERTS_QUEUE, WEBHOOK_CHANNELS, alarm_state_change_pattern
from infrastructure.synthesis import Synth, arn

CONTEXT = cdk_json_context()[LIMITS_CONTEXT_KEY]


def _stage(synth: Synth) -> dict:
    (stage,) = synth.of_type("AWS::ApiGatewayV2::Stage").values()
    return stage


def _alarms(synth: Synth) -> dict[str, dict]:
    return {a["Properties"]["AlarmName"]: a["Properties"] for a in synth.of_type("AWS::CloudWatch::Alarm").values()}


def _topic(synth: Synth) -> dict:
    (topic_id,) = synth.of_type("AWS::SNS::Topic")
    return {"Ref": topic_id}


def _api(synth: Synth) -> dict:
    (api_id,) = synth.of_type("AWS::ApiGatewayV2::Api")
    return {"Ref": api_id}


def _stats(props: dict) -> dict[str, dict]:
    """Metric id -> {"name", "dimensions"} of a metric-math alarm."""
    return {m["Id"]: {"name": m["MetricStat"]["Metric"]["MetricName"],
                      "namespace": m["MetricStat"]["Metric"]["Namespace"],
                      "dimensions": {d["Name"]: d["Value"] for d in m["MetricStat"]["Metric"]["Dimensions"]}}
            for m in props["Metrics"] if "MetricStat" in m}


def test_each_push_channel_has_its_own_route_and_throttle_and_no_route_takes_any_channel(synth: Synth) -> None:
    routes = {r["Properties"]["RouteKey"] for r in synth.of_type("AWS::ApiGatewayV2::Route").values()}
    webhooks = {key for key in routes if key.startswith("POST /webhooks/")}
    assert webhooks == {f"POST /webhooks/{channel}" for channel in WEBHOOK_CHANNELS}
    assert not any("{channel}" in key for key in routes)  # any other name is API Gateway's 404
    settings = _stage(synth)["Properties"]["RouteSettings"]
    for channel in WEBHOOK_CHANNELS:
        rate = CONTEXT["webhook_rps"][channel]
        assert settings[f"POST /webhooks/{channel}"] == {
            "ThrottlingRateLimit": rate, "ThrottlingBurstLimit": round(rate * CONTEXT["burst_seconds"]),
            "DetailedMetricsEnabled": True}


def test_the_operations_routes_are_throttled_apart_from_the_webhooks(synth: Synth) -> None:
    settings = _stage(synth)["Properties"]["RouteSettings"]
    operations = [r for r in synth.topology.routes if r.function != "webhook_ingest"]
    assert operations
    for route in operations:
        assert settings[f"{route.method} {route.path}"] == {
            "ThrottlingRateLimit": CONTEXT["operations_rps"],
            "ThrottlingBurstLimit": round(CONTEXT["operations_rps"] * CONTEXT["burst_seconds"]),
            "DetailedMetricsEnabled": True}
    assert set(settings) == {f"{r.method} {r.path}" for r in synth.topology.routes}


def test_the_stage_is_created_after_the_routes_its_settings_name(synth: Synth) -> None:
    # CloudFormation rejects route settings for a route key that does not exist yet.
    depends = set(_stage(synth).get("DependsOn", []))
    route_ids = set(synth.of_type("AWS::ApiGatewayV2::Route"))
    assert route_ids <= depends


def test_reserved_concurrency_is_as_configured_and_only_there(synth: Synth) -> None:
    reserved = {spec.name: synth.props(synth.function(spec.name)).get("ReservedConcurrentExecutions")
                for spec in synth.topology.functions}
    assert {name: units for name, units in reserved.items() if units is not None} == CONTEXT["reserved_concurrency"]


@pytest.mark.parametrize("switch", ["off", "OFF", "none", False, 0])
def test_reserved_concurrency_can_be_switched_off_for_a_new_account(switch) -> None:
    assert Limits.from_context(CONTEXT, switch).reserved_concurrency == {}
    assert Limits.from_context(CONTEXT, "on").reserved_concurrency == CONTEXT["reserved_concurrency"]


def test_limits_need_a_rate_for_every_push_channel_and_no_other() -> None:
    with pytest.raises(ValueError, match="missing \\['mall'\\]"):
        Limits.from_context({**CONTEXT, "webhook_rps": {k: v for k, v in CONTEXT["webhook_rps"].items()
                                                          if k != "mall"}})
    with pytest.raises(ValueError, match="not push channels \\['taobao'\\]"):
        Limits.from_context({**CONTEXT, "webhook_rps": {**CONTEXT["webhook_rps"], "taobao": 5}})
    with pytest.raises(ValueError, match="positive"):
        Limits.from_context({**CONTEXT, "operations_rps": 0})


def test_each_route_alarms_on_its_5xx_rate(synth: Synth) -> None:
    alarms = _alarms(synth)
    for route in synth.topology.routes:
        slug = re.sub(r"[^a-z0-9]+", "-", f"{route.method} {route.path}".lower()).strip("-")
        alarm = alarms[synth.settings.name(f"route-5xx-{slug}")]
        stats = _stats(alarm)
        dimensions = {"ApiId": _api(synth), "Stage": "$default", "Method": route.method, "Resource": route.path}
        assert stats == {"errors": {"name": "5xx", "namespace": "AWS/ApiGateway", "dimensions": dimensions},
                         "requests": {"name": "Count", "namespace": "AWS/ApiGateway", "dimensions": dimensions}}
        (expression,) = [m["Expression"] for m in alarm["Metrics"] if "Expression" in m]
        assert expression == "IF(requests > 0, 100 * errors / requests, 0)"
        assert alarm["Threshold"] == CONTEXT["route_5xx_percent"]
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["AlarmActions"] == [_topic(synth)] and alarm["OKActions"] == [_topic(synth)]
    backstop = _stats(alarms[synth.settings.name("api-5xx")])
    assert backstop["errors"]["dimensions"] == {"ApiId": _api(synth), "Stage": "$default"}


def _store_failure_emitted(synth: Synth, channel: str, monkeypatch, capsys) -> dict:
    """The embedded-metric document the webhook function prints when it cannot store a request."""
    from functions.webhook_ingest import handler

    for key, value in synth.topology.function("webhook_ingest").environment.items():
        if isinstance(value, str):
            monkeypatch.setenv(key, value)

    def unreachable(*args, **kwargs):
        raise ConnectionError("intake queue unreachable")

    monkeypatch.setattr(handler, "accept_webhook", unreachable)
    monkeypatch.setattr(handler, "_intake_queue", lambda: None)
    capsys.readouterr()
    event = {"routeKey": f"POST /webhooks/{channel}", "body": "{}", "headers": {},
             "requestContext": {"requestId": "r", "http": {"sourceIp": "198.51.100.1"}}}

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "f", 512, "r"
        invoked_function_arn = "arn:aws:lambda:ap-southeast-1:123456789012:function:f"

    assert handler.lambda_handler(event, Context())["statusCode"] == 503
    (line,) = [line for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    return json.loads(line)


def test_webhook_store_failures_of_any_channel_alarm_on_the_metric_the_function_emits(synth: Synth, monkeypatch,
                                                                                       capsys) -> None:
    alarm = _alarms(synth)[synth.settings.name("webhook-store-failed")]
    watched = _stats(alarm)
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["AlarmActions"] == [_topic(synth)]
    (expression,) = [m["Expression"] for m in alarm["Metrics"] if "Expression" in m]
    assert expression == " + ".join(f"FILL({metric_id}, 0)" for metric_id in watched)
    # CloudWatch matches a metric by its whole dimension set: each channel's as the handler emits it
    emitted = []
    for channel in WEBHOOK_CHANNELS:
        document = _store_failure_emitted(synth, channel, monkeypatch, capsys)
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        (names,) = directive["Dimensions"]
        assert [m["Name"] for m in directive["Metrics"]] == ["WebhookStoreFailed"]
        emitted.append({"name": "WebhookStoreFailed", "namespace": directive["Namespace"],
                        "dimensions": {n: document[n] for n in names}})
    assert sorted(watched.values(), key=json.dumps) == sorted(emitted, key=json.dumps)


def test_this_stages_alarm_changes_go_to_the_alerts_queue_and_only_that_rule_may_send(synth: Synth) -> None:
    rules = [r["Properties"] for r in synth.of_type("AWS::Events::Rule").values()
             if r["Properties"].get("Name") == synth.settings.name("alarms-to-alerts")]
    (rule,) = rules
    assert "EventBusName" not in rule  # CloudWatch sends its state changes to the default bus
    assert rule["EventPattern"] == alarm_state_change_pattern(synth.settings.name(""))
    (target,) = rule["Targets"]
    assert target["Arn"] == arn(synth.queue(ALERTS_QUEUE))
    assert target["DeadLetterConfig"] == {"Arn": arn(synth.queue(f"{ALERTS_QUEUE}-dlq"))}
    rule_id = next(lid for lid, r in synth.of_type("AWS::Events::Rule").items() if r["Properties"] is rule)
    for policy in synth.of_type("AWS::SQS::QueuePolicy").values():
        props = policy["Properties"]
        if {"Ref": synth.queue(ALERTS_QUEUE)} not in props["Queues"]:
            continue
        senders = [s for s in props["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
        assert senders == [{"Action": "sqs:SendMessage", "Effect": "Allow",
                            "Principal": {"Service": "events.amazonaws.com"},
                            "Resource": arn(synth.queue(ALERTS_QUEUE)),
                            "Condition": {"ArnEquals": {"aws:SourceArn": arn(rule_id)}}}]
