"""`orderhub replay`: re-feed stored channel requests from the order event log (ING-8).

Every accepted event is logged in the order-events table with the request body and kept
headers as received (`EventLogEntry.raw_body`, `raw_headers`). Replay sends chosen entries
to the intake queue again as `IntakeMessage`s with `replay_of = "<order_id>#<event_key>"`;
the status mapper parses them with today's channel module and configuration.

Choosing entries:
- `--order ORDER_ID`: a Query on the order's partition (cheap);
- `--channel X [--since ISO] [--until ISO]`: a Scan of the whole table with a filter on the
  entry's channel (the reporter: the module that parses it, `import` for imported files) and
  on `received_at` (the hub clock: since <= received_at < until), paginated. A Scan reads, and
  bills, every item of the table whatever the filter keeps: fine for an operator tool run
  now and then, not for anything scheduled;
- `--outcome unmapped` (any outcome) narrows either to the entries that ended so.

Replaying is idempotent: the mapper's log key (event time + event id) makes a re-fed event a
duplicate, and the merge only writes an order whose facts changed. A replay therefore changes
something only where today's mapping says more than the one that logged the entry - the
repair case: a code that was unmapped (a gap) now has a row in the table, or a field rule now
renames a drifted field. Entries whose bodies are the same request (one pulled page holding
several orders, or a multi-event webhook) are sent once.

`--dry-run` lists what would be re-fed and sends nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from infra.cli.common import aws_client, aws_options, intake_sender, physical, stage_config
from orderhub.channels import UnknownChannel, get_channel
from orderhub.clock import utc_iso
from orderhub.imports import send_messages
from orderhub.intake_batch import BatchSender
from orderhub.models.envelope import IntakeMessage
from orderhub.store.orders import WAYBILL_PREFIX, EventLogEntry, entry_from_item


def register(sub: Any) -> None:
    rep = sub.add_parser("replay", help="re-feed logged channel requests to the status mapper (idempotent)")
    rep.add_argument("--channel", help="entries reported by this channel module (a Scan of the event log)")
    rep.add_argument("--order", help="entries of this hub order id (a Query)")
    rep.add_argument("--since", help="received at or after (ISO; without offset: business time zone)")
    rep.add_argument("--until", help="received before (ISO; without offset: business time zone)")
    rep.add_argument("--outcome", help="only entries logged with this outcome, e.g. unmapped")
    rep.add_argument("--dry-run", action="store_true", help="list what would be re-fed, send nothing")
    aws_options(rep)
    rep.set_defaults(func=_replay)


def _replay(args: argparse.Namespace) -> int:
    from infra.topology import ORDER_EVENTS_TABLE
    from orderhub.clock import SystemClock

    if not (args.channel or args.order):
        print("replay needs --channel or --order", file=sys.stderr)
        return 2
    config = stage_config(args)
    tz = config.business_timezone
    selection = Selection(channel=args.channel, order_id=args.order, outcome=args.outcome,
                          since=utc_bound(args.since, tz) if args.since else None,
                          until=utc_bound(args.until, tz) if args.until else None)
    if not args.order:
        print("scanning the whole event log (billed per item read, whatever the filter keeps)…", file=sys.stderr)
    entries = list(select_entries(aws_client(args, "dynamodb"), physical(config, ORDER_EVENTS_TABLE), selection))
    plan = plan_replay(entries, SystemClock().now())
    print(render_plan(plan))
    if args.dry_run:
        print(f"dry run: {len(plan.messages)} requests would be re-fed ({len(entries)} log entries)")
        return 0
    result = send_plan(plan, intake_sender(args, config))
    print(f"re-fed {result.sent} of {result.planned} requests ({len(entries)} log entries)"
          + (f"; {result.failure}" if result.failure else ""))
    return 1 if result.failure else 0


@dataclass(frozen=True)
class Selection:
    channel: str | None = None
    order_id: str | None = None
    since: str | None = None  # UTC ISO, inclusive
    until: str | None = None  # UTC ISO, exclusive
    outcome: str | None = None

    def keeps(self, entry: EventLogEntry) -> bool:
        return ((self.channel is None or entry.channel == self.channel)
                and (self.since is None or entry.received_at >= self.since)
                and (self.until is None or entry.received_at < self.until)
                and (self.outcome is None or entry.outcome == self.outcome))


def utc_bound(text: str, business_tz: str) -> str:
    """An operator's time (ISO with offset, or without: business time zone) as stored: UTC ISO."""
    at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo(business_tz))
    return utc_iso(at)


