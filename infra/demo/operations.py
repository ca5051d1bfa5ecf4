"""The demo's operations day: a subscriber outage ending in its DLQ, the alert, a clean redrive; exceptions
raised by the SLA watchdog, handled by people, and escalated when their SLA passes.

Runs on the demo's local runtime after the channel traffic (infra/demo/day.py), its scheduler on a manual
clock: moving the clock fires every scheduled run in between (hub health, SLA watch, alert digest,
pulls), as EventBridge Scheduler would have.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import time
from collections.abc import Callable
from typing import Any

from infra.config import HubConfig
from infra.demo.traffic import encode, mall_headers, mall_secret, synthetic_mall_order

# The committed SLAs are 2 h (payment) and 72 h (the others); the demo shortens them so that
# escalation is reached in a few dozen scheduled runs instead of hundreds.
DEMO_SLA_MINUTES = 30
Out = Callable[[str], None]
Checks = list[tuple[str, bool]]


def demo_config(config: HubConfig) -> HubConfig:
    types = {kind: spec.model_copy(update={"sla_minutes": DEMO_SLA_MINUTES})
             for kind, spec in config.exceptions.types.items()}
    return config.model_copy(update={"exceptions": config.exceptions.model_copy(update={"types": types})})


def cli(argv: list[str], runtime: Any, config_path: str) -> tuple[int, str]:
    """`orderhub <argv>` against the runtime's embedded AWS: exit code and what it printed."""
    from infra.cli.commands import run

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        code = run([*argv, "--config", config_path, "--endpoint-url", runtime.endpoint_url])
    return code, printed.getvalue()


def _depth(runtime: Any, queue: str) -> int:
    import boto3

    sqs = boto3.client("sqs", endpoint_url=runtime.endpoint_url, region_name=runtime.region)
    attrs = sqs.get_queue_attributes(QueueUrl=runtime.resources.queue_urls[queue], AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(v) for v in attrs.values())


def _indented(text: str, out: Out, limit: int = 14) -> None:
    lines = text.rstrip().splitlines()
    for line in lines[:limit]:
        out(f"    {line}")
    if len(lines) > limit:
        out(f"    ... ({len(lines) - limit} more lines)")


def subscriber_outage(runtime: Any, http: Callable, receiver: Any, paths: dict[str, str], inboxes: dict[str, Any],
                      robots: Any, config: HubConfig, config_path: str, out: Out, checks: Checks) -> None:
    """The ERP goes down: its pushes are retried with backoff, parked in its DLQ, the people on duty are
    told once; when the ERP is back, a redrive delivers what was parked, with the same Idempotency-Keys."""
    out("")
    out("The ERP goes down. A new order is paid meanwhile (the ERP wants every paid order)...")
    erp = inboxes["erp"]
    delivered_before, refused_before = erp.delivered, erp.failures_served
    ops = list(config.alerts.routes[config.alerts.default_route].robots)
    told_before = sum(len(robots.messages(r)) for r in ops)
    receiver.fail(paths["erp"], times=10**6)
    secret = mall_secret(config)
    for event in synthetic_mall_order(9001, random.Random(9001))[:2]:  # noqa: S311 - created, paid
        body = encode(event)
        status, _ = http("POST", f"{runtime.api_url}/webhooks/mall", body, mall_headers(secret, body))
        checks.append((f"outage order {event['event_type']} accepted", status == 200))
    deadline = time.monotonic() + 90
    while _depth(runtime, "sub-erp-dlq") == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    parked = _depth(runtime, "sub-erp-dlq")
    out(f"  ERP refused {erp.failures_served - refused_before} pushes (backoff {config_backoff(config, 'erp')} s, "
        f"{config_attempts(config, 'erp')} attempts each); {parked} message(s) parked in sub-erp-dlq")
    checks.append(("an undeliverable push ends in its subscriber's DLQ", parked >= 1))
    code, listing = cli(["dlq", "list"], runtime, config_path)
    out("  $ orderhub dlq list")
    _indented(listing, out)
    code, shown = cli(["dlq", "show", "sub-erp-dlq"], runtime, config_path)
    out("  $ orderhub dlq show sub-erp-dlq")
    _indented(shown, out)
    checks.append(("dlq show names the parked event", code == 0 and "OrderStatusChanged" in shown))

    out("  Ten minutes later (the scheduler's clock moved): hub health has seen the DLQ twice, the alert digest ran")
    runtime.clock.advance(600)
    runtime.wait_until_idle(timeout=60)
    messages = [m for r in ops for m in robots.messages(r)][told_before:]
    about_erp = [m for m in messages if "delivery:erp" in m.content]
    out(f"  The ops group got {len(about_erp)} message(s) about the ERP for "
        f"{erp.failures_served - refused_before} refused pushes: the first at once, the rest counted")
    for message in about_erp[:2]:
        out("  --- alert to the ops group (WeCom markdown) ---")
        _indented(message.content, out, limit=12)
    checks.append(("the ops group is told of the ERP failures, counted, not once per push",
                   0 < len(about_erp) <= 3 and len(about_erp) < erp.failures_served - refused_before))

    out("  The ERP is back. $ orderhub dlq redrive sub-erp-dlq")
    receiver.fail(paths["erp"], times=0)
    code, redriven = cli(["dlq", "redrive", "sub-erp-dlq"], runtime, config_path)
    _indented(redriven, out)
    runtime.wait_until_idle(timeout=60)
    out(f"  ERP now has {erp.delivered} events ({erp.delivered - delivered_before} new), "
        f"duplicate Idempotency-Keys: {erp.duplicates}; sub-erp-dlq holds {_depth(runtime, 'sub-erp-dlq')}")
    checks.append(("a redrive delivers what was parked, nothing twice",
                   code == 0 and erp.delivered > delivered_before and erp.duplicates == 0
                   and _depth(runtime, "sub-erp-dlq") == 0))


