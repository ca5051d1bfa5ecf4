"""The synthesised app as the infrastructure tests read it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # aws_cdk must not load before infra.cdk has set up its runtime
    from aws_cdk.assertions import Template

    from infra.cdk.app import Finding
    from infra.cdk.naming import Settings
    from infra.topology import Topology


@dataclass(frozen=True)
class Synth:
    topology: Topology
    settings: Settings
    template: Template
    resources: dict[str, dict]
    findings: list[Finding]

    def of_type(self, cfn_type: str) -> dict[str, dict]:
        return {lid: r for lid, r in self.resources.items() if r["Type"] == cfn_type}

    def props(self, logical_id: str) -> dict:
        return self.resources[logical_id].get("Properties", {})

    def logical_id(self, cfn_type: str, name_property: str, physical_name: str) -> str:
        matches = [lid for lid, r in self.of_type(cfn_type).items()
                   if r.get("Properties", {}).get(name_property) == physical_name]
        assert len(matches) == 1, f"expected one {cfn_type} named {physical_name!r}, found {matches}"
        return matches[0]

    def queue(self, name: str) -> str:
        return self.logical_id("AWS::SQS::Queue", "QueueName", self.settings.name(name))

    def table(self, name: str) -> str:
        return self.logical_id("AWS::DynamoDB::Table", "TableName", self.settings.name(name))

    def bucket(self, name: str) -> str:
        # Bucket names carry the account id (they are global): "<physical name>-<account>".
        prefix = self.settings.name(name) + "-"
        matches = [lid for lid, r in self.of_type("AWS::S3::Bucket").items()
                   if prefix in json.dumps(r.get("Properties", {}).get("BucketName", ""))]
        assert len(matches) == 1, f"expected one bucket named {prefix}<account>, found {matches}"
        return matches[0]

    def function(self, name: str) -> str:
        return self.logical_id("AWS::Lambda::Function", "FunctionName", self.settings.name(name))

    def role_statements(self, function: str) -> list[dict]:
        """Every statement of the function's execution role (inline policies and attached ones)."""
        role_id = self.props(self.function(function))["Role"]["Fn::GetAtt"][0]
        statements = [s for p in self.props(role_id).get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
        for policy in self.of_type("AWS::IAM::Policy").values():
            if {"Ref": role_id} in policy["Properties"].get("Roles", []):
                statements += policy["Properties"]["PolicyDocument"]["Statement"]
        return statements


def arn(logical_id: str) -> dict:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def literal(value: Any) -> str:
    """The literal text of a string or an Fn::Join, with the tokens left out."""
    if isinstance(value, str):
        return value
    return "".join(part for part in value["Fn::Join"][1] if isinstance(part, str))
