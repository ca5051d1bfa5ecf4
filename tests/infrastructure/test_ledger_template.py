"""The payment voucher ledger on the synthesised template: the payments table and its day index as declared
(and as the store reads them), and append-only enforced by IAM: no role may change or delete a record,
only the mapper may put one, the ledger API only reads, and the table's own policy denies everyone the
writes that change or delete."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase

import pytest

from infra.cdk.constructs.permissions import RolePolicy, _grant
from infra.cdk.constructs.storage import APPEND_ONLY_DENIED
from infra.topology import ORDERS_TABLE, PAYMENTS_TABLE, Access, build_topology
from infrastructure.synthesis import Synth, arn, as_list
from orderhub.store.ledger import BY_DAY_INDEX, DAY_KEY, DAY_PROJECTION, DynamoLedger

MAPPER, LEDGER_API = "status_mapper", "ledger_api"
READS = {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem"}
# Everything that changes or removes an item, in every API that can (PartiQL included).
# Granted on "*" because AWS has no resource-level permission for it; it reads no item.
ACCOUNT_WIDE = {"dynamodb:ListStreams"}
MUTATIONS = ("dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "dynamodb:PartiQLUpdate",
             "dynamodb:PartiQLDelete", "dynamodb:PartiQLInsert", "dynamodb:UpdateTimeToLive")


def _role_statements(synth: Synth) -> dict[str, list[dict]]:
    """Every role's identity statements (inline policies and attached ones), by role logical id."""
    roles = {role_id: [s for p in role["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
             for role_id, role in synth.of_type("AWS::IAM::Role").items()}
    for policy in synth.of_type("AWS::IAM::Policy").values():
        for ref in policy["Properties"].get("Roles", []):
            roles[ref["Ref"]] += policy["Properties"]["PolicyDocument"]["Statement"]
    return roles


def _role_of(synth: Synth, function: str) -> str:
    return synth.props(synth.function(function))["Role"]["Fn::GetAtt"][0]


def _covers_payments(synth: Synth, resource: object) -> bool:
    """Whether a statement's resource is the payments table or its index (or a pattern that takes them in)."""
    if isinstance(resource, str):
        physical = synth.settings.name(PAYMENTS_TABLE)
        return resource == "*" or (":dynamodb:" in resource and ("*" in resource or physical in resource))
    return f'"{synth.table(PAYMENTS_TABLE)}"' in json.dumps(resource)


def _actions_on_payments(synth: Synth, statements: list[dict]) -> set[str]:
    """The action patterns the statements allow on the payments table or its index."""
    return {action for s in statements if s["Effect"] == "Allow"
            and any(_covers_payments(synth, r) for r in as_list(s["Resource"])) for action in as_list(s["Action"])}


def _grants(patterns: set[str], action: str) -> bool:
    return any(fnmatchcase(action.lower(), p.lower()) for p in patterns)


def test_the_payments_table_and_its_day_index_are_as_declared_and_as_the_store_reads_them(synth: Synth) -> None:
    spec = synth.topology.table(PAYMENTS_TABLE)
    (index,) = spec.indexes
    assert spec.append_only and spec.ttl_attribute is None  # vouchers are kept as long as the books
    assert (index.name, index.partition_key, index.sort_key, index.projection) == (
        BY_DAY_INDEX, DAY_KEY, "record_id", DAY_PROJECTION)
    props = synth.props(synth.table(PAYMENTS_TABLE))
    assert props["KeySchema"] == [{"AttributeName": "record_id", "KeyType": "HASH"}]
    assert "TimeToLiveSpecification" not in props and "StreamSpecification" not in props
    (gsi,) = props["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == BY_DAY_INDEX
    assert gsi["KeySchema"] == [{"AttributeName": DAY_KEY, "KeyType": "HASH"},
                                {"AttributeName": "record_id", "KeyType": "RANGE"}]
    # Only what a day's journal needs: the index write stays one unit whatever the payload.
    assert gsi["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(DAY_PROJECTION)}
    for function in (MAPPER, LEDGER_API):
        env = synth.props(synth.function(function))["Environment"]["Variables"]
        assert env[DynamoLedger.TABLE_ENV] == {"Ref": synth.table(PAYMENTS_TABLE)}, function


def test_the_payments_table_policy_denies_everyone_what_changes_or_deletes_a_record(synth: Synth) -> None:
    policy = synth.props(synth.table(PAYMENTS_TABLE))["ResourcePolicy"]["PolicyDocument"]
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == {"AWS": "*"}
    assert "Condition" not in statement  # administrators included
    denied = set(as_list(statement["Action"]))
    assert denied == set(APPEND_ONLY_DENIED)
    assert {"dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
            "dynamodb:UpdateTimeToLive"} <= denied
    # No other table carries a policy: the others are not append-only.
    for spec in synth.topology.tables:
        if not spec.append_only:
            assert "ResourcePolicy" not in synth.props(synth.table(spec.name)), spec.name


def test_no_role_may_change_or_delete_a_ledger_record(synth: Synth) -> None:
    for role_id, statements in _role_statements(synth).items():
        patterns = _actions_on_payments(synth, statements)
        for action in MUTATIONS:
            assert not _grants(patterns, action), (role_id, action, patterns)


def test_only_the_mapper_may_put_ledger_records(synth: Synth) -> None:
    putters = {role_id for role_id, statements in _role_statements(synth).items()
               if _grants(_actions_on_payments(synth, statements), "dynamodb:PutItem")}
    assert putters == {_role_of(synth, MAPPER)}
    mapper = synth.role_statements(MAPPER)
    # PutItem on the table itself: an index takes no writes.
    puts = [r for s in mapper if "dynamodb:PutItem" in as_list(s["Action"]) for r in as_list(s["Resource"])
            if _covers_payments(synth, r)]
    assert puts == [arn(synth.table(PAYMENTS_TABLE))]
    # What the mapper may do to the ledger: put a new record, read one back.
    assert _actions_on_payments(synth, mapper) == {"dynamodb:PutItem"} | READS


def test_the_ledger_api_only_reads_the_ledger_and_no_other_function_touches_it(synth: Synth) -> None:
    table = arn(synth.table(PAYMENTS_TABLE))
    index = {"Fn::Join": ["", [table, f"/index/{BY_DAY_INDEX}"]]}
    api = synth.role_statements(LEDGER_API)
    assert _actions_on_payments(synth, api) == READS
    for action in READS:
        granted = [r for s in api if action in as_list(s["Action"]) for r in as_list(s["Resource"])]
        assert table in granted and index in granted, action
    for spec in synth.topology.functions:
        if spec.name not in (MAPPER, LEDGER_API):
            assert _actions_on_payments(synth, synth.role_statements(spec.name)) <= ACCOUNT_WIDE, spec.name


class _Named:
    """The one thing `_grant` asks of the wiring before it builds a statement: the tables an access names."""

    def named(self, kind: str, name: str) -> dict[str, object]:
        names = [t.name for t in build_topology().tables] if name == "*" else [name]
        return {n: object() for n in names}


@pytest.mark.parametrize("resource", [PAYMENTS_TABLE, "*"])
def test_table_write_on_an_append_only_table_stops_the_synth(resource: str) -> None:
    with pytest.raises(ValueError, match="append-only"):
        _grant(RolePolicy(), Access("table:write", resource), build_topology(), _Named())  # type: ignore[arg-type]


def test_table_write_on_other_tables_is_still_granted() -> None:
    class Table:
        table_arn = "arn:aws:dynamodb:ap-southeast-1:123456789012:table/orders"

    class Wiring:
        def named(self, kind: str, name: str) -> dict[str, object]:
            return {name: Table()}

    policy = RolePolicy()
    _grant(policy, Access("table:write", ORDERS_TABLE), build_topology(), Wiring())  # type: ignore[arg-type]
    (statement,) = policy.statements
    assert sorted(statement.to_statement_json()["Action"]) == ["dynamodb:PutItem", "dynamodb:UpdateItem"]
