"""The synthesised template matches the topology, declaration by declaration."""

from __future__ import annotations

import json

from infra.cdk.constructs.schedules import DEAD_LETTER_NAME
from infra.topology import Ref, SqsTrigger, StreamTrigger
from infrastructure.synthesis import Synth, arn, as_list, literal


def _key(synth: Synth) -> dict:
    (key_id,) = synth.of_type("AWS::KMS::Key")
    return arn(key_id)


def _dead_letter_names(synth: Synth) -> list[str]:
    names = [q.name if q.is_dead_letter_only else q.dlq_name for q in synth.topology.queues]
    return [*names, DEAD_LETTER_NAME]


# --- queues ---------------------------------------------------------------------------------


def test_every_work_queue_redrives_to_its_dlq_as_declared(synth: Synth) -> None:
    for spec in synth.topology.queues:
        props = synth.props(synth.queue(spec.name))
        assert props["VisibilityTimeout"] == spec.visibility_timeout_s, spec.name
        assert props["MessageRetentionPeriod"] == spec.retention_days * 86400, spec.name
        if spec.is_dead_letter_only:
            assert "RedrivePolicy" not in props, spec.name
            continue
        assert props["RedrivePolicy"] == {
            "deadLetterTargetArn": arn(synth.queue(spec.dlq_name)),
            "maxReceiveCount": spec.max_receive_count,
        }, spec.name
        dlq = synth.props(synth.queue(spec.dlq_name))
        assert dlq["MessageRetentionPeriod"] == spec.dlq_retention_days * 86400, spec.dlq_name


def test_every_queue_is_encrypted_with_the_stack_key_and_refuses_plain_http(synth: Synth) -> None:
    key = _key(synth)
    policies = synth.of_type("AWS::SQS::QueuePolicy").values()
    for queue_id, queue in synth.of_type("AWS::SQS::Queue").items():
        assert queue["Properties"]["KmsMasterKeyId"] == key, queue_id
        denies_http = [
            s for p in policies if {"Ref": queue_id} in p["Properties"]["Queues"]
            for s in p["Properties"]["PolicyDocument"]["Statement"]
            if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert denies_http, f"{queue_id} accepts requests without TLS"


# --- triggers -------------------------------------------------------------------------------


def _mapping(synth: Synth, function: str, source_arn: dict) -> dict:
    matches = [
        m["Properties"] for m in synth.of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": synth.function(function)}
        and m["Properties"]["EventSourceArn"] == source_arn
    ]
    assert len(matches) == 1, f"{function}: expected one mapping from {source_arn}, found {len(matches)}"
    return matches[0]


def test_every_sqs_trigger_reports_partial_batch_failures(synth: Synth) -> None:
    triggers = [(f, t) for f in synth.topology.functions for t in f.triggers if isinstance(t, SqsTrigger)]
    assert triggers, "the development configuration should declare queue triggers"
    for function, trigger in triggers:
        mapping = _mapping(synth, function.name, arn(synth.queue(trigger.queue)))
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["BatchSize"] == trigger.batch_size
        assert mapping.get("MaximumBatchingWindowInSeconds", 0) == trigger.max_batching_window_s
        if trigger.max_concurrency:
            assert mapping["ScalingConfig"] == {"MaximumConcurrency": trigger.max_concurrency}


def test_the_stream_trigger_bisects_retries_and_parks_failures(synth: Synth) -> None:
    triggers = [(f, t) for f in synth.topology.functions for t in f.triggers if isinstance(t, StreamTrigger)]
    assert triggers, "the orders stream (the outbox) must feed a function"
    for function, trigger in triggers:
        stream = {"Fn::GetAtt": [synth.table(trigger.table), "StreamArn"]}
        mapping = _mapping(synth, function.name, stream)
        assert mapping["BisectBatchOnFunctionError"] is trigger.bisect_batch_on_error
        assert mapping["MaximumRetryAttempts"] == trigger.max_retry_attempts
        assert mapping["StartingPosition"] == trigger.starting_position
        assert mapping["BatchSize"] == trigger.batch_size
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["DestinationConfig"] == {
            "OnFailure": {"Destination": arn(synth.queue(trigger.on_failure_queue))}
        }


# --- tables and buckets ---------------------------------------------------------------------


def test_tables_are_recoverable_encrypted_and_shaped_as_declared(synth: Synth) -> None:
    for spec in synth.topology.tables:
        table_id = synth.table(spec.name)
        props = synth.props(table_id)
        assert synth.resources[table_id]["DeletionPolicy"] == "Retain"
        assert props["DeletionProtectionEnabled"] is True
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"] == {
            "PointInTimeRecoveryEnabled": spec.point_in_time_recovery
        }
        assert props["SSESpecification"] == {"KMSMasterKeyId": _key(synth), "SSEEnabled": True, "SSEType": "KMS"}
        keys = {k["KeyType"]: k["AttributeName"] for k in props["KeySchema"]}
        assert keys == {"HASH": spec.partition_key, **({"RANGE": spec.sort_key} if spec.sort_key else {})}
        assert props.get("StreamSpecification") == (
            {"StreamViewType": spec.stream} if spec.stream else None
        ), spec.name
        assert props.get("TimeToLiveSpecification") == (
            {"AttributeName": spec.ttl_attribute, "Enabled": True} if spec.ttl_attribute else None
        ), spec.name
        indexes = {i["IndexName"]: i for i in props.get("GlobalSecondaryIndexes", [])}
        assert set(indexes) == {i.name for i in spec.indexes}
        for index in spec.indexes:
            keys = {k["KeyType"]: k["AttributeName"] for k in indexes[index.name]["KeySchema"]}
            assert keys == {"HASH": index.partition_key, **({"RANGE": index.sort_key} if index.sort_key else {})}