def select_entries(client: Any, table: str, selection: Selection) -> Iterator[EventLogEntry]:
    """The chosen log entries: a Query for one order, else a filtered, paginated Scan."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    filters = []
    for attribute, op, placeholder, value in (("channel", "=", "channel", selection.channel),
                                              ("received_at", ">=", "since", selection.since),
                                              ("received_at", "<", "until", selection.until),
                                              ("outcome", "=", "outcome", selection.outcome)):
        if value is not None:
            names[f"#{attribute}"] = attribute
            values[f":{placeholder}"] = {"S": value}
            filters.append(f"#{attribute} {op} :{placeholder}")
    kwargs: dict[str, Any] = {"TableName": table}
    if selection.order_id is not None:
        names["#order"] = "order_id"
        values[":order"] = {"S": selection.order_id}
        kwargs["KeyConditionExpression"] = "#order = :order"
        read = client.query
    else:
        # Waybill links (`waybill#...` items) have no channel: the channel filter leaves them out.
        if selection.channel is None:
            raise ValueError("a replay needs --order or --channel")
        read = client.scan
    if filters:
        kwargs["FilterExpression"] = " AND ".join(filters)
    kwargs["ExpressionAttributeNames"] = names
    kwargs["ExpressionAttributeValues"] = values
    while True:
        reply = read(**kwargs)
        for item in reply.get("Items", []):
            if "channel" in item and "event_key" in item and not item["order_id"]["S"].startswith(WAYBILL_PREFIX):
                entry = entry_from_item(item)
                if selection.keeps(entry):
                    yield entry
        if "LastEvaluatedKey" not in reply:
            return
        kwargs["ExclusiveStartKey"] = reply["LastEvaluatedKey"]


@dataclass
class ReplayPlan:
    """The messages to send (one per distinct stored request) and what was left out, with why."""

    messages: list[tuple[EventLogEntry, IntakeMessage]] = field(default_factory=list)
    same_request: list[EventLogEntry] = field(default_factory=list)  # body already in the plan
    skipped: list[tuple[EventLogEntry, str]] = field(default_factory=list)


def replay_of(entry: EventLogEntry) -> str:
    return f"{entry.order_id}#{entry.event_key}"


def plan_replay(entries: Sequence[EventLogEntry] | Iterator[EventLogEntry], now: datetime) -> ReplayPlan:
    plan = ReplayPlan()
    seen: set[str] = set()
    received_at = utc_iso(now)
    for entry in sorted(entries, key=lambda e: (e.received_at, e.order_id, e.event_key)):
        if not entry.raw_body:
            plan.skipped.append((entry, "no request body stored"))
            continue
        try:
            get_channel(entry.channel)
        except UnknownChannel:
            plan.skipped.append((entry, f"no channel module {entry.channel!r}"))
            continue
        digest = hashlib.sha256(entry.channel.encode() + b"\x1f" + entry.raw_body).hexdigest()
        if digest in seen:
            plan.same_request.append(entry)
            continue
        seen.add(digest)
        plan.messages.append((entry, IntakeMessage.wrap(
            entry.channel, received_at, f"replay:{digest[:16]}", "", dict(entry.raw_headers), entry.raw_body,
            replay_of=replay_of(entry))))
    return plan


@dataclass(frozen=True)
class ReplayResult:
    planned: int
    sent: int
    failure: str = ""  # why sending stopped; the rest was not sent


def send_plan(plan: ReplayPlan, sender: BatchSender, sleep: Callable[[float], None] = time.sleep) -> ReplayResult:
    items = [(i, message) for i, (_, message) in enumerate(plan.messages)]
    sent, stopped_at, reason = send_messages(items, sender, sleep)
    failure = ""
    if stopped_at is not None:
        entry = plan.messages[stopped_at][0]
        failure = f"stopped at {replay_of(entry)}: {reason}"
    return ReplayResult(planned=len(plan.messages), sent=sent, failure=failure)


def render_plan(plan: ReplayPlan) -> str:
    lines = [f"{'order_id':<30} {'event_key':<60} {'channel':<12} {'outcome':<12} received_at"]
    for entry, _ in plan.messages:
        lines.append(f"{entry.order_id:<30} {entry.event_key:<60} {entry.channel:<12} {entry.outcome:<12} "
                     f"{entry.received_at}")
    for entry in plan.same_request:
        lines.append(f"{entry.order_id:<30} {entry.event_key:<60} {entry.channel:<12} {entry.outcome:<12} "
                     "(same request as one above: sent once)")
    for entry, why in plan.skipped:
        lines.append(f"{entry.order_id:<30} {entry.event_key:<60} {entry.channel:<12} {entry.outcome:<12} "
                     f"skipped: {why}")
    return "\n".join(lines)
