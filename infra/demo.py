"""`orderhub demo`: a shop's day through the hub, locally, over real HTTP.

Starts the local runtime (moto as the embedded AWS) and stand-ins for the WMS, ERP and CRM,
sends the sample order stories in events/ shuffled and partly duplicated, adds the requests
a hub must refuse, makes the WMS fail its first pushes, then prints what happened and checks
it: every story ends in its expected status, nothing is delivered twice, no DLQ holds anything.
Exit status 0 only if every check holds.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from infra.config import REPO_ROOT, HubConfig, load_config
from infra.downstream import by_subscriber, receiver_for
from infra.traffic import Story, encode, load_stories, mall_headers, mall_secret

WMS_OUTAGE_PUSHES = 3
SEED = 2026
FUNCTION_LOGS = REPO_ROOT / ".local" / "logs"


@dataclass(frozen=True)
class Sent:
    label: str
    status: int
    body: str


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 - loopback
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def shop_traffic(secret: str, rng: random.Random) -> list[tuple[str, bytes]]:
    """Every story's events, shuffled across orders and within them, a third of them sent twice."""
    events = [event for story in load_stories("mall") for event in story.events]
    rng.shuffle(events)
    sends = [(e["event_id"], encode(e)) for e in events]
    again = [s for i, s in enumerate(sends) if i % 3 == 0]
    merged = sends + again
    rng.shuffle(merged)
    return merged


def bad_requests(secret: str) -> list[tuple[str, str, bytes, dict[str, str]]]:
    story = load_stories("mall")[0]
    good = encode(story.events[1])
    tampered = good.replace(b'"amount":25800', b'"amount":1')
    malformed = encode({**story.events[1], "order": {"order_no": story.order_no}})
    return [
        ("tampered body (amount changed after signing)", "mall", tampered, mall_headers(secret, good)),
        ("signed with the wrong secret", "mall", good, mall_headers("not-the-secret", good)),
        ("no signature", "mall", good, {"Content-Type": "application/json"}),
        ("timestamp an hour old (replayed capture)", "mall", good, mall_headers(secret, good, time.time() - 3600)),
        ("paid event without payment", "mall", malformed, mall_headers(secret, malformed)),
        ("body over 64 KiB", "mall", b"{" + b" " * 70_000 + b"}", mall_headers(secret, b"{}")),
        ("channel the hub does not know", "nosuchshop", good, mall_headers(secret, good)),
    ]


def dlq_depths(runtime) -> dict[str, int]:
    import boto3

    sqs = boto3.client("sqs", endpoint_url=runtime.endpoint_url, region_name=runtime.region)
    depths = {}
    for name, url in sorted(runtime.resources.queue_urls.items()):
        if name.endswith("-dlq") or runtime.topology.queue(name).is_dead_letter_only:
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
            depths[name] = int(attrs["Attributes"]["ApproximateNumberOfMessages"])
    return depths


