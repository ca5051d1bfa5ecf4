"""`orderhub dlq list | show | redrive | purge`: the stage's dead-letter queues, on AWS or on the local hub.

Plain boto3: with normal credentials they act on AWS; with AWS_ENDPOINT_URL (or --endpoint-url) set
to what `orderhub run` prints, on its embedded moto.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from infra.cli.common import aws_client, aws_options, stage_config
from orderhub.bus.stream_range import FailedStreamBatch

STREAM_RETENTION_S = 24 * 3600  # DynamoDB Streams keeps records this long


def register(sub: Any) -> None:
    dlq = sub.add_parser("dlq", help="dead-letter queues: list, show, redrive, purge")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    for name, func, text in (("list", _dlq_list, "every DLQ of the stage: depth and oldest message age"),
                             ("show", _dlq_show, "the messages of one DLQ: when, how often tried, why parked"),
                             ("redrive", _dlq_redrive, "move messages from a DLQ back to its source queue "
                                                       "(publisher-failures: re-read from the orders stream)"),
                             ("purge", _dlq_purge, "delete every message of one DLQ (asks first)")):
        p = dlq_sub.add_parser(name, help=text)
        aws_options(p)
        p.set_defaults(func=func)
        if name != "list":
            p.add_argument("queue", help="the DLQ: logical name (sub-wms-dlq), physical name or URL")
        if name == "show":
            p.add_argument("--max", type=int, default=20, help="show at most this many messages (default 20)")
            p.add_argument("--body", action="store_true",
                           help="print whole bodies (intake bodies are channel payloads: they hold personal data)")
        if name == "redrive":
            p.add_argument("--max", type=int, default=None, help="move at most this many messages")
        if name == "purge":
            p.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _sqs(args: argparse.Namespace) -> Any:
    return aws_client(args, "sqs")


def _stage_queues(sqs: Any, prefix: str) -> dict[str, str]:
    urls: dict[str, str] = {}
    for page in sqs.get_paginator("list_queues").paginate(QueueNamePrefix=prefix):
        for url in page.get("QueueUrls", []):
            urls[url.rsplit("/", 1)[-1]] = url
    return urls


def _stage(config: Any) -> tuple[str, set[str]]:
    """The stage's queue-name prefix, and its queues that only ever hold failure records."""
    from infra.topology import build_topology

    topology = build_topology(config.topology_subscribers(), config.business_timezone, config.provider_confirmed())
    prefix = topology.physical_name(config.stage, "")
    return prefix, {prefix + q.name for q in topology.queues if q.is_dead_letter_only}


def _dlq_list(args: argparse.Namespace) -> int:
    prefix, parked = _stage(stage_config(args))
    sqs = _sqs(args)
    rows = []
    for name, url in sorted(_stage_queues(sqs, prefix).items()):
        if not (name.endswith("-dlq") or name in parked):
            continue
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        depth = int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
        age = _oldest_age_s(sqs, url) if depth else None
        rows.append((name.removeprefix(prefix), depth, "-" if age is None else _age(age),
                     "orders-stream (re-read within 24 h)" if name in parked else name.removeprefix(prefix)[:-4]))
    print(f"{'queue':<28} {'depth':>6} {'oldest':>9}  source")
    for queue, depth, oldest, source in rows:
        print(f"{queue:<28} {depth:>6} {oldest:>9}  {source}")
    return 0


def _oldest_age_s(sqs: Any, url: str, limit: int = 100) -> float | None:
    """Age of the oldest of the first `limit` messages (SQS only exposes it as a CloudWatch metric)."""
    messages = peek(sqs, url, limit)
    if not messages:
        return None
    return time.time() - min(int(m["Attributes"]["SentTimestamp"]) for m in messages) / 1000


def peek(sqs: Any, url: str, limit: int) -> list[dict]:
    """Up to `limit` messages with their attributes, oldest first, left in the queue.

    Receiving hides each message for a moment; they are made visible again right away.
    """
    seen: dict[str, dict] = {}
    while len(seen) < limit:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(10, limit - len(seen)),
                                  VisibilityTimeout=30, MessageAttributeNames=["All"],
                                  MessageSystemAttributeNames=["All"]).get("Messages", [])
        fresh = [m for m in got if m["MessageId"] not in seen]
        seen.update({m["MessageId"]: m for m in fresh})
        if not fresh:
            break
    messages = sorted(seen.values(), key=lambda m: int(m["Attributes"].get("SentTimestamp", "0")))
    for i in range(0, len(messages), 10):
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for n, m in enumerate(messages[i:i + 10])])
    return messages


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _dead_letter_queue(args: argparse.Namespace) -> tuple[Any, dict[str, str], str, str, set[str]] | None:
    """(sqs client, the stage's queues, the prefix, the DLQ's physical name, failure-only queues), or None
    after saying why the name is not a dead-letter queue of the stage."""
    prefix, parked = _stage(stage_config(args))
    sqs = _sqs(args)
    queues = _stage_queues(sqs, prefix)
    name = args.queue.rsplit("/", 1)[-1]
    name = name if name.startswith(prefix) else prefix + name
    if name not in queues:
        print(f"no queue {name} under {prefix}*", file=sys.stderr)
        return None
    if not (name.endswith("-dlq") or name in parked):
        print(f"{name} is a work queue, not a dead-letter queue", file=sys.stderr)
        return None
    return sqs, queues, prefix, name, parked


