"""`orderhub demo`: a merchant's multi-channel day through the hub, locally, over real HTTP.

Starts the local runtime (moto as the embedded AWS), stand-ins for the WMS, ERP and CRM, and
embedded Taobao, JD and Pinduoduo servers that sign and check requests as the platforms do.
Sends the sample stories of every push channel (mall, Douyin, Youzan, Shopify, WooCommerce, the
warehouse and kuaidi100) signed as each platform signs, shuffled and a third of them twice; adds
the requests a hub must refuse and a payload with a field the schema does not know; fires the
5-minute pull twice (the first meets a Taobao outage); imports a CSV with bad rows and a good one;
makes the WMS fail its first pushes. Then the money day (infra/demo/money.py): the mall's orders are
provider-confirmed, so the sample ones get their WeChat Pay and Alipay notifications (one is left without,
for payment_unconfirmed), mini-program orders are paid, refunded, duplicated, delayed and forged through the
local WeChat Pay and Alipay, finance records and confirms a bank transfer, and the scheduler's clock moves
until the money exceptions are raised. Then the operations day (infra/demo/operations.py). Prints orders by
channel and status, rejections, drift, deliveries, DLQs, a traceback, the money section and the operations,
and checks it all. Exit status 0 only if every check holds.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

from infra.config import REPO_ROOT, HubConfig, config_path, load_config
from infra.demo.traffic import (
    EVENTS_DIR,
    ChannelRequest,
    ChannelStory,
    encode,
    load_channel_stories,
    load_stories,
    mall_headers,
    mall_secret,
    signed_request,
)
from infra.standins.downstream import by_subscriber, receiver_for

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


SALES_CHANNELS = ("mall", "douyin", "youzan", "shopify", "woocommerce")
LOGISTICS_CHANNELS = ("wms", "kuaidi100")
PULLED = ("taobao", "jd", "pdd")
GENERATED_PER_PLATFORM = 30
IMPORT_CHANNEL = "store-sh-01"
IMPORT_FILE = "store-sh-01_2026-11-19.csv"
IMPORT_WITH_ERRORS = "store-sh-01_2026-11-20_with-errors.csv"
IMPORTED_ORDERS = {"SH01-20261118-0001": "COMPLETED"}
EXPECTED_FIELDS = ("status", "payment_status", "fulfillment_status", "logistics_status", "aftersale_status")


def push_traffic(stories: list[ChannelStory], rng: random.Random) -> list[tuple[str, ChannelRequest]]:
    """Every story's requests, shuffled across and within orders, a third of them sent twice."""
    sends = [(f"{story.name}#{i}", request) for story in stories for i, request in enumerate(story.requests)]
    again = [s for i, s in enumerate(sends) if i % 3 == 0]
    merged = sends + again
    rng.shuffle(merged)
    return merged


def bad_requests(config: HubConfig) -> list[tuple[str, str, bytes, dict[str, str]]]:
    story = load_stories("mall")[0]
    secret = mall_secret(config)
    good = encode(story.events[1])
    tampered = good.replace(b'"amount":25800', b'"amount":1')
    malformed = encode({**story.events[1], "order": {"order_no": story.order_no}})
    douyin = load_channel_stories("douyin")[0].requests[0]
    d_headers, d_body = signed_request(config, douyin)
    shopify = load_channel_stories("shopify")[0].requests[0]
    s_headers, s_body = signed_request(config, shopify, secret="an-old-secret-no-longer-valid")  # noqa: S106
    k100 = load_channel_stories("kuaidi100")[0].requests[-1]
    k_headers, k_body = signed_request(config, k100)
    # Signed correctly, so the parser is reached, and still refused: what a broken or hostile client sends.
    deep = good[:-1] + b',"note":' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}"
    twice = good[:-1] + b',"event_id":"evt_someone_else"}'
    superscript = {**mall_headers(secret, good), "X-Mall-Timestamp": "\u00b9\u00b2\u00b3\u00b9"}  # ¹²³¹
    order_message = load_channel_stories("douyin")[0].requests[1]
    future = json.loads(order_message.payload)
    for message in future:
        data = json.loads(message["data"])
        data.update({key: 9_999_999_999 for key in data if key.endswith("_time")})  # the year 2286
        message["data"] = json.dumps(data)
    f_headers, f_body = signed_request(config, ChannelRequest("douyin", order_message.headers, encode(future)))
    return [
        ("mall: body changed after signing", "mall", tampered, mall_headers(secret, good)),
        ("mall: signed with the wrong secret", "mall", good, mall_headers("not-the-secret", good)),
        ("mall: no signature", "mall", good, {"Content-Type": "application/json"}),
        ("mall: timestamp an hour old (replayed capture)", "mall", good,
         mall_headers(secret, good, time.time() - 3600)),
        ("mall: paid event without payment", "mall", malformed, mall_headers(secret, malformed)),
        ("mall: body over 64 KiB", "mall", b"{" + b" " * 70_000 + b"}", mall_headers(secret, b"{}")),
        ("douyin: one bit of the body flipped", "douyin", bytes([d_body[0] ^ 1]) + d_body[1:], d_headers),
        ("shopify: HMAC from a rotated-out secret", "shopify", s_body, s_headers),
        ("kuaidi100: sign stripped", "kuaidi100", k_body.split(b"&sign=")[0], k_headers),
        ("taobao is pulled: no webhook", "taobao", good, {}),
        ("a channel the hub does not know", "nosuchshop", good, mall_headers(secret, good)),
        ("mall: signed, nested 40 levels deep", "mall", deep, mall_headers(secret, deep)),
        ("mall: signed, event_id given twice", "mall", twice, mall_headers(secret, twice)),
        ("mall: timestamp in superscript digits", "mall", good, superscript),
        ("mall: timestamp 5 minutes ahead (replayable)", "mall", good, mall_headers(secret, good, time.time() + 300)),
        ("douyin: signed, an order dated 2286", "douyin", f_body, f_headers),
    ]