def config_backoff(config: HubConfig, name: str) -> list[int]:
    return next(s.backoff_seconds for s in config.subscribers if s.name == name)


def config_attempts(config: HubConfig, name: str) -> int:
    return next(s.max_attempts for s in config.subscribers if s.name == name)


def people_subscribers(robots: Any, config: HubConfig, out: Out, checks: Checks) -> None:
    """Robot subscribers: people hear of the order changes they chose (here: refund requests of 200+)."""
    for sub in (s for s in config.subscribers if s.kind != "webhook"):
        messages = robots.messages(sub.name)
        out("")
        out(f"Robot subscriber {sub.name} ({sub.kind} group): {len(messages)} message(s), "
            f"pattern {json.dumps(sub.pattern, ensure_ascii=False)}")
        if messages:
            _indented(messages[0].content, out, limit=8)
        checks.append((f"robot subscriber {sub.name} told its group", bool(messages)))


def _exceptions(runtime: Any, http: Callable, token: dict[str, str], query: str = "") -> list[dict[str, Any]]:
    status, text = http("GET", f"{runtime.api_url}/exceptions{query}", headers=token)
    return json.loads(text)["exceptions"] if status == 200 else []


def exceptions_day(runtime: Any, http: Callable, robots: Any, config: HubConfig, config_path: str, out: Out,
                   checks: Checks) -> None:
    token = {"Authorization": f"Bearer {config.ops_token}", "Content-Type": "application/json"}
    out("")
    out(f"Exceptions (EXC-1..3). The SLA watchdog runs every 5 minutes; SLAs shortened to {DEMO_SLA_MINUTES} min "
        "for the demo (config/local.toml: payment 2 h, the others 72 h).")
    runtime.clock.advance(300)
    runtime.wait_until_idle(timeout=60)
    raised = _exceptions(runtime, http, token, "?limit=500")
    by_type: dict[str, int] = {}
    for exc in raised:
        by_type[exc["type"]] = by_type.get(exc["type"], 0) + 1
    out(f"  GET /exceptions: {len(raised)} open, by type {by_type}")
    out(f"  {'type':<10} {'rule':<20} {'order':<26} {'owner':<10} {'SLA left':>9}  detail")
    for exc in raised[:12]:
        out(f"  {exc['type']:<10} {exc['rule']:<20} {exc['channel'] + ' ' + exc['channel_order_id']:<26} "
            f"{exc['owner']:<10} {exc['sla_remaining_s'] / 60:>7.0f}m  {str(exc.get('detail', ''))[:50]}")
    checks.append(("the watchdog raises typed exceptions with owners and deadlines",
                   bool(raised) and all(e["owner"] and e["sla_deadline"] for e in raised)))
    owners = {config.exceptions.types[e["type"]].owner for e in raised}
    for route in sorted(owners)[:1]:
        for robot in config.alerts.routes[route].robots[:1]:
            if robots.messages(robot):
                out(f"  --- told to the {route} group ({robot}) ---")
                _indented(robots.messages(robot)[-1].content, out, limit=10)
    checks.append(("each owner team is told", all(
        any(robots.messages(r) for r in config.alerts.routes[route].robots) for route in owners)))

    if len(raised) >= 2:
        first, second = raised[0], raised[1]
        ack, _ = http("POST", f"{runtime.api_url}/exceptions/{first['exception_id']}/acknowledge",
                      json.dumps({"by": "wang.li"}).encode(), token)
        res, _ = http("POST", f"{runtime.api_url}/exceptions/{second['exception_id']}/resolve",
                      json.dumps({"by": "wang.li", "note": "called the customer; shipping tomorrow"}).encode(), token)
        again, _ = http("POST", f"{runtime.api_url}/exceptions/{second['exception_id']}/resolve",
                        json.dumps({"by": "zhao.min", "note": "again"}).encode(), token)
        out(f"  POST acknowledge {first['exception_id'][:40]}... -> {ack}; resolve {second['exception_id'][:40]}... "
            f"-> {res}; resolving it again -> {again}")
        checks.append(("acknowledge and resolve work once, not twice", (ack, res, again) == (200, 200, 409)))

    out(f"  {DEMO_SLA_MINUTES + 5} minutes later (the scheduler's clock moved past the SLA)...")
    leads_before = {r: len(robots.messages(r))
                    for route in _supervisors(config) for r in config.alerts.routes[route].robots}
    runtime.clock.advance((DEMO_SLA_MINUTES + 5) * 60)
    runtime.wait_until_idle(timeout=120)
    after = _exceptions(runtime, http, token, "?limit=500")
    escalated = [e for e in after if e.get("escalated_at")]
    out(f"  {len(escalated)} of {len(after)} unresolved exceptions escalated to their supervisors")
    told = [m for r, n in leads_before.items() for m in robots.messages(r)[n:]]
    if told:
        out("  --- told to the supervisors (DingTalk, signed) ---")
        _indented(told[0].content, out, limit=10)
    checks.append(("exceptions past their SLA are escalated and the supervisors told", bool(escalated) and bool(told)))
    code, report = cli(["exceptions", "report"], runtime, config_path)
    out("  $ orderhub exceptions report")
    _indented(report, out, limit=12)
    checks.append(("the exceptions report counts them by type and month",
                   code == 0 and any(kind in report for kind in by_type)))


def _supervisors(config: HubConfig) -> set[str]:
    return {spec.supervisor for spec in config.exceptions.types.values()}
