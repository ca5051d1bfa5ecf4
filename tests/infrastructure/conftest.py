"""One synthesis of the CDK app per test session.

The app is built exactly as `python -m infra.cdk.app` builds it (same cdk.json context,
cdk-nag included) from the committed development configuration, into temporary folders,
with the layer's pip step skipped so no network is needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.cdk.assets import SKIP_LAYER_DEPS_ENV
from infra.config import DEFAULT_CONFIG_PATH, load_config
from infrastructure.synthesis import Synth


def _synthesise(tmp_path_factory: pytest.TempPathFactory, **context_overrides: object) -> Synth:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SKIP_LAYER_DEPS_ENV, "1")
        from aws_cdk.assertions import Template

        from infra.cdk.app import build_app, cdk_json_context, findings

        work: Path = tmp_path_factory.mktemp("cdk")
        app, stack = build_app(
            load_config(DEFAULT_CONFIG_PATH),
            outdir=str(work / "cdk.out"),
            build_dir=work / "build",
            context={**cdk_json_context(), **context_overrides},
        )
        assembly = app.synth()
    template_json = assembly.get_stack_by_name(stack.stack_name).template
    return Synth(
        topology=stack.topology,
        settings=stack.settings,
        template=Template.from_json(template_json),
        resources=template_json["Resources"],
        findings=findings(Path(assembly.directory)),
    )


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The app as `make synth` builds it (cdk.json context)."""
    return _synthesise(tmp_path_factory)


@pytest.fixture(scope="session")
def traced_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The app with X-Ray tracing switched on (`-c orderhub:tracing=true`)."""
    from infra.cdk.naming import TRACING_CONTEXT_KEY

    return _synthesise(tmp_path_factory, **{TRACING_CONTEXT_KEY: True})