def drift_sample(config: HubConfig) -> tuple[bytes, dict[str, str]]:
    """A Douyin push carrying a field the schema does not know (`order_id_suffix`): accepted, reported."""
    request = load_channel_stories("douyin")[0].requests[0]
    messages = json.loads(request.payload)
    for message in messages:
        data = json.loads(message["data"]) if isinstance(message["data"], str) else message["data"]
        data["order_id_suffix"] = "A"
        message["data"] = json.dumps(data, ensure_ascii=False) if isinstance(message["data"], str) else data
        message["msg_id"] = str(message["msg_id"]) + "-drift"
    payload = json.dumps(messages, ensure_ascii=False, separators=(",", ":")).encode()
    headers, body = signed_request(config, ChannelRequest("douyin", request.headers, payload))
    return body, headers


def _shifted(value, delta: timedelta):
    """A platform document with every platform time ("yyyy-MM-dd HH:mm:ss", China time) moved by delta."""
    from infra.standins.platform_orders import FORMAT

    if isinstance(value, dict):
        return {k: _shifted(v, delta) for k, v in value.items()}
    if isinstance(value, list):
        return [_shifted(v, delta) for v in value]
    if isinstance(value, str) and len(value) == 19:
        try:
            return (datetime.strptime(value, FORMAT) + delta).strftime(FORMAT)
        except ValueError:
            return value
    return value


def load_platforms(platforms: dict, rng: random.Random) -> dict[str, list[dict]]:
    """Each fake platform gets the final snapshot of every story plus a generated day of orders."""
    from infra.standins.platform_orders import generate_orders, modified_of

    stories: dict[str, list[dict]] = {}
    for name, fake in platforms.items():
        shop = next(iter(fake.sessions.values()))
        stories[name] = []
        for i, path in enumerate(sorted((EVENTS_DIR / name / "stories").glob("*.json"))):
            data = json.loads(path.read_text(encoding="utf-8"))
            final = data["snapshots"][-1]
            # The story happened on its own dates; move its clock so it ended a few hours ago,
            # inside the first pull's look-back, keeping every interval within it.
            delta = datetime.now(UTC) - timedelta(hours=3, minutes=i) - modified_of(name, final)
            fake.put(_shifted(final, delta), shop=shop)
            stories[name].append({"name": f"{name}/{path.stem}", "story": data["story"], "expect": data["expect"]})
        start = datetime.now(UTC) - timedelta(days=1, minutes=10)
        fake.load(generate_orders(name, GENERATED_PER_PLATFORM, start, seed=rng.randrange(1000)), shop=shop)
    return stories


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


def _orders_by_channel(runtime) -> dict[str, Counter]:
    """Every stored order, counted by channel and status (read straight from the embedded table)."""
    import boto3

    dynamodb = boto3.client("dynamodb", endpoint_url=runtime.endpoint_url, region_name=runtime.region)
    table = runtime.topology.physical_name(runtime.config.stage, "orders")
    counts: dict[str, Counter] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ProjectionExpression="ch, st"):
        for item in page["Items"]:
            counts.setdefault(item["ch"]["S"], Counter())[item["st"]["S"]] += 1
    return counts


