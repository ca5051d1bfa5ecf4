"""Webhook ingest: a failure of the hub's own is a 503 that is logged without personal data and counted
under a channel the hub knows; junk in the URL never becomes a metric dimension."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.webhook_ingest import handler
from infra.topology import WEBHOOK_CHANNELS, build_topology
from orderhub.channels import CHANNEL_MODULES, get_channel

PHONE = "13800138000"


class Context:
    function_name = "orderhub-test-webhook_ingest"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:ap-southeast-1:123456789012:function:orderhub-test-webhook_ingest"
    aws_request_id = "req-1"


def routed(channel: str, *, body: str = "{}") -> dict:
    """An API Gateway payload 2.0 event for the channel's own route (no path parameters)."""
    return {"version": "2.0", "routeKey": f"POST /webhooks/{channel}", "rawPath": f"/webhooks/{channel}",
            "headers": {"content-type": "application/json"}, "body": body, "isBase64Encoded": False,
            "requestContext": {"requestId": "r-1", "http": {"method": "POST", "sourceIp": "198.51.100.7"}}}


@pytest.fixture
def output(monkeypatch, capsys):
    """Everything the invocation wrote: log lines (the logger's stream) and metrics (stdout)."""
    from orderhub.observability import logger

    logs = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", logs)
    return lambda: logs.getvalue() + capsys.readouterr().out


def output_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def emf(lines: list[dict]) -> list[dict]:
    return [line for line in lines if "_aws" in line]


@pytest.fixture
def queue_down(monkeypatch):
    """The intake queue (or its KMS key) is unreachable; the error's text quotes the request."""

    def fail(request, *args, **kwargs):
        raise RuntimeError(f"could not send {request.body.decode()!r} for receiver {PHONE}")

    monkeypatch.setattr(handler, "accept_webhook", fail)
    monkeypatch.setattr(handler, "_intake_queue", lambda: None)


def test_a_queue_outage_is_a_503_logged_without_the_request_and_counted_for_its_channel(queue_down, output):
    # When the hub cannot store a douyin webhook
    reply = handler.lambda_handler(routed("douyin", body=json.dumps({"phone": PHONE})), Context())
    # Then the channel is told to retry
    assert reply["statusCode"] == 503 and reply["headers"]["Retry-After"] == "5"
    out = output()
    assert PHONE not in out  # neither the exception's text nor the body reach the logs
    lines = output_lines(out)
    (logged,) = [line for line in lines if line.get("message") == "webhook not stored"]
    assert logged["level"] == "ERROR" and logged["channel"] == "douyin" and logged["error"] == "RuntimeError"
    assert logged["at"].startswith("test_alarm_webhook_failures.py:") and "fail" in logged["at"]
    # And counted where the alarm looks: WebhookStoreFailed under the channel and the service
    (metric,) = emf(lines)
    assert metric["WebhookStoreFailed"] == [1.0] and metric["channel"] == "douyin"
    assert metric["service"] == "orderhub"


def test_the_channel_comes_from_the_route_and_a_path_parameter_still_works():
    assert handler.channel_of(routed("wms")) == "wms"
    assert handler.channel_of({"routeKey": "POST /webhooks/{channel}", "pathParameters": {"channel": "mall"}}) == "mall"
    assert handler.channel_of({"routeKey": "GET /orders"}) == ""


@settings(max_examples=200, deadline=None)
@given(name=st.one_of(st.text(max_size=300), st.sampled_from(sorted(CHANNEL_MODULES))))
def test_a_metric_dimension_is_a_channel_the_hub_knows_or_unknown(name):
    dimension = handler.known_channel(name)
    assert dimension in set(CHANNEL_MODULES) | {handler.UNKNOWN_CHANNEL}
    assert dimension == (name if name in CHANNEL_MODULES else "unknown")


def test_a_junk_channel_name_is_counted_as_unknown_and_answered_404(output, monkeypatch):
    monkeypatch.setattr(handler, "_intake_queue", lambda: None)
    junk = "x" * 200
    reply = handler.lambda_handler({**routed(junk), "pathParameters": {"channel": junk}}, Context())
    assert reply["statusCode"] == 404
    lines = output_lines(output())
    assert [m["channel"] for m in emf(lines)] == ["unknown"]
    assert junk not in json.dumps(lines)


def test_every_push_channel_has_its_own_route_and_no_other_channel_has_one():
    # The topology's channel list is the registry's push channels: a new channel needs its route.
    push = {name for name in CHANNEL_MODULES if get_channel(name).push}
    assert set(WEBHOOK_CHANNELS) == push
    webhook_routes = {r.path for r in build_topology().routes if r.function == "webhook_ingest"}
    assert webhook_routes == {f"/webhooks/{name}" for name in push}
    assert all(r.method == "POST" for r in build_topology().routes if r.function == "webhook_ingest")


@pytest.fixture(scope="module")
def local_api():
    """The local runtime's router over the hub's own routes (nothing is invoked: routing only)."""
    from infra.local.http_api import HttpApi

    api = HttpApi(build_topology().routes, lambda name, event: None, "127.0.0.1", 0)
    api.start()
    yield api
    api.stop()


@settings(max_examples=200, deadline=None)
@given(name=st.one_of(st.sampled_from(sorted(CHANNEL_MODULES)),
                      st.text(alphabet=st.characters(codec="ascii", exclude_characters="/?#%"), min_size=1,
                              max_size=80)))
def test_locally_too_only_a_push_channel_is_routed_to_the_webhook_function(local_api, name):
    found = local_api.route("POST", f"/webhooks/{name}")
    if name in WEBHOOK_CHANNELS:
        assert found is not None and found[0].route.function == "webhook_ingest"
        # The handler reads its channel from the route key the router names
        assert handler.channel_of({"routeKey": found[0].key, "pathParameters": found[1] or None}) == name
    else:
        assert found is None  # 404 without invoking anything, as API Gateway does
