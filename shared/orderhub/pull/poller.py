"""Incremental pull by modified time for any `PullClient`: windows, pages, watermarks (ING-5).

Per shop the poll-state table keeps a watermark: every order the platform reports modified at or
before it has been enqueued at least once (`store/watermarks.py`). One run of a shop:

1. The stretch. From the re-read start up to `now - settle` (default 60 s, or the client's
   `min_settle` when it declares a longer one: Pinduoduo asks for an end at least 3 minutes before
   its clock). The re-read start is `watermark - overlap` (default 10 min: catches orders whose
   modified time the platform wrote late), or less far back when the run that set the watermark
   was well ahead of it (`reread_from`: catching up far behind the clock, windows that had long
   settled when they were read are not read again). A shop seen for the first time starts at
   `now - initial_lookback_minutes` (default 60), persisted before the first call, so a failing
   first run retries from the same point instead of a lookback sliding forward with the clock.
   Window bounds are whole seconds (the platforms take "yyyy-MM-dd HH:mm:ss" or Unix seconds).
2. Windows that fit one page. Paging a time window is not safe while the window changes: Taobao
   (`taobao.trades.sold.increment.get`) and Pinduoduo (`pdd.order.number.list.increment.get`)
   warn that orders are missed unless pages are read from the last one back, because an order
   modified meanwhile leaves the window and every later one moves up a place. Backwards only
   helps with removals: an order written late into the window moves the others down a place, onto
   a page already read (the property test found it). A single page is one query, so the poller
   cuts the stretch into windows whose whole content fits page 1 (has_next false): a window whose
   page 1 says has_next is halved and asked again, and a window that comes back under a quarter
   full doubles the next one, up to the smallest of the client's `max_window` (the platform's
   limit), the `max_window_minutes` option (default 30: Taobao advises at most 30 minutes) and
   the size learnt so far (kept per shop as `window_s` for the next run). In steady state a
   window comes back 25-100 % full; measured on a dense 10,000-order stretch (bench.poller) about
   45 % full, 2.2-2.7 calls per page of orders against 1 for a forward page-through, which is
   the price of never paging a window that is changing. Window bounds are inclusive on the
   platforms' side, so a window's first second is re-read from its predecessor (duplicates).
   The windows are `pull/windows.py`. Only a one-second window holding more than a page is paged,
   last page first (`Page` has no total: the last page is found by doubling then bisecting).
3. Enqueue. Every order becomes one `IntakeMessage` (request id `poll:<shop>:<window>`, the raw
   order JSON as body), handed to a `Sink` (`pull/sink.py`: SendMessageBatch, 10 entries, at most
   256 KiB per call, on a few threads while the next window is fetched). Failed entries are
   retried; one that still fails fails the window.
   A re-read cut short that way is owed: the next runs re-read from the cut (`reread_from`).
4. Advance. Only windows whose orders are all in SQS count: the watermark moves to the end of the
   last such window (written every few seconds and when the run ends), by a conditional write that
   refuses to go back or past a gap (two pollers of one shop at once). The mapper deduplicates
   re-sent orders by event id (order id + modified time): the overlap and a retried window cost
   calls, not correctness.

A `PullError` stops the shop's run with the watermark at the last complete window: the next run
retries from there, so a missed window is caught up, never skipped. `RateLimited` sleeps
`retry_after_s` (capped, with jitter) and retries, up to `rate_limit_retries` times, then gives the
shop up for this run. The run stops before its time budget ends (the handler leaves a margin
before the Lambda timeout). Re-reading the overlap may use half the budget at most, so a dense
overlap (a flash sale) cannot starve the new windows and stall the shop.

Nothing here knows a platform; nothing here logs: results are returned for the handler to log
and count (no personal data: counts, times, error codes).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from orderhub.clock import Clock, utc_iso
from orderhub.pull.base import Page, PullClient, PullError, RateLimited, Shop
from orderhub.pull.sink import EnqueueError, Sink
from orderhub.pull.windows import PollPolicy, Window, WindowPlan, settle_delay, whole_seconds, window_size
from orderhub.store.watermarks import WatermarkStore, shop_key

TimeLeft = Callable[[], float]  # seconds this run may still start work in
# The watermark is written at least this often (seconds of run time) while windows complete.
ADVANCE_EVERY_S = 5.0


# --------------------------------------------------------------------------- one shop


OUTCOMES = ("caught_up", "out_of_time", "failed", "rate_limited", "enqueue_failed", "lost_race", "skipped")


@dataclass
class ShopResult:
    channel: str
    shop_id: str
    outcome: str = "caught_up"
    windows: int = 0  # windows completed (every order fetched and enqueued)
    calls: int = 0  # API calls that returned a page (halvings and probes included)
    orders: int = 0  # orders enqueued in completed windows
    rate_limit_waits: int = 0
    watermark_before: str = ""
    watermark_after: str = ""
    lag_s: float = 0.0  # end of the run - watermark after it
    window_s: int = 0  # window size at the end of the run
    new_shop: bool = False
    overlap_cut: bool = False  # the re-read of the overlap was cut short to leave time for new windows
    error: str = ""

    def as_log(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in ("", None) or k == "outcome"}

    def then(self, later: ShopResult) -> ShopResult:
        """This run followed by `later` (a second pass of the same shop in one invocation)."""
        return ShopResult(
            self.channel, self.shop_id, later.outcome, self.windows + later.windows, self.calls + later.calls,
            self.orders + later.orders, self.rate_limit_waits + later.rate_limit_waits,
            self.watermark_before, later.watermark_after or self.watermark_after, later.lag_s, later.window_s,
            self.new_shop, self.overlap_cut or later.overlap_cut, later.error)


class _OutOfTime(Exception):
    pass


class _GaveUp(Exception):
    pass


class _LostRace(Exception):
    pass


@dataclass
class _Run:
    shop: Shop
    client: PullClient
    store: WatermarkStore
    sink: Sink
    clock: Clock
    policy: PollPolicy
    time_left: TimeLeft
    sleep: Callable[[float], None]
    rng: random.Random
    result: ShopResult = field(init=False)
    key: str = field(init=False)
    _limit: TimeLeft = field(init=False)  # the time left for the window being read

    def __post_init__(self) -> None:
        self.result = ShopResult(self.shop.channel, self.shop.shop_id)
        self.key = shop_key(self.shop.channel, self.shop.shop_id)
        self._limit = self.time_left

    # -- the run

    def run(self) -> ShopResult:
        result, policy = self.result, self.policy
        now = self.clock.now()
        state = self.store.get(self.key)
        if state is None:
            state = self.store.start(self.key, whole_seconds(now - policy.initial_lookback), now)
            result.new_shop = True
        cap = window_size(self.client, policy)
        plan = WindowPlan.for_run(state.watermark, now, window_size(self.client, policy, state.window_s), cap,
                                  policy.overlap, settle_delay(self.client, policy), state.pulled_at,
                                  state.reread_from)
        cut_at: datetime | None = None
        result.watermark_before = utc_iso(state.watermark)
        # Re-reading the overlap (late writes only) may use the first half of the time.
        overlap_until = self.time_left() / 2
        written = done = plan.watermark  # what the store holds / the end of the last complete window
        covered_from = plan.start  # where the stretch read without a gap begins
        written_left = self.time_left()
        finished = False
        try:
            while (window := plan.next()) is not None:
                rereading = plan.rereading
                self._limit = (lambda: self.time_left() - overlap_until) if rereading else self.time_left
                try:
                    if self._limit() <= 0:
                        raise _OutOfTime
                    first = self._fetch(window, 1)
                    if first.has_next and plan.crowded(window):
                        continue
                    result.orders += self._read(window, first)
                except _OutOfTime:
                    if not rereading or self.time_left() <= 0:
                        raise
                    self._discard()
                    result.overlap_cut, cut_at = True, plan.start
                    plan.skip_reread()
                    covered_from = plan.start
                    continue
                result.windows += 1
                plan.done(window, len(first.orders) / max(self.client.page_size, 1))
                done = max(done, window.end)
                if done > written and written_left - self.time_left() >= ADVANCE_EVERY_S:
                    written, written_left = self._advance(covered_from, written, done, now), self.time_left()
            finished = True
        except _OutOfTime:
            result.outcome = "out_of_time"
        except _GaveUp as exc:
            result.outcome, result.error = "rate_limited", self._scrub(str(exc))
        except EnqueueError as exc:
            result.outcome, result.error = "enqueue_failed", self._scrub(str(exc))
        except PullError as exc:
            result.outcome, result.error = "failed", self._scrub(f"{type(exc).__name__}: {exc}")
        except _LostRace:
            pass
        finally:
            if not finished:  # nothing of an unfinished window may still be in flight for the next shop
                self._discard()
        if done > written and result.outcome != "lost_race":
            with contextlib.suppress(_LostRace):
                written = self._advance(covered_from, written, done, now)
        end = self.clock.now()
        if result.outcome in ("failed", "rate_limited", "enqueue_failed"):
            self.store.record_failure(self.key, f"{result.outcome}: {result.error}", end)
        learnt = None if plan.size >= cap else int(plan.size.total_seconds())
        if not result.calls:
            learnt = state.window_s
        # The re-read still owed: from where it was cut, none once it reached the watermark, else as it was.
        pending = cut_at if cut_at is not None else None if plan.start >= plan.watermark else state.reread_from
        if (learnt, pending) != (state.window_s, state.reread_from):
            self.store.set_hints(self.key, learnt, pending)
        result.window_s = int(plan.size.total_seconds())
        result.watermark_after = utc_iso(written)
        result.lag_s = round((end - written).total_seconds(), 3)
        return result

    def _advance(self, covered_from: datetime, written: datetime, to: datetime, pulled_at: datetime) -> datetime:
        if self.store.advance(self.key, covered_from, to, self.clock.now(), pulled_at):
            return to
        self.result.outcome = "lost_race"
        self.result.error = "another poller moved the watermark meanwhile"
        raise _LostRace

    # -- one window

    def _read(self, window: Window, first: Page) -> int:
        """Enqueue the window's orders (page 1 already fetched); the number enqueued once all are in SQS."""
        request_id = f"poll:{self.shop.shop_id}:{window.label}"
        if not first.has_next:
            self._submit(request_id, first)
            return self.sink.drain()
        # One second holds more than a page: page it, from the last page back (the platforms' advice).
        last, page = self._last_page(window)
        while True:
            self._submit(request_id, page)
            if not page.has_next:
                break
            last += 1  # the window grew while it was paged: read on upwards
            if last > self.policy.max_pages_per_window:
                raise PullError(f"window {window.label} holds more than {self.policy.max_pages_per_window} pages")
            page = self._fetch(window, last)
        for number in range(last - 1, 0, -1):
            self._submit(request_id, self._fetch(window, number))
        return self.sink.drain()

    def _last_page(self, window: Window) -> tuple[int, Page]:
        """The last non-empty page (page 1 said has_next): doubling, then bisecting."""
        below, probe = 1, 2  # `below` has has_next; `above` is past the end
        limit = self.policy.max_pages_per_window
        while True:
            if probe > limit:
                raise PullError(f"window {window.label} holds more than {limit} pages")
            page = self._fetch(window, probe)
            if page.has_next:
                below, probe = probe, probe * 2
                continue
            if page.orders:
                return probe, page
            above = probe
            break
        while above - below > 1:
            middle = (below + above) // 2
            page = self._fetch(window, middle)
            if page.has_next:
                below = middle
            elif page.orders:
                return middle, page
            else:
                above = middle
        # Page `below` said has_next but the next one is empty: the window shrank meanwhile.
        return below, self._fetch(window, below)

    def _submit(self, request_id: str, page: Page) -> None:
        if page.orders:
            self.sink.submit(self.shop.channel, request_id, utc_iso(self.clock.now()), page.orders)

    def _fetch(self, window: Window, number: int) -> Page:
        waits = 0
        while True:
            if self._limit() <= 0:
                raise _OutOfTime
            try:
                page = self.client.fetch_page(self.shop, window.start, window.end, number)
            except RateLimited as exc:
                waits += 1
                self.result.rate_limit_waits += 1
                if waits > self.policy.rate_limit_retries:
                    raise _GaveUp(f"rate limited {waits} times in a row: {exc}") from exc
                base = min(max(exc.retry_after_s, 0.1), self.policy.max_backoff_s)
                delay = base + self.rng.uniform(0, base / 4)
                if delay >= self._limit():
                    raise _OutOfTime from exc
                self.sleep(delay)
                continue
            self.result.calls += 1
            return page

    def _discard(self) -> None:
        discard = getattr(self.sink, "discard", None)
        if discard is not None:
            discard()
        else:
            with contextlib.suppress(EnqueueError):
                self.sink.drain()

    def _scrub(self, text: str) -> str:
        if self.shop.session:
            text = text.replace(self.shop.session, "***")
        return text[:300]