def wait_for_deliveries(runtime, inboxes, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runtime.wait_until_idle(timeout=timeout_s)
        if all(inbox.fail_next == 0 for inbox in inboxes.values()):
            time.sleep(0.5)
            runtime.wait_until_idle(timeout=timeout_s)
            return
        time.sleep(0.5)
    raise TimeoutError("deliveries did not settle")


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "now"
    return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def run_demo(config: HubConfig, port: int = 0, out=print) -> bool:
    from infra.local.runtime import LocalRuntime

    receiver, config, paths = receiver_for(config)
    receiver.start()
    inboxes = by_subscriber(receiver, paths)
    receiver.fail(paths["wms"], times=WMS_OUTAGE_PUSHES)
    secret = mall_secret(config)
    rng = random.Random(SEED)  # noqa: S311 - a reproducible shuffle, not a secret
    checks: list[tuple[str, bool]] = []
    try:
        out("Starting the hub locally (moto as the embedded AWS, one worker process per function)...")
        for old in FUNCTION_LOGS.glob("*.log"):
            old.unlink()
        with LocalRuntime(config, port=port, function_logs=FUNCTION_LOGS) as runtime:
            out(f"  API {runtime.api_url}   embedded AWS {runtime.endpoint_url}")
            out(f"  function logs (JSON, as CloudWatch would hold them): {FUNCTION_LOGS.relative_to(REPO_ROOT)}/")
            traffic = shop_traffic(secret, rng)
            started = time.monotonic()

            def send(item: tuple[str, bytes]) -> Sent:
                label, body = item
                status, text = http("POST", f"{runtime.api_url}/webhooks/mall", body, mall_headers(secret, body))
                return Sent(label, status, text)

            with ThreadPoolExecutor(max_workers=4) as pool:
                sent = list(pool.map(send, traffic))
            rejected = [(label, *http("POST", f"{runtime.api_url}/webhooks/{channel}", body, headers))
                        for label, channel, body, headers in bad_requests(secret)]
            wait_for_deliveries(runtime, inboxes)
            elapsed = time.monotonic() - started

            token = {"Authorization": f"Bearer {config.ops_token}"}
            orders: dict[str, tuple[Story, dict | None]] = {}
            for story in load_stories("mall"):
                status, text = http("GET", f"{runtime.api_url}/orders?channel=mall&channel_order_id={story.order_no}",
                                    headers=token)
                orders[story.order_no] = (story, json.loads(text) if status == 200 else None)
            unauthorised, _ = http("GET", f"{runtime.api_url}/orders?channel=mall&channel_order_id=x")
            sample = orders["M20261118006"][1]
            if sample is None:
                raise RuntimeError("the sample order M20261118006 was not stored")
            _, timeline_text = http("GET", f"{runtime.api_url}/orders/{sample['order_id']}/timeline", headers=token)
            timeline = json.loads(timeline_text)
            dlqs = dlq_depths(runtime)
            errors = dict(runtime.errors)

        accepted = Counter(s.status for s in sent)
        out("")
        out(f"Sent {len(sent)} signed webhooks ({len(sent) - len({label for label, _ in traffic})} of them "
            f"repeats), shuffled across and within orders: {dict(accepted)}; settled in {elapsed:.1f} s")
        checks.append(("every genuine webhook acknowledged 200", accepted == Counter({200: len(sent)})))

        out("")
        out("Orders (GET /orders?channel=mall&channel_order_id=...):")
        out(f"  {'order':<14} {'status':<17} {'payment':<19} {'expected':<10} story")
        for no, (story, order) in orders.items():
            ok = order is not None and order["status"] == story.expect["status"] \
                and order["payment_status"] == story.expect["payment_status"]
            checks.append((f"{no} ends {story.expect['status']}", ok))
            shown = order["status"] if order else "MISSING"
            payment = order["payment_status"] if order else "-"
            out(f"  {no:<14} {shown:<17} {payment:<19} {'ok' if ok else 'WRONG':<10} {story.story}")
        by_status = Counter(o["status"] for _, o in orders.values() if o)
        out(f"  by status: {dict(sorted(by_status.items()))}")

        out("")
        out("Rejected, and nothing stored for them:")
        for label, status, body in rejected:
            message = json.loads(body).get("message", body) if body.startswith("{") else body
            out(f"  {status}  {label:<45} {message}")
        expected_codes = [401, 401, 401, 401, 400, 413, 404]
        checks.append(("each bad request refused with its 4xx", [s for _, s, _ in rejected] == expected_codes))
        checks.append(("ops API refuses a request without token", unauthorised == 401))

        out("")
        out("Domain events pushed to subscribers (signed, Idempotency-Key = event id):")
        out(f"  {'subscriber':<10} {'delivered':>9} {'attempts':>9} {'refused by it':>14} {'duplicates':>11}")
        for name, inbox in inboxes.items():
            out(f"  {name:<10} {inbox.delivered:>9} {inbox.attempts:>9} {inbox.failures_served:>14} "
                f"{inbox.duplicates:>11}")
        out(f"  the WMS was down for its first {WMS_OUTAGE_PUSHES} pushes; those were retried with backoff")
        published = inboxes["crm"].delivered  # the CRM subscribes to every order event
        out(f"  domain events published: {published}")
        checks.append(("no subscriber received an event twice", all(i.duplicates == 0 for i in inboxes.values())))
        checks.append(("no signature refused by a subscriber", all(i.bad_signatures == 0 for i in inboxes.values())))
        checks.append(("WMS outage recovered", inboxes["wms"].failures_served == WMS_OUTAGE_PUSHES))
        published_per_order = sum(o["version"] + 1 for _, o in orders.values() if o)
        checks.append(("one event per order change, none lost", published == published_per_order))

        out("")
        out(f"Dead-letter queues: {dlqs}")
        checks.append(("every DLQ empty", not any(dlqs.values())))
        out(f"Function errors (retried): {errors or 'none'}")

        out("")
        out(f"Timeline of {sample['channel_order_id']} ({sample['order_id']}):")
        for stage in timeline["status_flow"]["stages"]:
            out(f"  {stage['entered_at']}  {stage['stage']:<16} {_duration(stage['seconds_in_stage'])}")
        out(f"  system event log: {len(timeline['event_log'])} entries, "
            f"{Counter(e['outcome'] for e in timeline['event_log'])}")
    finally:
        receiver.stop()

    out("")
    failed = [name for name, ok in checks if not ok]
    out(f"Checks: {len(checks) - len(failed)} passed, {len(failed)} failed" + (f": {failed}" if failed else ""))
    return not failed


def main(argv: list[str] | None = None) -> int:
    port = int(os.environ.get("ORDERHUB_DEMO_PORT", "0"))
    return 0 if run_demo(load_config(), port=port) else 1


if __name__ == "__main__":
    raise SystemExit(main())
