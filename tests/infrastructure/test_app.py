"""How the app judges the validation report it exits on."""

from __future__ import annotations

import json
from pathlib import Path

from infra.cdk.app import VALIDATION_REPORT, findings


def _report(directory: Path, *plugin_reports: dict) -> Path:
    (directory / VALIDATION_REPORT).write_text(json.dumps({"title": "Validation Report",
                                                           "pluginReports": list(plugin_reports)}))
    return directory


def _violation(rule: str, severity: str, *paths: str) -> dict:
    return {"ruleName": rule, "description": f"{rule} explained", "severity": severity,
            "violatingConstructs": [{"constructPath": p} for p in paths]}


def test_each_unacknowledged_error_blocks_once_per_resource(tmp_path: Path) -> None:
    assembly = _report(tmp_path, {
        "pluginName": "AwsSolutions",
        "violations": [_violation("AwsSolutions-S1", "error", "stack/a", "stack/b"),
                       _violation("AwsSolutions-APIG3", "warning", "stack/api")],
        # acknowledged findings are reported apart and never block
        "suppressedViolations": [_violation("AwsSolutions-L1", "error", "stack/fn")],
    })

    found = findings(assembly)

    assert [(f.rule, f.path, f.blocking) for f in found] == [
        ("AwsSolutions-S1", "stack/a", True),
        ("AwsSolutions-S1", "stack/b", True),
        ("AwsSolutions-APIG3", "stack/api", False),
    ]


def test_no_report_means_nothing_found(tmp_path: Path) -> None:
    assert findings(tmp_path) == []