def _dlq_show(args: argparse.Namespace) -> int:
    found = _dead_letter_queue(args)
    if found is None:
        return 2
    sqs, queues, prefix, name, _ = found
    messages = peek(sqs, queues[name], args.max)
    print(f"{name.removeprefix(prefix)}: {len(messages)} message(s) shown, oldest first")
    for m in messages:
        print()
        for line in describe_parked(m, full_body=args.body):
            print(line)
    return 0


def describe_parked(message: dict, *, full_body: bool = False) -> list[str]:
    """What an operator needs to decide on a parked message, without dumping personal data by default."""
    attrs = message.get("Attributes", {})
    sent = int(attrs.get("SentTimestamp", "0")) / 1000
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(sent)) if sent else "?"
    extra = {k: v.get("StringValue", "<binary>") for k, v in (message.get("MessageAttributes") or {}).items()}
    lines = [f"  id {message['MessageId']}  parked {when} ({_age(time.time() - sent)} ago)"
             f"  received {attrs.get('ApproximateReceiveCount', '?')}x"]
    if extra.get("reason"):
        lines.append(f"  reason: {extra.pop('reason')}")
    if extra:
        lines.append("  attributes: " + ", ".join(f"{k}={v}" for k, v in sorted(extra.items()) if k != "raw"))
    body = message.get("Body", "")
    lines.append("  " + (body if full_body else _summary(body)))
    return lines


def _summary(body: str) -> str:
    """An EventBridge event: its type and ids; an intake message: channel and event id; else the size."""
    import json

    try:
        doc = json.loads(body)
    except ValueError:
        return f"body: {len(body)} characters (not JSON; --body prints it)"
    batch = FailedStreamBatch.from_record(doc)
    if batch is not None:
        return batch.describe() + (f"; {_stream_age(batch)}" if batch.failed_at else "")
    if isinstance(doc, dict) and "detail-type" in doc:
        detail = doc.get("detail") or {}
        return (f"{doc['detail-type']} event {detail.get('event_id')} of order {detail.get('order_id')} "
                f"({detail.get('channel')} {detail.get('channel_order_id')}), status {detail.get('status')}")
    if isinstance(doc, dict):
        known = {k: doc[k] for k in ("channel", "event_id", "received_at", "request_id", "key", "title") if k in doc}
        if known:
            return "  ".join(f"{k}={v}" for k, v in known.items()) + "  (--body prints the whole body)"
    return f"body: {len(body)} characters (--body prints it)"


