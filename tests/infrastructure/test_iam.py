"""Each function's role holds exactly what its topology `access` declares, and nothing wide open."""

from __future__ import annotations

import pytest

from infra.cdk.constructs.processing import _require_access_for_triggers
from infra.topology import Access, Function, SqsTrigger
from infrastructure.synthesis import Synth, arn, as_list, literal

# Statements on "*" that AWS forces (no resource-level permissions), each acknowledged in cdk-nag.
DOCUMENTED_WILDCARD_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "dynamodb:ListStreams"}


def _allowed(statements: list[dict], action: str) -> list:
    """Every resource the statements allow `action` on."""
    return [
        resource
        for s in statements if s["Effect"] == "Allow" and action in as_list(s["Action"])
        for resource in as_list(s["Resource"])
    ]


def _identity_statements(synth: Synth) -> list[dict]:
    statements = [
        s for role in synth.of_type("AWS::IAM::Role").values()
        for p in role["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]
    ]
    statements += [
        s for p in synth.of_type("AWS::IAM::Policy").values() for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    return statements


def test_no_identity_policy_grants_everything_except_where_aws_requires_it(synth: Synth) -> None:
    for statement in _identity_statements(synth):
        actions = as_list(statement["Action"])
        assert "*" not in actions and not any(a.endswith(":*") for a in actions), statement
        if "*" in as_list(statement["Resource"]):
            assert set(actions) <= DOCUMENTED_WILDCARD_ACTIONS, statement


def test_no_role_uses_managed_policies(synth: Synth) -> None:
    for role_id, role in synth.of_type("AWS::IAM::Role").items():
        assert not role["Properties"].get("ManagedPolicyArns"), role_id


def test_resource_policies_allow_only_named_service_principals(synth: Synth) -> None:
    for cfn_type in ("AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy", "AWS::S3::BucketPolicy"):
        for policy_id, policy in synth.of_type(cfn_type).items():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                if statement["Effect"] == "Allow":
                    assert statement["Principal"] not in ("*", {"AWS": "*"}), policy_id
                    assert "Service" in statement["Principal"], policy_id


def test_a_function_without_table_write_cannot_put_items_in_the_orders_table(synth: Synth) -> None:
    orders = arn(synth.table("orders"))
    writers = {f.name for f in synth.topology.functions if Access("table:write", "orders") in f.access}
    assert writers, "some function must write orders"
    for spec in synth.topology.functions:
        statements = synth.role_statements(spec.name)
        can_put = orders in _allowed(statements, "dynamodb:PutItem")
        assert can_put is (spec.name in writers), spec.name
        assert _allowed(statements, "dynamodb:DeleteItem") == [], "the hub never deletes"


# Access kind -> (the actions it means, how the granted resource looks in the template).
_EXPECTED = {
    "table:read": (("dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem"), lambda s, n: arn(s.table(n))),
    "table:write": (("dynamodb:PutItem", "dynamodb:UpdateItem"), lambda s, n: arn(s.table(n))),
    "table:append": (("dynamodb:PutItem",), lambda s, n: arn(s.table(n))),
    "queue:send": (("sqs:SendMessage",), lambda s, n: arn(s.queue(n))),
    "queue:consume": (
        ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"),
        lambda s, n: arn(s.queue(n)),
    ),
    "queue:inspect": (("sqs:GetQueueAttributes",), lambda s, n: arn(s.queue(n))),
    "stream:read": (
        ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"),
        lambda s, n: {"Fn::GetAtt": [s.table(n), "StreamArn"]},
    ),
    "bus:put": (("events:PutEvents",), lambda s, n: arn(s.logical_id("AWS::Events::EventBus", "Name",
                                                                        s.settings.name(n)))),
    "bucket:read": (("s3:GetObject",), lambda s, n: {"Fn::Join": ["", [arn(s.bucket(n)), "/*"]]}),
    "bucket:write": (("s3:PutObject",), lambda s, n: {"Fn::Join": ["", [arn(s.bucket(n)), "/*"]]}),
    # An SNS topic's Ref is its ARN.
    "topic:publish": (("sns:Publish",), lambda s, n: {"Ref": s.logical_id("AWS::SNS::Topic", "TopicName",
                                                                         s.settings.name(n))}),
}


def _declared_names(synth: Synth, kind: str, resource: str) -> list[str]:
    if resource != "*":
        return [resource]
    topology = synth.topology
    if kind.startswith("queue"):
        return [n for q in topology.queues for n in ((q.name,) if q.is_dead_letter_only else (q.name, q.dlq_name))]
    if kind.startswith(("table", "stream")):
        return [t.name for t in topology.tables]
    if kind.startswith("bucket"):
        return [b.name for b in topology.buckets]
    if kind.startswith("topic"):
        return [t.name for t in topology.topics]
    return [b.name for b in topology.buses]


def test_every_declared_access_is_granted(synth: Synth) -> None:
    for spec in synth.topology.functions:
        statements = synth.role_statements(spec.name)
        for access in spec.access:
            actions, resource_of = _EXPECTED[access.kind]
            for name in _declared_names(synth, access.kind, access.resource):
                for action in actions:
                    assert resource_of(synth, name) in _allowed(statements, action), (spec.name, access, action)


def test_data_actions_are_granted_only_where_access_is_declared(synth: Synth) -> None:
    for spec in synth.topology.functions:
        statements = synth.role_statements(spec.name)
        expected = {
            (action, repr(resource_of(synth, name)))
            for access in spec.access
            for actions, resource_of in [_EXPECTED[access.kind]]
            for name in _declared_names(synth, access.kind, access.resource)
            for action in actions
        }
        for statement in statements:
            for action in as_list(statement["Action"]):
                if not action.startswith(("dynamodb:", "sqs:", "events:")) or action == "dynamodb:ListStreams":
                    continue
                for resource in as_list(statement["Resource"]):
                    if isinstance(resource, dict) and "Fn::Join" in resource:  # a table's index ARN
                        resource = resource["Fn::Join"][1][0]
                    assert (action, repr(resource)) in expected, (spec.name, action, resource)


def test_config_reads_are_limited_to_the_stage_prefixes(synth: Synth) -> None:
    settings = synth.settings
    for spec in synth.topology.functions:
        statements = synth.role_statements(spec.name)
        parameters = [literal(r) for r in _allowed(statements, "ssm:GetParameter")]
        secrets = [literal(r) for r in _allowed(statements, "secretsmanager:GetSecretValue")]
        wanted_parameters = [f":parameter{settings.config_prefix}/{kind}/*"
                             for kind in spec.reads_config if kind != "ops-token"]
        wanted_secrets = [f":secret:{settings.secrets_prefix}/{kind}/*" if kind != "ops-token"
                          else f":secret:{settings.secrets_prefix}/ops-token-??????" for kind in spec.reads_config]
        assert sorted(p[p.index(":parameter"):] for p in parameters) == sorted(wanted_parameters), spec.name
        assert sorted(s[s.index(":secret:"):] for s in secrets) == sorted(wanted_secrets), spec.name


def test_a_trigger_without_matching_access_is_refused() -> None:
    function = Function("reader", "consumes a queue it may not read", triggers=(SqsTrigger("intake"),))
    with pytest.raises(ValueError, match="queue:consume"):
        _require_access_for_triggers(function)