def _matches(order: dict | None, expect: dict) -> bool:
    return order is not None and all(order.get(k) == expect[k] for k in EXPECTED_FIELDS if k in expect)


def run_demo(config: HubConfig, port: int = 0, out=print) -> bool:
    from infra.demo import money, operations
    from infra.local.clock import ManualClock
    from infra.local.runtime import LocalRuntime
    from infra.standins.embedded import embedded_platforms, stop_platforms
    from infra.standins.robots import robots_for
    from orderhub.store.health import ChannelHealth

    receiver, config, paths = receiver_for(operations.demo_config(config))
    robots, config = robots_for(config)
    receiver.start()
    robots.start()
    inboxes = by_subscriber(receiver, paths)
    receiver.fail(paths["wms"], times=WMS_OUTAGE_PUSHES)
    rng = random.Random(SEED)  # noqa: S311 - a reproducible shuffle, not a secret
    platforms, config = embedded_platforms(config)
    pull_stories = load_platforms(platforms, rng)
    checks: list[tuple[str, bool]] = []
    try:
        out("Starting the hub locally (moto as the embedded AWS, one worker process per function)...")
        for old in FUNCTION_LOGS.glob("*.log"):
            old.unlink()
        # The scheduler's clock only moves when the demo moves it (the operations part below).
        with LocalRuntime(config, port=port, function_logs=FUNCTION_LOGS, clock=ManualClock()) as runtime:
            out(f"  API {runtime.api_url}   embedded AWS {runtime.endpoint_url}")
            for name, fake in platforms.items():
                out(f"  embedded {name:<6} {fake.url}")
            out(f"  function logs (JSON, as CloudWatch would hold them): {FUNCTION_LOGS.relative_to(REPO_ROOT)}/")
            started = time.monotonic()

            def send(item: tuple[str, ChannelRequest]) -> Sent:
                label, request = item
                headers, body = signed_request(config, request)
                status, text = http("POST", f"{runtime.api_url}/webhooks/{request.channel}", body, headers)
                return Sent(f"{request.channel}:{label}", status, text)

            stories = {ch: load_channel_stories(ch) for ch in SALES_CHANNELS + LOGISTICS_CHANNELS}
            everything = [st for group in stories.values() for st in group]
            traffic = push_traffic(everything, rng)
            # Carrier callbacks come after the parcel has a waybill; the rest arrives in any order.
            first = [t for t in traffic if t[1].channel != "kuaidi100"]
            later = [t for t in traffic if t[1].channel == "kuaidi100"]
            out(f"Sending {len(traffic)} signed webhooks of {len(everything)} order stories over "
                f"{len(SALES_CHANNELS + LOGISTICS_CHANNELS)} channels, shuffled, a third of them twice...")
            with ThreadPoolExecutor(max_workers=4) as pool:
                sent = list(pool.map(send, first))
                runtime.wait_until_idle(timeout=120)
                sent += list(pool.map(send, later))
            drift_body, drift_headers = drift_sample(config)
            drift_status, _ = http("POST", f"{runtime.api_url}/webhooks/douyin", drift_body, drift_headers)
            rejected = [(label, *http("POST", f"{runtime.api_url}/webhooks/{channel}", body, headers))
                        for label, channel, body, headers in bad_requests(config)]

            out("Pulling Taobao, JD and Pinduoduo (the 5-minute schedule, fired twice; the first run meets "
                "a Taobao outage)...")
            outage_start = datetime.now(UTC) - timedelta(hours=20)
            platforms["taobao"].fail_window(outage_start, outage_start + timedelta(hours=1))
            schedule_event = {"source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}}
            poll_runs = [runtime.invoke("channel_poller", schedule_event)]
            platforms["taobao"].heal()
            poll_runs.append(runtime.invoke("channel_poller", schedule_event))
            imported = import_sample(config_path())
            wait_for_deliveries(runtime, inboxes)
            elapsed = time.monotonic() - started

            token = {"Authorization": f"Bearer {config.ops_token}"}

            def order_of(channel: str, number: str) -> dict | None:
                status, text = http("GET", f"{runtime.api_url}/orders?channel={channel}&channel_order_id={number}",
                                    headers=token)
                return json.loads(text) if status == 200 else None

            results = [(st.name, st.story, st.expect, order_of(st.expect["channel"], st.expect["channel_order_id"]))
                       for st in everything]
            results += [(st["name"], st["story"], st["expect"],
                         order_of(st["expect"]["channel"], st["expect"]["channel_order_id"]))
                        for group in pull_stories.values() for st in group]
            imported_orders = {number: order_of(IMPORT_CHANNEL, number) for number in IMPORTED_ORDERS}
            by_channel = _orders_by_channel(runtime)
            unauthorised, _ = http("GET", f"{runtime.api_url}/orders?channel=mall&channel_order_id=x")
            two_track = next(r for r in results if r[0] == "wms/ship_requested_never_outbound")[3] \
                or {"order_id": "", "channel_order_id": "?"}
            _, timeline_text = http("GET", f"{runtime.api_url}/orders/{two_track['order_id']}/timeline", headers=token)
            timeline = json.loads(timeline_text) if timeline_text.startswith("{") else {}
            health = ChannelHealth(
                client=__import__("boto3").client("dynamodb", endpoint_url=runtime.endpoint_url,
                                                  region_name=runtime.region),
                table=runtime.topology.physical_name(config.stage, "channel-health")).entries()
            dlqs = dlq_depths(runtime)
            errors = dict(runtime.errors)
            operations_out: list[str] = []
            # Before any scheduled run of the SLA watchdog: the sample orders' notifications come first, and the
            # money exceptions it raises are among those the exceptions day shows.
            money.money_day(runtime, http, config, str(config_path()), operations_out.append, checks,
                            finance=inboxes["finance"], stories=everything)
            operations.people_subscribers(robots, config, operations_out.append, checks)
            operations.subscriber_outage(runtime, http, receiver, paths, inboxes, robots, config, str(config_path()),
                                         operations_out.append, checks)
            operations.exceptions_day(runtime, http, robots, config, str(config_path()), operations_out.append,
                                      checks)
    finally:
        receiver.stop()
        robots.stop()
        stop_platforms(platforms)

    accepted = Counter(s.status for s in sent)
    out("")
    out(f"Sent {len(sent)} signed webhooks ({len(sent) - len({s.label for s in sent})} of them repeats): "
        f"{dict(accepted)}; everything settled in {elapsed:.1f} s")
    checks.append(("every genuine webhook acknowledged 2xx", all(200 <= s.status < 300 for s in sent)))

    out("")
    out("Orders by channel and status (all channels, pulled ones included):")
    statuses = sorted({st for c in by_channel.values() for st in c})
    out("  " + f"{'channel':<12}" + "".join(f"{st[:14]:>15}" for st in statuses) + f"{'total':>7}")
    for channel in sorted(by_channel):
        counts = by_channel[channel]
        out("  " + f"{channel:<12}" + "".join(f"{counts.get(st, 0) or '':>15}" for st in statuses)
            + f"{sum(counts.values()):>7}")
    for name in PULLED:
        pulled = sum(by_channel.get(name, Counter()).values())
        want = GENERATED_PER_PLATFORM + len(pull_stories.get(name, []))
        checks.append((f"every {name} order pulled ({want})", pulled == want))
    runs = [r.get("shops", r) if isinstance(r, dict) else r for r in poll_runs]
    out(f"  pull runs: first {runs[0]}")
    out(f"             then {runs[1]}")

    out("")
    out("Every story ends where it says (GET /orders?channel=...&channel_order_id=...):")
    for name, story, expect, order in results:
        ok = _matches(order, expect)
        checks.append((f"{name} ends {expect.get('status')}", ok))
        if not ok or name.split("/")[0] in ("wms", "kuaidi100") or name.endswith(("presale_balance_due",)):
            shown = "MISSING" if order is None else " / ".join(str(order.get(k)) for k in EXPECTED_FIELDS[:3])
            out(f"  {'ok  ' if ok else 'WRONG'} {name:<44} {shown:<44} {story[:60]}")
    out(f"  {sum(1 for *_, e, o in results if _matches(o, e))} of {len(results)} stories as expected "
        "(logistics stories and any mismatch shown above)")

    out("")
    out(f"CSV import (orderhub import FILE --channel {IMPORT_CHANNEL}; an S3 drop runs the same code):")
    for name, code, printed in imported:
        lines = printed.strip().splitlines()
        out(f"  {name}: exit {code}")
        for line in lines[:6]:
            out(f"    {line}")
        if len(lines) > 6:
            out(f"    ... ({len(lines) - 6} more lines)")
    (_, bad_code, _), (_, good_code, _) = imported
    checks.append(("a CSV with bad rows is refused whole, every row named", bad_code == 1))
    checks.append(("a valid CSV is imported", good_code == 0))
    for number, expected_status in IMPORTED_ORDERS.items():
        order = imported_orders[number]
        checks.append((f"imported order {number} ends {expected_status}",
                       order is not None and order["status"] == expected_status))

    out("")
    out("Rejected, and nothing stored for them:")
    for label, status, body in rejected:
        message = body
        if body.startswith("{"):
            parsed = json.loads(body)
            message = parsed.get("message") or parsed.get("msg") or body
        out(f"  {status}  {label:<48} {str(message)[:70]}")
    expected_codes = [401, 401, 401, 401, 400, 413, 401, 401, 401, 404, 404, 400, 400, 401, 401, 400]
    checks.append(("each bad request refused with its 4xx", [s for _, s, _ in rejected] == expected_codes))
    checks.append(("ops API refuses a request without token", unauthorised == 401))

    out("")
    out("Schema drift and mapping gaps (orderhub drift report / gaps report):")
    for entry in health:
        out(f"  {entry.channel:<10} {entry.kind:<6} {entry.key:<40} seen {entry.count}x")
    checks.append(("a new Douyin field accepted and reported as drift",
                   drift_status == 200 and any(e.kind == "drift" and "order_id_suffix" in e.key for e in health)))

    out("")
    out("Domain events pushed to subscribers (signed, Idempotency-Key = event id):")
    out(f"  {'subscriber':<10} {'delivered':>9} {'attempts':>9} {'refused by it':>14} {'duplicates':>11}")
    for name, inbox in inboxes.items():
        out(f"  {name:<10} {inbox.delivered:>9} {inbox.attempts:>9} {inbox.failures_served:>14} "
            f"{inbox.duplicates:>11}")
    out(f"  the WMS was down for its first {WMS_OUTAGE_PUSHES} pushes; those were retried with backoff")
    checks.append(("no subscriber received an event twice", all(i.duplicates == 0 for i in inboxes.values())))
    checks.append(("no signature refused by a subscriber", all(i.bad_signatures == 0 for i in inboxes.values())))
    checks.append(("WMS outage recovered", inboxes["wms"].failures_served == WMS_OUTAGE_PUSHES))

    out("")
    out(f"Dead-letter queues: {dlqs}")
    checks.append(("every DLQ empty", not any(dlqs.values())))
    out(f"Function errors (retried): {errors or 'none'}")

    out("")
    flow = timeline.get("status_flow", {})
    out(f"Traceback of {two_track['channel_order_id']} "
        "(the shop clicked 'shipped'; the warehouse never scanned it out):")
    for stage in flow.get("stages", []):
        out(f"  {stage['entered_at']}  {stage['stage']:<16} {_duration(stage['seconds_in_stage'])}")
    out(f"  now: {flow.get('status')}, waiting for {flow.get('waiting_for') or '-'}")
    out(f"  system event log: {len(timeline.get('event_log', []))} entries, "
        f"{dict(Counter(e['outcome'] for e in timeline.get('event_log', [])))}")
    checks.append(("a ship request alone never makes an order SHIPPED", flow.get("status") == "PAID"))

    for line in operations_out:
        out(line)

    out("")
    failed = [name for name, ok in checks if not ok]
    out(f"Checks: {len(checks) - len(failed)} passed, {len(failed)} failed" + (f": {failed}" if failed else ""))
    return not failed


def import_sample(config_path: Path) -> list[tuple[str, int, str]]:
    """The sample CSVs of events/import through `orderhub import` (the code the S3 drop runs too).

    The file with errors first (every problem reported, nothing sent), then the good one.
    Returns (file, exit code, the printed report) for each.
    """
    import contextlib
    import io

    from infra.cli.commands import run as cli  # the operator commands, as an operator runs them

    runs = []
    for name in (IMPORT_WITH_ERRORS, IMPORT_FILE):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            code = cli(["import", str(EVENTS_DIR / "import" / name), "--channel", IMPORT_CHANNEL,
                        "--config", str(config_path)])
        runs.append((name, code, printed.getvalue()))
    return runs


def main(argv: list[str] | None = None) -> int:
    port = int(os.environ.get("ORDERHUB_DEMO_PORT", "0"))
    return 0 if run_demo(load_config(), port=port) else 1


if __name__ == "__main__":
    raise SystemExit(main())