def _stream_age(batch: FailedStreamBatch) -> str:
    """Whether `dlq redrive` can still read the batch: DynamoDB keeps stream records 24 hours."""
    from datetime import datetime

    try:
        failed = datetime.fromisoformat(batch.failed_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return "failure time unknown"
    left = STREAM_RETENTION_S - (time.time() - failed)
    if left <= 0:
        return "past the stream's 24 h retention: the redrive cannot read it (replay the orders instead)"
    return f"on the stream for about {_age(left)} more: redrive it before then"


def _dlq_purge(args: argparse.Namespace) -> int:
    found = _dead_letter_queue(args)
    if found is None:
        return 2
    sqs, queues, prefix, name, _ = found
    url = queues[name]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    depth = int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
    if not args.yes:
        answer = input(f"Delete all {depth} message(s) of {name}? They cannot be redriven afterwards. "
                       f"Type the queue name ({name.removeprefix(prefix)}) to confirm: ")
        if answer.strip() not in (name, name.removeprefix(prefix)):
            print("not purged", file=sys.stderr)
            return 1
    try:
        sqs.purge_queue(QueueUrl=url)
    except sqs.exceptions.PurgeQueueInProgress:
        print(f"{name} was purged less than a minute ago (SQS allows one purge a minute); try again shortly",
              file=sys.stderr)
        return 1
    print(f"purged {name.removeprefix(prefix)}: {depth} message(s) deleted")
    return 0


def _dlq_redrive(args: argparse.Namespace) -> int:
    found = _dead_letter_queue(args)
    if found is None:
        return 2
    sqs, queues, prefix, name, parked = found
    if name in parked:
        from infra.topology import UNPUBLISHED_QUEUE

        target = prefix + UNPUBLISHED_QUEUE
        moved, failed = redrive_stream_failures(sqs, aws_client(args, "dynamodbstreams"), queues[name],
                                                queues[target], args.max)
        print(f"redrive {name.removeprefix(prefix)} -> {UNPUBLISHED_QUEUE}: {moved} domain event(s) queued "
              f"to publish again, {failed} record(s) left parked")
        return 1 if failed else 0
    source = name.removesuffix("-dlq")
    if not name.endswith("-dlq") or source not in queues:
        print(f"{name} is not the DLQ of a queue under {prefix}*", file=sys.stderr)
        return 2
    moved, failed = redrive(sqs, queues[name], queues[source], args.max)
    print(f"redrive {name.removeprefix(prefix)} -> {source.removeprefix(prefix)}: moved {moved}, failed {failed}")
    return 1 if failed else 0


def redrive(sqs: Any, dlq_url: str, source_url: str, limit: int | None = None) -> tuple[int, int]:
    """Move messages back, body and attributes intact; send before delete so nothing is lost.

    moto has no StartMessageMoveTask, so this receives, sends and deletes itself. It moves at
    most the depth found at the start: messages that fail again and come back are not
    picked up a second time in the same run.
    """
    attrs = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
    budget = int(attrs["Attributes"]["ApproximateNumberOfMessages"])
    budget = budget if limit is None else min(budget, limit)
    moved = failed = 0
    while moved + failed < budget:
        batch = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=min(10, budget - moved - failed),
                                    VisibilityTimeout=60, MessageAttributeNames=["All"],
                                    MessageSystemAttributeNames=["All"]).get("Messages", [])
        if not batch:
            break
        entries = [{"Id": str(i), "MessageBody": m["Body"],
                    **({"MessageAttributes": _sendable(m["MessageAttributes"])} if m.get("MessageAttributes") else {})}
                   for i, m in enumerate(batch)]
        reply = sqs.send_message_batch(QueueUrl=source_url, Entries=entries)
        sent = {int(ok["Id"]) for ok in reply.get("Successful", [])}
        done = [{"Id": str(i), "ReceiptHandle": batch[i]["ReceiptHandle"]} for i in sorted(sent)]
        if done:
            for err in sqs.delete_message_batch(QueueUrl=dlq_url, Entries=done).get("Failed", []):
                # Sent but still in the DLQ: a second redrive would duplicate it. Say so, loudly.
                print(f"  moved but not deleted from the DLQ (possible duplicate): {err}", file=sys.stderr)
        unsent = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                  for i, m in enumerate(batch) if i not in sent]
        if unsent:  # leave them in the DLQ, visible again for the next attempt
            sqs.change_message_visibility_batch(QueueUrl=dlq_url, Entries=unsent)
            for err in reply.get("Failed", []):
                print(f"  not moved: {err.get('Code')}: {err.get('Message')}", file=sys.stderr)
        moved += len(sent)
        failed += len(unsent)
    return moved, failed


def redrive_stream_failures(sqs: Any, streams: Any, failures_url: str, unpublished_url: str,
                            limit: int | None = None) -> tuple[int, int]:
    """Each on-failure record: its batch read back from the stream, its domain events queued to be
    published again, then the record deleted (queued before deleted: nothing lost, and a repeat
    only repeats event ids). A batch the stream no longer holds stays parked, with the reason said.
    Returns (events queued, records left parked)."""
    from orderhub.bus.stream_range import StreamRangeGone, events_for_batch
    from orderhub.bus.unpublished import ParkingError, park

    attrs = sqs.get_queue_attributes(QueueUrl=failures_url, AttributeNames=["ApproximateNumberOfMessages"])
    budget = int(attrs["Attributes"]["ApproximateNumberOfMessages"])
    budget = budget if limit is None else min(budget, limit)
    queued = left = seen = 0
    while seen < budget:
        batch = sqs.receive_message(QueueUrl=failures_url, MaxNumberOfMessages=min(10, budget - seen),
                                    VisibilityTimeout=60).get("Messages", [])
        if not batch:
            break
        for message in batch:
            seen += 1
            described = FailedStreamBatch.from_record(_json_or_none(message["Body"]))
            try:
                if described is None:
                    raise ValueError("not a stream on-failure record")
                entries = events_for_batch(streams, described)
                park(sqs, unpublished_url, entries, f"re-read from the orders stream: {described.shard_id} "
                     f"{described.first_sequence}..{described.last_sequence}")
            except (StreamRangeGone, ParkingError, ValueError) as exc:
                print(f"  {message['MessageId']} left parked: {exc}", file=sys.stderr)
                sqs.change_message_visibility(QueueUrl=failures_url, ReceiptHandle=message["ReceiptHandle"],
                                              VisibilityTimeout=0)
                left += 1
                continue
            sqs.delete_message(QueueUrl=failures_url, ReceiptHandle=message["ReceiptHandle"])
            queued += len(entries)
    return queued, left


def _json_or_none(body: str) -> Any:
    import json

    try:
        return json.loads(body)
    except ValueError:
        return None


def _sendable(attributes: dict) -> dict:
    # ReceiveMessage returns empty list fields that SendMessage rejects.
    return {name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
            for name, value in attributes.items()}