def test_the_stack_key_rotates_and_is_kept(synth: Synth) -> None:
    for key_id, key in synth.of_type("AWS::KMS::Key").items():
        assert key["Properties"]["EnableKeyRotation"] is True, key_id
        assert key["DeletionPolicy"] == "Retain", key_id


def test_buckets_are_private_encrypted_versioned_logged_and_expire_as_declared(synth: Synth) -> None:
    buckets = synth.of_type("AWS::S3::Bucket")
    for spec in synth.topology.buckets:
        (props,) = [
            b["Properties"] for b in buckets.values()
            if literal(b["Properties"]["BucketName"]).startswith(synth.settings.name(spec.name) + "-")
        ]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True
        }
        sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        assert sse == {"KMSMasterKeyID": _key(synth), "SSEAlgorithm": "aws:kms"}
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert "DestinationBucketName" in props["LoggingConfiguration"]
        (rule,) = props["LifecycleConfiguration"]["Rules"]
        assert rule.get("ExpirationInDays") == spec.expire_after_days
    for bucket_id in buckets:
        statements = [
            s for p in synth.of_type("AWS::S3::BucketPolicy").values()
            if p["Properties"]["Bucket"] == {"Ref": bucket_id}
            for s in p["Properties"]["PolicyDocument"]["Statement"]
        ]
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   for s in statements), f"{bucket_id} accepts requests without TLS"


# --- event bus ------------------------------------------------------------------------------


def test_every_rule_matches_the_declared_pattern_and_feeds_its_queue_only(synth: Synth) -> None:
    assert synth.topology.rules, "the development configuration should declare subscribers"
    for spec in synth.topology.rules:
        rule_id = synth.logical_id("AWS::Events::Rule", "Name", synth.settings.name(spec.name))
        props = synth.props(rule_id)
        assert props["EventPattern"] == spec.pattern
        assert props["EventBusName"] == {"Ref": synth.logical_id(
            "AWS::Events::EventBus", "Name", synth.settings.name(spec.bus))}
        (target,) = props["Targets"]
        queue_id = synth.queue(spec.target_queue)
        assert target["Arn"] == arn(queue_id)

        # EventBridge may send to the queue for this rule and nothing else.
        event_statements = [
            s for p in synth.of_type("AWS::SQS::QueuePolicy").values()
            if {"Ref": queue_id} in p["Properties"]["Queues"]
            for s in p["Properties"]["PolicyDocument"]["Statement"]
            if s.get("Principal") == {"Service": "events.amazonaws.com"}
        ]
        assert event_statements, f"EventBridge cannot deliver to {spec.target_queue}"
        for statement in event_statements:
            assert statement["Action"] == "sqs:SendMessage"
            assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": arn(rule_id)}}


# --- schedules ------------------------------------------------------------------------------


