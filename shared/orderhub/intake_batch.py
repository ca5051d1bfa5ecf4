"""Intake messages to the intake queue with SendMessageBatch: cutting them into calls, one call with retries.

The file import and the replay (`orderhub.imports.send_messages`: in order, stopping at the first
batch that still fails) and the poller (`orderhub.pull.sink.IntakeBatcher`: on a few threads, a
failed batch fails the window) both send through here:

- `batches`: consecutive runs that fit one call (10 entries, 256 KiB in all, attributes counted).
- `send_with_retries`: one batch; entries a reply lists as failed are sent again with backoff, up
  to `attempts` calls in all, except those the queue refused as the sender's fault (too big,
  invalid): sending them again cannot help. Whatever is not in SQS at the end is returned.
- `IntakeBatchSender`: the SendMessageBatch call itself (`BatchSender`; tests use fakes).

An exception from the call itself (after botocore's own retries of throttling and 5xx) is not
caught here: whether to retry it is the caller's choice. Nothing imported here loads boto3 or
pydantic: the SQS client is made on first use (`orderhub.aws.client`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from orderhub.models.envelope import IntakeMessage

MAX_BATCH_ENTRIES = 10
# SendMessageBatch takes 10 entries and (classic limit, still the default of many queues) 256 KiB in all;
# one message may not be larger either.
MAX_BATCH_BYTES = MAX_MESSAGE_BYTES = 256 * 1024

# The entries of a batch not sent: position in the batch -> (reason, worth retrying).
Failures = dict[int, tuple[str, bool]]
T = TypeVar("T")


class BatchSender(Protocol):
    def send_batch(self, messages: Sequence[IntakeMessage]) -> Failures:
        """Send up to 10 messages in one call; the failed ones by index -> (reason, worth retrying)."""
        ...


def attributes(channel: str) -> dict[str, Any]:
    return {"channel": {"DataType": "String", "StringValue": channel}}


def entry_bytes(message: IntakeMessage) -> int:
    """What one entry counts towards the size limit of a call: the body and the attribute."""
    body = message.sqs_body(MAX_MESSAGE_BYTES)
    return len(body.encode()) + len("channel") + len("String") + len(message.channel.encode())


class IntakeBatchSender:
    """SendMessageBatch to the intake queue."""

    def __init__(self, queue_url: str, client: Any = None) -> None:
        self._url = queue_url
        self._client = client

    def send_batch(self, messages: Sequence[IntakeMessage]) -> Failures:
        if self._client is None:
            from orderhub.aws import client

            self._client = client("sqs")
        reply = self._client.send_message_batch(QueueUrl=self._url, Entries=[
            {"Id": str(i), "MessageBody": m.sqs_body(MAX_MESSAGE_BYTES), "MessageAttributes": attributes(m.channel)}
            for i, m in enumerate(messages)])
        return {int(f["Id"]): (f"{f.get('Code', '')}: {f.get('Message', '')}".strip(": "), not f.get("SenderFault"))
                for f in reply.get("Failed") or []}


def batches(items: Iterable[T], message_of: Callable[[T], IntakeMessage]) -> list[list[T]]:
    """`items` cut, in order, into runs that fit one SendMessageBatch call each."""
    runs: list[list[T]] = []
    size = 0
    for item in items:
        length = entry_bytes(message_of(item))
        if not runs or len(runs[-1]) == MAX_BATCH_ENTRIES or size + length > MAX_BATCH_BYTES:
            runs.append([])
            size = 0
        runs[-1].append(item)
        size += length
    return runs


def send_with_retries(send: Callable[[Sequence[IntakeMessage]], Failures], messages: Sequence[IntakeMessage], *,
                      attempts: int, backoff_s: float, max_backoff_s: float,
                      sleep: Callable[[float], None]) -> Failures:
    """Send one batch (`send`: one call, e.g. `IntakeBatchSender.send_batch`), retrying failed entries.

    Before retry n (1-based) it sleeps `min(backoff_s * 2 ** n, max_backoff_s)`. Returns the
    entries not sent, by position in `messages`, in order; empty when all are in SQS.
    """
    refused: Failures = {}
    failed: Failures = {}
    pending = list(range(len(messages)))
    for attempt in range(attempts):
        if attempt:
            sleep(min(backoff_s * 2 ** attempt, max_backoff_s))
        reply = send([messages[i] for i in pending])
        failed = {pending[n]: failure for n, failure in reply.items() if 0 <= n < len(pending)}
        refused.update((i, failure) for i, failure in failed.items() if not failure[1])
        pending = [i for i in pending if i in failed and failed[i][1]]
        if not pending:
            break
    unsent = {**refused, **{i: failed.get(i, ("not sent", True)) for i in pending}}
    return dict(sorted(unsent.items()))
