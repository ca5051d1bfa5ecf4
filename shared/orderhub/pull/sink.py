"""Where the poller puts pulled orders: the intake queue, on a few threads while the next window is fetched.

Every order becomes one `IntakeMessage` (the raw order JSON as body, no source IP, no headers),
sent with SendMessageBatch through `orderhub.intake_batch` (10 entries, at most 256 KiB per call;
failed entries retried, an entry refused as the sender's fault not). A message that is not in SQS
at the end fails the window: `drain()` raises EnqueueError.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from orderhub.intake_batch import Failures, IntakeBatchSender, batches, send_with_retries

if TYPE_CHECKING:
    from orderhub.models.envelope import IntakeMessage


class EnqueueError(Exception):
    """A message could not be put on the intake queue: the window is not complete."""


class Sink(Protocol):
    def submit(self, channel: str, request_id: str, received_at: str, orders: Sequence[bytes]) -> None: ...

    def drain(self) -> int:
        """Wait for everything submitted; the number of messages sent. Raises EnqueueError."""
        ...


class IntakeBatcher:
    """Intake messages for pulled orders, sent with SendMessageBatch on a few threads.

    Entries a reply lists as failed are sent again (up to `attempts` calls in all); an entry the
    queue refuses as the sender's fault (too big, invalid) is not retried. Either way a message that
    is not in SQS at the end raises EnqueueError from `drain()`. `workers=0` sends in the caller's thread.
    """

    def __init__(self, queue_url: str, client: Any = None, workers: int = 4, attempts: int = 4,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._sender = IntakeBatchSender(queue_url, client)
        self._workers = workers
        self._attempts = attempts
        self._sleep = sleep
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future[int]] = []
        self.calls = 0  # SendMessageBatch calls made

    def submit(self, channel: str, request_id: str, received_at: str, orders: Sequence[bytes]) -> None:
        from orderhub.models.envelope import IntakeMessage

        messages = [IntakeMessage.wrap(channel, received_at, request_id, "", {}, raw) for raw in orders]
        for batch in batches(messages, lambda message: message):
            self._dispatch(batch)

    def _dispatch(self, batch: list[IntakeMessage]) -> None:
        if self._workers <= 0:
            future: Future[int] = Future()
            try:
                future.set_result(self._send(batch))
            except Exception as exc:
                future.set_exception(exc)
            self._pending.append(future)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="intake-send")
        self._pending.append(self._pool.submit(self._send, batch))

    def _call(self, messages: Sequence[IntakeMessage]) -> Failures:
        self.calls += 1
        return self._sender.send_batch(messages)

    def _send(self, batch: list[IntakeMessage]) -> int:
        try:
            unsent = send_with_retries(self._call, batch, attempts=self._attempts, backoff_s=0.05, max_backoff_s=1.0,
                                       sleep=self._sleep)
        except Exception as exc:  # botocore already retried throttling and 5xx
            raise EnqueueError(f"SendMessageBatch failed: {type(exc).__name__}: {exc}") from exc
        refused = [reason for reason, retryable in unsent.values() if not retryable]
        if refused:
            raise EnqueueError(f"intake queue refused a message: {refused[0]}")
        if unsent:
            reasons = sorted({reason for reason, _ in unsent.values()})
            raise EnqueueError(f"{len(unsent)} message(s) not enqueued after {self._attempts} attempts: {reasons}")
        return len(batch)

    def drain(self) -> int:
        pending, self._pending = self._pending, []
        sent, error = 0, None
        for future in pending:  # wait for all, even after a failure: nothing may still be in flight
            try:
                sent += future.result()
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error if isinstance(error, EnqueueError) else EnqueueError(str(error))
        return sent

    def discard(self) -> None:
        """Wait for whatever is in flight and forget it (after a failed window)."""
        with contextlib.suppress(EnqueueError):
            self.drain()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