def test_every_schedule_fires_as_declared_and_may_only_invoke_its_function(synth: Synth) -> None:
    schedules = synth.of_type("AWS::Scheduler::Schedule")
    for spec in synth.topology.schedules:
        (props,) = [
            s["Properties"] for s in schedules.values() if s["Properties"]["Name"] == synth.settings.name(spec.name)
        ]
        assert props["ScheduleExpression"] == spec.expression
        assert props["ScheduleExpressionTimezone"] == spec.timezone
        assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
        target = props["Target"]
        function_arn = arn(synth.function(spec.function))
        assert target["Arn"] == function_arn
        assert json.loads(target["Input"]) == {
            "schedule": spec.name, "scheduled_time": "<aws.scheduler.scheduled-time>"
        }
        assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
        assert target["DeadLetterConfig"] == {"Arn": arn(synth.queue(DEAD_LETTER_NAME))}

        role_id = target["RoleArn"]["Fn::GetAtt"][0]
        statements = [s for p in synth.props(role_id)["Policies"] for s in p["PolicyDocument"]["Statement"]]
        invoke = [s for s in statements if "lambda:InvokeFunction" in as_list(s["Action"])]
        assert invoke == [{"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": function_arn}]
        actions = {a for s in statements for a in as_list(s["Action"])}
        assert actions <= {"lambda:InvokeFunction", "sqs:SendMessage", "kms:Decrypt", "kms:GenerateDataKey"}


# --- HTTP API -------------------------------------------------------------------------------


def test_every_route_reaches_its_function_with_payload_v2(synth: Synth) -> None:
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in synth.of_type("AWS::ApiGatewayV2::Route").values()}
    assert set(routes) == {f"{r.method} {r.path}" for r in synth.topology.routes}
    for spec in synth.topology.routes:
        integration_id = routes[f"{spec.method} {spec.path}"]["Target"]["Fn::Join"][1][1]["Ref"]
        integration = synth.props(integration_id)
        assert integration["IntegrationType"] == "AWS_PROXY"
        assert integration["PayloadFormatVersion"] == "2.0"
        assert integration["IntegrationUri"] == arn(synth.function(spec.function))