def poll_shop(shop: Shop, client: PullClient, store: WatermarkStore, sink: Sink, clock: Clock,
              policy: PollPolicy | None = None, *, time_left: TimeLeft, sleep: Callable[[float], None] = time.sleep,
              rng: random.Random | None = None) -> ShopResult:
    """One run of one shop: every settled window from its watermark, until done, failed or out of time."""
    rng = rng or random.Random()  # noqa: S311 - jitter, not security
    return _Run(shop, client, store, sink, clock, policy or PollPolicy(), time_left, sleep, rng).run()


def _skipped(shop: Shop, store: WatermarkStore, clock: Clock) -> ShopResult:
    """A shop this run had no time for; its lag is the stored watermark's, so an alarm still sees it."""
    result = ShopResult(shop.channel, shop.shop_id, outcome="skipped", error="no time left in this run")
    state = store.get(shop_key(shop.channel, shop.shop_id))
    if state is not None:
        result.watermark_before = result.watermark_after = utc_iso(state.watermark)
        result.lag_s = round((clock.now() - state.watermark).total_seconds(), 3)
    return result


@dataclass(frozen=True)
class Job:
    shop: Shop
    client: PullClient
    policy: PollPolicy


def poll_shops(jobs: Sequence[Job], store: WatermarkStore, sink: Sink, clock: Clock, *, time_left: TimeLeft,
               sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> list[ShopResult]:
    """Every shop, sharing the time fairly: each gets an equal share of what is left when its turn
    comes (a shop that needs less leaves the rest to the next), then shops that ran out of time
    get a second pass with whatever remains."""
    rng = rng or random.Random()  # noqa: S311 - jitter, not security
    results: dict[int, ShopResult] = {}
    todo = list(range(len(jobs)))
    for pass_no in (1, 2):
        for position, index in enumerate(todo):
            job = jobs[index]
            left_at_start = time_left()
            if left_at_start <= (0 if pass_no == 1 else 1.0):
                if index not in results:
                    results[index] = _skipped(job.shop, store, clock)
                continue
            share = left_at_start / (len(todo) - position)

            def shop_time_left(share: float = share, start: float = left_at_start) -> float:
                now_left = time_left()
                return min(now_left, share - (start - now_left))

            result = poll_shop(job.shop, job.client, store, sink, clock, job.policy, time_left=shop_time_left,
                               sleep=sleep, rng=rng)
            results[index] = results[index].then(result) if index in results else result
        todo = [i for i in todo if results[i].outcome == "out_of_time"]
        if not todo:
            break
    return [results[i] for i in range(len(jobs))]
