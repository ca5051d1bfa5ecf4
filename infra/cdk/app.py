"""CDK entry point: `python -m infra.cdk.app` synthesises the stack into ./cdk.out.

The stage and subscribers come from the operator's configuration file (ORDERHUB_CONFIG, see
infra/config.py). cdk-nag's AwsSolutions pack checks every resource during synthesis; the
app exits non-zero while any error-level finding is neither fixed nor acknowledged with a
reason, so `cdk synth` and `cdk deploy` stop there too.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import App, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from infra.cdk.assets import build_assets
from infra.cdk.limits import LIMITS_CONTEXT_KEY, RESERVED_CONCURRENCY_CONTEXT_KEY, Limits
from infra.cdk.naming import TRACING_CONTEXT_KEY, Settings
from infra.cdk.stack import OrderHubStack
from infra.config import REPO_ROOT, HubConfig, load_config
from infra.topology import build_topology

# Findings are read from the report below and judged here, instead of the CDK throwing
# mid-synth (it would also stop on warnings-only reports, and hide the count).
_FAIL_SYNTH_ON_VALIDATION_ERRORS = "@aws-cdk/core:failSynthOnValidationErrors"
VALIDATION_REPORT = "validation-report.json"
_BLOCKING = {"error", "fatal"}


@dataclass(frozen=True)
class Finding:
    plugin: str
    rule: str
    severity: str
    path: str
    description: str

    @property
    def blocking(self) -> bool:
        return self.severity in _BLOCKING

    def __str__(self) -> str:
        return f"{self.severity.upper()} {self.rule} at {self.path} ({self.plugin}): {self.description}"


def build_app(
    cfg: HubConfig,
    *,
    outdir: str | None = None,
    build_dir: Path = REPO_ROOT / ".build",
    context: dict | None = None,
) -> tuple[App, OrderHubStack]:
    app = App(outdir=outdir, context=context, post_cli_context={_FAIL_SYNTH_ON_VALIDATION_ERRORS: False})
    topology = build_topology(cfg.topology_subscribers(), cfg.business_timezone, cfg.provider_confirmed())
    settings = Settings(
        app=topology.app,
        stage=cfg.stage,
        config_prefix=cfg.config_prefix,
        secrets_prefix=cfg.secrets_prefix,
        business_tz=cfg.business_timezone,
        tracing=_flag(app.node.try_get_context(TRACING_CONTEXT_KEY), default=False),
        limits=Limits.from_context(app.node.try_get_context(LIMITS_CONTEXT_KEY),
                                   app.node.try_get_context(RESERVED_CONCURRENCY_CONTEXT_KEY)),
    )
    assets = build_assets(REPO_ROOT, build_dir, [f.name for f in topology.functions])
    stack = OrderHubStack(app, topology=topology, settings=settings, assets=assets)
    Tags.of(stack).add("app", topology.app)
    Tags.of(stack).add("stage", cfg.stage)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return app, stack


def findings(assembly_dir: Path) -> list[Finding]:
    """Every finding the validation plugins left unacknowledged, one per resource."""
    report_file = assembly_dir / VALIDATION_REPORT
    if not report_file.is_file():  # written only when some plugin had something to say
        return []
    report = json.loads(report_file.read_text())
    return [
        Finding(plugin["pluginName"], violation["ruleName"], violation.get("severity", "error"),
                construct["constructPath"], violation["description"])
        for plugin in report["pluginReports"]
        for violation in plugin.get("violations", [])
        for construct in violation["violatingConstructs"]
    ]


def _flag(value: object, *, default: bool) -> bool:
    # Context from `-c key=value` arrives as a string, from cdk.json as JSON.
    if value is None:
        return default
    return str(value).lower() in {"true", "1", "yes"}


def cdk_json_context() -> dict:
    """The context and feature flags of cdk.json, which only the CDK CLI reads by itself."""
    return json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


def main() -> int:
    if "CDK_OUTDIR" in os.environ:  # run by the CDK CLI: it passes outdir and context
        app, stack = build_app(load_config())
    else:
        app, stack = build_app(load_config(), outdir=str(REPO_ROOT / "cdk.out"), context=cdk_json_context())
    assembly = app.synth()
    found = findings(Path(assembly.directory))
    for finding in found:
        print(finding, file=sys.stderr)
    blocking = sum(f.blocking for f in found)
    print(
        f"{stack.stack_name}: synthesised into {assembly.directory}; "
        f"{blocking} unacknowledged validation errors, {len(found) - blocking} warnings",
        file=sys.stderr,
    )
    return 1 if blocking else 0


if __name__ == "__main__":
    sys.exit(main())