def test_the_api_stage_logs_access_and_throttles(synth: Synth) -> None:
    (stage,) = synth.of_type("AWS::ApiGatewayV2::Stage").values()
    props = stage["Properties"]
    assert props["StageName"] == "$default"
    log_format = json.loads(props["AccessLogSettings"]["Format"])
    assert log_format["requestId"] == "$context.requestId"
    assert props["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
    assert props["DefaultRouteSettings"]["ThrottlingBurstLimit"] > 0


# --- functions ------------------------------------------------------------------------------


def test_every_function_is_arm64_python313_json_logged_and_sized_as_declared(synth: Synth) -> None:
    for spec in synth.topology.functions:
        props = synth.props(synth.function(spec.name))
        assert props["Runtime"] == "python3.13"
        assert props["Architectures"] == ["arm64"]
        assert props["Handler"] == "handler.lambda_handler"
        assert props["MemorySize"] == spec.memory_mb
        assert props["Timeout"] == spec.timeout_s
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        log_group = synth.props(props["LoggingConfig"]["LogGroup"]["Ref"])
        assert log_group["RetentionInDays"] > 0
        variables = props["Environment"]["Variables"]
        assert set(spec.environment) | {"POWERTOOLS_LOG_LEVEL"} <= set(variables), spec.name


def test_plain_environment_values_are_passed_and_refs_are_resolved(synth: Synth) -> None:
    constants = {
        "stage": synth.settings.stage,
        "config_prefix": synth.settings.config_prefix,
        "secrets_prefix": synth.settings.secrets_prefix,
        "business_tz": synth.settings.business_tz,
    }
    for spec in synth.topology.functions:
        variables = synth.props(synth.function(spec.name))["Environment"]["Variables"]
        for name, value in spec.environment.items():
            if isinstance(value, str):
                assert variables[name] == value
            elif value.kind in constants:
                assert variables[name] == constants[value.kind]
            elif value.kind == "table":
                assert variables[name] == {"Ref": synth.table(value.name)}
            elif value.kind == "queue_url" and value.name != "*":
                assert variables[name] == {"Ref": synth.queue(value.name)}


def test_the_all_queues_map_names_every_queue_and_dlq(synth: Synth) -> None:
    users = [(f, k) for f in synth.topology.functions for k, v in f.environment.items() if v == Ref("queue_url", "*")]
    assert users, "hub_health reads every queue's URL"
    for spec, variable in users:
        value = synth.props(synth.function(spec.name))["Environment"]["Variables"][variable]
        names = [q.name for q in synth.topology.queues] + [
            q.dlq_name for q in synth.topology.queues if not q.is_dead_letter_only
        ]
        for name in names:
            assert f'"{name}":"' in literal(value), name
            assert {"Ref": synth.queue(name)} in value["Fn::Join"][1], name


def test_tracing_is_off_by_default_and_then_neither_lambda_nor_the_function_traces(synth: Synth) -> None:
    # X-Ray costs cold-start import time; operators switch it on with -c orderhub:tracing=true.
    from infra.cdk.app import cdk_json_context
    from infra.cdk.naming import TRACING_CONTEXT_KEY

    assert cdk_json_context()[TRACING_CONTEXT_KEY] is False
    for spec in synth.topology.functions:
        props = synth.props(synth.function(spec.name))
        assert props.get("TracingConfig", {"Mode": "PassThrough"}) != {"Mode": "Active"}
        assert "ORDERHUB_TRACING" not in props["Environment"]["Variables"]


def test_with_tracing_switched_on_lambda_traces_and_the_function_is_told(traced_synth: Synth) -> None:
    assert [str(f) for f in traced_synth.findings if f.blocking] == []  # X-Ray's grants are acknowledged
    for spec in traced_synth.topology.functions:
        props = traced_synth.props(traced_synth.function(spec.name))
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["Environment"]["Variables"]["ORDERHUB_TRACING"] == "1"


# --- monitoring -----------------------------------------------------------------------------


def _alarms_on(synth: Synth, metric: str, dimension: dict) -> list[dict]:
    return [
        a["Properties"] for a in synth.of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == metric and dimension in a["Properties"].get("Dimensions", [])
    ]


def _topic(synth: Synth) -> dict:
    (topic_id,) = synth.of_type("AWS::SNS::Topic")
    return {"Ref": topic_id}


def test_every_dead_letter_queue_alarms_on_its_first_message(synth: Synth) -> None:
    for name in _dead_letter_names(synth):
        dimension = {"Name": "QueueName", "Value": {"Fn::GetAtt": [synth.queue(name), "QueueName"]}}
        (alarm,) = _alarms_on(synth, "ApproximateNumberOfMessagesVisible", dimension)
        assert alarm["Threshold"] == 0
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert _topic(synth) in alarm["AlarmActions"], name


def test_every_queue_alarms_when_its_oldest_message_grows_old(synth: Synth) -> None:
    names = [q.name for q in synth.topology.queues] + _dead_letter_names(synth)
    for name in set(names):
        dimension = {"Name": "QueueName", "Value": {"Fn::GetAtt": [synth.queue(name), "QueueName"]}}
        (alarm,) = _alarms_on(synth, "ApproximateAgeOfOldestMessage", dimension)
        assert alarm["Threshold"] > 0
        assert _topic(synth) in alarm["AlarmActions"], name


def test_every_function_alarms_on_errors(synth: Synth) -> None:
    for spec in synth.topology.functions:
        dimension = {"Name": "FunctionName", "Value": {"Ref": synth.function(spec.name)}}
        (alarm,) = _alarms_on(synth, "Errors", dimension)
        assert _topic(synth) in alarm["AlarmActions"], spec.name


def test_the_alarm_topic_is_encrypted_and_tls_only(synth: Synth) -> None:
    (topic,) = synth.of_type("AWS::SNS::Topic").values()
    assert topic["Properties"]["KmsMasterKeyId"] == _key(synth)
    (policy,) = synth.of_type("AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for s in statements)


# --- names ----------------------------------------------------------------------------------


def test_physical_names_are_deterministic(synth: Synth) -> None:
    """The CLI and the runbook find resources on AWS by these names."""
    for table in synth.topology.tables:
        synth.table(table.name)
    for queue in synth.topology.queues:
        synth.queue(queue.name)
        if not queue.is_dead_letter_only:
            synth.queue(queue.dlq_name)
    for function in synth.topology.functions:
        synth.function(function.name)
    for bus in synth.topology.buses:
        synth.logical_id("AWS::Events::EventBus", "Name", synth.settings.name(bus.name))
    assert synth.settings.name("intake") == f"orderhub-{synth.settings.stage}-intake"


def test_outputs_name_the_api_the_bus_and_the_alarm_topic(synth: Synth) -> None:
    outputs = synth.template.to_json()["Outputs"]
    assert {"ApiUrl", "AlarmTopicArn"} <= set(outputs)
    assert any(o["Value"] == {"Ref": synth.logical_id("AWS::Events::EventBus", "Name", synth.settings.name(b.name))}
               for b in synth.topology.buses for o in outputs.values())


# --- cdk-nag --------------------------------------------------------------------------------


def test_cdk_nag_finds_no_unacknowledged_errors(synth: Synth) -> None:
    blocking = [str(f) for f in synth.findings if f.blocking]
    assert blocking == []


def test_a_synth_with_the_placeholder_layer_says_it_must_not_be_deployed(synth: Synth) -> None:
    warnings = [f for f in synth.findings if not f.blocking]
    assert [f.rule for f in warnings] == ["Annotation::orderhub:placeholder-layer"]
