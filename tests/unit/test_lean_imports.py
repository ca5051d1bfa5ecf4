"""Cold start is import time: what each handler must not load when it is imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HANDLERS = ["webhook_ingest", "status_mapper", "event_publisher", "dispatcher", "orders_api", "hub_health",
            "notifier", "ledger_api"]
HEAVY = ["boto3", "botocore.client", "aws_xray_sdk", "aws_lambda_powertools.utilities.parser.models"]


@pytest.mark.parametrize("handler", HANDLERS)
def test_importing_a_handler_loads_no_aws_sdk_no_xray_and_no_parser_models(handler):
    code = (f"import sys, json; import functions.{handler}.handler; "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": "shared:.", "PATH": "/usr/bin:/bin"})
    assert json.loads(out.stdout) == []


def test_hub_health_loads_no_pydantic():
    # A cold-start benchmark target: it alerts through orderhub.alerts, which is plain dataclasses.
    code = "import sys, json; import functions.hub_health.handler; print(json.dumps('pydantic' in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": "shared:.", "PATH": "/usr/bin:/bin"})
    assert json.loads(out.stdout) is False
