"""ING-5: the incremental poller catches every order up, never skips a window, never moves a watermark back.

The platform here is a tiny in-test fake: orders with a modified time (and the moment the platform
made them visible, for late writes), listed newest-modified first, `page_size` per page, with
scripted failures. It shares the clock with the poller; every call takes `latency` seconds.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderhub.clock import FixedClock, utc_iso
from orderhub.pull.base import Page, PullError, RateLimited, Shop
from orderhub.pull.poller import Job, poll_shop, poll_shops
from orderhub.pull.sink import EnqueueError, IntakeBatcher
from orderhub.pull.windows import PollPolicy, plan_windows, reread_from, whole_seconds, window_size
from orderhub.store.watermarks import MemoryWatermarkStore, shop_key

NOW = datetime(2026, 11, 19, 12, 0, tzinfo=UTC)
SHOP = Shop("taobao", "xihu-tea", session="6102a1b2c3-secret-session")
KEY = shop_key("taobao", "xihu-tea")
MIN = timedelta(minutes=1)


class FakePlatform:
    channel = "taobao"

    def __init__(self, clock: FixedClock, page_size: int = 100, max_window: timedelta = timedelta(days=1),
                 latency_s: float = 0.0, bounds: str = "[]") -> None:
        self.clock, self.page_size, self.max_window = clock, page_size, max_window
        self.latency_s, self.bounds = latency_s, bounds
        self.orders: dict[str, tuple[datetime, datetime]] = {}  # id -> (modified, visible from)
        self.calls: list[tuple[datetime, datetime, int]] = []
        self.fail: Callable[[int], Exception | None] = lambda call: None
        self.before_call: Callable[[int], None] = lambda call: None

    def add(self, order_id: str, modified: datetime, visible_from: datetime | None = None) -> None:
        self.orders[order_id] = (modified, visible_from or modified)

    def modify(self, order_id: str, at: datetime) -> None:
        self.orders[order_id] = (at, at)

    def _inside(self, modified: datetime, start: datetime, end: datetime) -> bool:
        low = start <= modified if self.bounds[0] == "[" else start < modified
        high = modified <= end if self.bounds[1] == "]" else modified < end
        return low and high

    def fetch_page(self, shop: Shop, start: datetime, end: datetime, page: int) -> Page:
        assert shop.channel == self.channel and page >= 1
        assert start < end and end - start <= self.max_window, "a window beyond the platform's limit"
        assert start.microsecond == 0 and end.microsecond == 0, "platforms take whole seconds"
        self.calls.append((start, end, page))
        self.before_call(len(self.calls))
        self.clock.advance(self.latency_s)
        failure = self.fail(len(self.calls))
        if failure is not None:
            raise failure
        now = self.clock.now()
        rows = sorted(((m, oid) for oid, (m, v) in self.orders.items() if v <= now and self._inside(m, start, end)),
                      reverse=True)
        chunk = rows[(page - 1) * self.page_size: page * self.page_size]
        return Page([json.dumps({"tid": oid, "modified": utc_iso(m)}).encode() for m, oid in chunk],
                    has_next=len(rows) > page * self.page_size)


class ListSink:
    """Messages count as delivered once drained (what a completed window guarantees)."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, str]] = []  # (request id, order id)
        self.versions: set[tuple[str, str]] = set()  # (order id, modified) of every snapshot delivered
        self._pending: list[tuple[str, dict]] = []

    def submit(self, channel, request_id, received_at, orders):
        assert channel == "taobao" and received_at.endswith("+00:00")
        self._pending.extend((request_id, json.loads(o)) for o in orders)

    def drain(self) -> int:
        sent, self._pending = self._pending, []
        self.delivered.extend((rid, order["tid"]) for rid, order in sent)
        self.versions.update((order["tid"], order["modified"]) for _, order in sent)
        return len(sent)

    def discard(self) -> None:
        self._pending = []

    @property
    def ids(self) -> set[str]:
        return {oid for _, oid in self.delivered}


class Budget:
    """The run's time left, on the shared clock."""

    def __init__(self, clock: FixedClock, seconds: float) -> None:
        self.clock, self.deadline = clock, clock.now() + timedelta(seconds=seconds)

    def __call__(self) -> float:
        return (self.deadline - self.clock.now()).total_seconds()


def world(**platform):
    clock = FixedClock(NOW)
    return clock, FakePlatform(clock, **platform), MemoryWatermarkStore(), ListSink()


def run(clock, platform, store, sink, policy: PollPolicy | None = None, seconds: float = 200.0, sleeps=None):
    def sleep(s: float) -> None:
        if sleeps is not None:
            sleeps.append(s)
        clock.advance(s)

    return poll_shop(SHOP, platform, store, sink, clock, policy or PollPolicy(), time_left=Budget(clock, seconds),
                     sleep=sleep, rng=random.Random(7))


def start_at(store: MemoryWatermarkStore, watermark: datetime) -> None:
    store.start(KEY, watermark, watermark)


def watermark(store: MemoryWatermarkStore) -> datetime:
    state = store.get(KEY)
    assert state is not None
    return state.watermark


def monotone(values: list[datetime]) -> bool:
    return all(a < b for a, b in zip(values, values[1:], strict=False))


# --------------------------------------------------------------------------- planning


def test_windows_run_from_watermark_minus_overlap_to_now_minus_settle_cut_to_the_window_size():
    windows = plan_windows(NOW - 45 * MIN, NOW, 20 * MIN, overlap=10 * MIN, settle=timedelta(seconds=60))
    assert [(w.start, w.end) for w in windows] == [
        (NOW - 55 * MIN, NOW - 35 * MIN), (NOW - 35 * MIN, NOW - 15 * MIN), (NOW - 15 * MIN, NOW - MIN)]
    assert windows[0].label == "20261119T110500Z-20261119T112500Z"


def test_a_run_far_behind_the_clock_does_not_reread_windows_that_had_settled_when_they_were_read():
    settle, overlap = timedelta(seconds=60), 10 * MIN
    live = reread_from(NOW - MIN, overlap, settle, pulled_at=NOW)
    catching_up = reread_from(NOW - 3 * 60 * MIN, overlap, settle, pulled_at=NOW)
    partly = reread_from(NOW - 16 * MIN, overlap, settle, pulled_at=NOW - 10 * MIN)
    assert (live, catching_up, partly) == (NOW - 11 * MIN, NOW - 3 * 60 * MIN, NOW - 21 * MIN)
    assert reread_from(NOW - MIN, overlap, settle, pulled_at=None) == NOW - 11 * MIN


def test_window_ends_are_whole_seconds_and_nothing_is_planned_before_the_settle_delay_passes():
    now = NOW + timedelta(seconds=30, microseconds=999_000)
    (window,) = plan_windows(NOW - 5 * MIN, now, 30 * MIN, overlap=10 * MIN, settle=timedelta(seconds=60))
    assert window.end == NOW - timedelta(seconds=30)
    assert plan_windows(NOW - timedelta(seconds=59), NOW, 30 * MIN, 10 * MIN, timedelta(seconds=60)) == []


def test_the_window_size_is_the_smallest_of_platform_limit_option_and_shrunk_size():
    clock, platform, _, _ = world(max_window=timedelta(days=1))
    assert window_size(platform, PollPolicy()) == 30 * MIN
    assert window_size(platform, PollPolicy(max_window=timedelta(days=3))) == timedelta(days=1)
    assert window_size(platform, PollPolicy(), learnt_s=90) == timedelta(seconds=90)


def test_policy_options_override_the_defaults():
    policy = PollPolicy.from_options({"overlap_minutes": 5, "settle_seconds": 180, "initial_lookback_minutes": 1440,
                                      "max_window_minutes": 10, "rate_limit_retries": 2, "shops": []})
    assert (policy.overlap, policy.settle, policy.initial_lookback, policy.max_window, policy.rate_limit_retries) == (
        5 * MIN, timedelta(seconds=180), timedelta(days=1), 10 * MIN, 2)
    assert PollPolicy.from_options({}) == PollPolicy()


def test_a_client_that_declares_a_longer_settle_delay_gets_it():
    clock, platform, store, sink = world()
    platform.min_settle = timedelta(minutes=3)  # Pinduoduo: end at least 3 minutes before its clock
    start_at(store, NOW - 30 * MIN)
    run(clock, platform, store, sink)
    assert watermark(store) == NOW - 3 * MIN


# --------------------------------------------------------------------------- runs


def test_a_new_shop_starts_from_the_initial_lookback_and_every_settled_order_is_enqueued_once_per_window():
    clock, platform, store, sink = world()
    for i in range(250):
        platform.add(f"T{i}", NOW - 59 * MIN + timedelta(seconds=i * 13))
    platform.add("too-old", NOW - 71 * MIN)  # before the lookback and its overlap
    platform.add("unsettled", NOW - timedelta(seconds=20))
    result = run(clock, platform, store, sink, PollPolicy(initial_lookback=60 * MIN))
    assert result.outcome == "caught_up" and result.new_shop
    assert sink.ids == {f"T{i}" for i in range(250)}
    assert watermark(store) == NOW - MIN and result.lag_s == 60
    assert result.windows >= 3 and result.orders == len(sink.delivered)
    # the first window reaches back by the overlap; every message says which window it came from
    assert platform.calls[0][:2] == (NOW - 70 * MIN, NOW - 40 * MIN)
    assert all(rid.startswith("poll:xihu-tea:2026") for rid, _ in sink.delivered)


def test_the_first_runs_start_is_kept_when_that_run_fails_so_the_lookback_does_not_slide():
    clock, platform, store, sink = world()
    platform.add("early", NOW - 55 * MIN)
    platform.fail = lambda call: PullError("TOP error 15 Remote service error")
    assert run(clock, platform, store, sink).outcome == "failed"
    clock.advance(3600)
    platform.fail = lambda call: None
    run(clock, platform, store, sink)
    assert "early" in sink.ids


def test_a_failed_window_leaves_the_watermark_at_the_last_complete_window_and_the_next_run_catches_up():
    clock, platform, store, sink = world(page_size=10)
    start_at(store, NOW - 90 * MIN)
    for i in range(300):
        platform.add(f"T{i}", NOW - 100 * MIN + timedelta(seconds=i * 18))
    platform.fail = lambda call: PullError("TOP error 15 Remote service error") if call == 12 else None
    first = run(clock, platform, store, sink)
    assert first.outcome == "failed" and "Remote service error" in first.error
    assert first.windows >= 1 and watermark(store) == datetime.fromisoformat(first.watermark_after)
    assert watermark(store) < NOW - MIN
    assert store.get(KEY).last_error.startswith("failed: PullError: TOP error 15")
    clock.advance(300)
    second = run(clock, platform, store, sink)
    assert second.outcome == "caught_up" and store.get(KEY).last_error == ""
    assert sink.ids == {f"T{i}" for i in range(300)}
    assert monotone(store.history[KEY])


def test_the_session_token_never_appears_in_a_reported_error():
    clock, platform, store, sink = world()
    start_at(store, NOW - 10 * MIN)
    platform.fail = lambda call: PullError(f"invalid session {SHOP.session}")
    result = run(clock, platform, store, sink)
    assert SHOP.session not in result.error and SHOP.session not in store.get(KEY).last_error


def test_rate_limited_pages_are_retried_after_the_advised_wait_with_jitter():
    clock, platform, store, sink = world()
    start_at(store, NOW - 20 * MIN)
    platform.add("T1", NOW - 5 * MIN)
    platform.fail = lambda call: RateLimited("App Call Limited", retry_after_s=3) if call <= 2 else None
    sleeps: list[float] = []
    result = run(clock, platform, store, sink, sleeps=sleeps)
    assert result.outcome == "caught_up" and result.rate_limit_waits == 2 and sink.ids == {"T1"}
    assert len(sleeps) == 2 and all(3 <= s <= 3.75 for s in sleeps) and sleeps[0] != sleeps[1]


def test_a_huge_advised_wait_is_capped():
    clock, platform, store, sink = world()
    start_at(store, NOW - 20 * MIN)
    platform.fail = lambda call: RateLimited("ban", retry_after_s=3600) if call == 1 else None
    sleeps: list[float] = []
    run(clock, platform, store, sink, PollPolicy(max_backoff_s=10), sleeps=sleeps)
    assert len(sleeps) == 1 and 10 <= sleeps[0] <= 12.5


def test_a_shop_rate_limited_too_often_is_given_up_for_this_run_with_its_watermark_kept():
    clock, platform, store, sink = world()
    start_at(store, NOW - 20 * MIN)
    platform.fail = lambda call: RateLimited("App Call Limited", retry_after_s=1)
    result = run(clock, platform, store, sink, PollPolicy(rate_limit_retries=3))
    assert result.outcome == "rate_limited" and result.rate_limit_waits == 4 and len(platform.calls) == 4
    assert watermark(store) == NOW - 20 * MIN and store.get(KEY).last_error.startswith("rate_limited")


def test_the_run_stops_before_its_time_is_up_with_the_watermark_at_the_last_complete_window():
    clock, platform, store, sink = world(page_size=10, latency_s=1.0)
    start_at(store, NOW - 6 * 60 * MIN)  # six hours behind
    for i in range(600):
        platform.add(f"T{i}", NOW - 6 * 60 * MIN + timedelta(seconds=i * 35))
    result = run(clock, platform, store, sink, seconds=25)
    assert result.outcome == "out_of_time" and result.windows > 0
    assert clock.now() <= NOW + timedelta(seconds=25)  # no call started after the budget
    assert watermark(store) == datetime.fromisoformat(result.watermark_after) < NOW - MIN
    # The next runs go on from there, and nothing is lost on the way.
    for _ in range(20):
        if run(clock, platform, store, sink, seconds=25).outcome == "caught_up":
            break
    assert sink.ids == {f"T{i}" for i in range(600)} and monotone(store.history[KEY])


def test_a_sleep_that_would_overrun_the_budget_ends_the_run_instead():
    clock, platform, store, sink = world()
    start_at(store, NOW - 20 * MIN)
    platform.fail = lambda call: RateLimited("App Call Limited", retry_after_s=20)
    result = run(clock, platform, store, sink, seconds=10)
    assert result.outcome == "out_of_time" and clock.now() < NOW + timedelta(seconds=10)


def test_a_crowded_window_is_halved_until_it_fits_one_page_and_a_sparse_one_doubles_the_next():
    clock, platform, store, sink = world(page_size=10)
    start_at(store, NOW - 50 * MIN)
    for i in range(40):  # a burst: 40 orders in 4 minutes, then quiet
        platform.add(f"T{i}", NOW - 45 * MIN + timedelta(seconds=i * 6))
    result = run(clock, platform, store, sink)
    assert result.outcome == "caught_up" and sink.ids == {f"T{i}" for i in range(40)}
    spans = [(end - start).total_seconds() for start, end, _ in platform.calls]
    assert spans[0] == 1800 and min(spans) < 120  # halved until one page holds a window
    assert max(spans[-3:]) > 2 * min(spans)  # and longer again once the burst is past
    assert all(page == 1 for _, _, page in platform.calls)  # no window was paged
    # every window that was read in full holds at most a page
    assert max(Counter(rid for rid, _ in sink.delivered).values()) <= 10


def test_the_size_learnt_in_a_busy_run_is_where_the_next_run_starts():
    clock, platform, store, sink = world(page_size=10)
    start_at(store, NOW - 20 * MIN)
    for i in range(400):
        platform.add(f"T{i}", NOW - 30 * MIN + timedelta(seconds=i * 6))  # busy all along
    first = run(clock, platform, store, sink)
    assert store.get(KEY).window_s == first.window_s < 30 * 60
    clock.advance(300)
    for i in range(50):
        platform.add(f"U{i}", NOW + timedelta(seconds=i * 6))
    calls = len(platform.calls)
    run(clock, platform, store, sink)
    assert (platform.calls[calls][1] - platform.calls[calls][0]).total_seconds() == first.window_s


def test_a_one_second_window_holding_more_than_a_page_is_paged_last_page_first_and_loses_nothing():
    # Taobao and Pinduoduo list newest first and advise paging from the last page back: an order
    # that leaves the window while it is paged moves every later one up a place.
    clock, platform, store, sink = world(page_size=10)
    start_at(store, NOW - 11 * MIN)
    second = NOW - 5 * MIN
    for i in range(45):  # a flash sale: 45 orders in one second
        platform.add(f"T{i:02}", second + timedelta(microseconds=i))

    def buyer_pays(call: int) -> None:  # just before page 3 is read, two listed orders change
        if platform.calls[-1][2] == 3 and platform.orders["T44"][0] < NOW:
            platform.modify("T44", NOW)
            platform.modify("T30", NOW)

    platform.before_call = buyer_pays
    result = run(clock, platform, store, sink)
    assert result.outcome == "caught_up"
    assert {f"T{i:02}" for i in range(45)} - {"T44", "T30"} <= sink.ids
    pages = [page for start, end, page in platform.calls if start == second and end - start == timedelta(seconds=1)]
    assert pages[-5:] == [5, 4, 3, 2, 1]  # found the last page, then read down to the first


def test_a_forward_pager_would_have_lost_an_order_there():
    # The same platform, paged 1, 2, 3...: the order at the top of page 2 moves onto page 1 unseen.
    clock, platform, _, _ = world(page_size=10)
    for i in range(45):
        platform.add(f"T{i:02}", NOW - 20 * MIN + timedelta(seconds=i * 20))
    seen, page = set(), 1
    while True:
        result = platform.fetch_page(SHOP, NOW - 30 * MIN, NOW - MIN, page)
        seen |= {json.loads(o)["tid"] for o in result.orders}
        if page == 1:
            platform.modify("T44", NOW)
        if not result.has_next:
            break
        page += 1
    assert {f"T{i:02}" for i in range(44)} - seen


def test_a_quiet_shop_costs_one_call_a_run_and_a_busy_stretch_about_one_and_a_half_per_page_of_orders():
    clock, platform, store, sink = world(page_size=10)
    start_at(store, NOW - 11 * MIN)
    for i in range(5):
        platform.add(f"S{i}", NOW - 5 * MIN + timedelta(seconds=i))
    run(clock, platform, store, sink)
    assert len(platform.calls) == 1
    clock2, platform2, store2, sink2 = world(page_size=10)
    start_at(store2, NOW - 11 * MIN)
    for i in range(1000):  # 100 pages' worth in 20 minutes
        platform2.add(f"T{i}", NOW - 20 * MIN + timedelta(seconds=i * 1.1))
    run(clock2, platform2, store2, sink2)
    assert sink2.ids == {f"T{i}" for i in range(1000)}
    assert len(platform2.calls) <= 1.6 * 100 + 8


def test_windows_inside_the_overlap_write_nothing_and_the_watermark_never_moves_back():
    clock, platform, store, sink = world()
    start_at(store, NOW - 5 * MIN)
    result = run(clock, platform, store, sink, PollPolicy(max_window=timedelta(minutes=2)))
    assert result.outcome == "caught_up" and result.windows == 7
    assert store.history[KEY] == [NOW - 5 * MIN, NOW - MIN]
    assert store.advance(KEY, NOW - 5 * MIN, NOW - 3 * MIN, NOW, NOW) is False  # back: refused
    assert store.advance(KEY, NOW - timedelta(seconds=30), NOW, NOW, NOW) is False  # past a gap: refused


def test_a_concurrent_poller_that_moved_the_watermark_meanwhile_is_not_overwritten():
    clock, platform, store, sink = world()
    start_at(store, NOW - 50 * MIN)
    platform.add("T1", NOW - 45 * MIN)

    def other_poller_finishes(call: int) -> None:
        if call == 1:
            store.advance(KEY, NOW - 50 * MIN, NOW - MIN, NOW, NOW)

    platform.before_call = other_poller_finishes
    result = run(clock, platform, store, sink)
    assert result.outcome == "lost_race" and watermark(store) == NOW - MIN
    assert monotone(store.history[KEY])


# --------------------------------------------------------------------------- several shops


def test_every_shop_gets_a_share_of_the_time_and_laggards_get_a_second_pass():
    clock = FixedClock(NOW)
    store, sink = MemoryWatermarkStore(), ListSink()
    shops = [Shop("taobao", f"shop-{i}") for i in range(3)]
    platforms = []
    for i, shop in enumerate(shops):
        platform = FakePlatform(clock, page_size=10, latency_s=1.0)
        behind = 5 * 60 * MIN if i == 0 else 10 * MIN  # the first is hours behind, the others current
        store.start(shop_key("taobao", shop.shop_id), NOW - behind, NOW)
        for j in range(300 if i == 0 else 5):
            platform.add(f"{i}-{j}", NOW - behind + timedelta(seconds=j * 55 if i == 0 else 60 + j))
        platforms.append(platform)
    results = poll_shops([Job(s, p, PollPolicy()) for s, p in zip(shops, platforms, strict=True)], store, sink,
                         clock, time_left=Budget(clock, 60), sleep=clock.advance, rng=random.Random(1))
    assert [r.outcome for r in results][1:] == ["caught_up", "caught_up"]
    assert results[0].windows > 0
    assert {f"{i}-{j}" for i in (1, 2) for j in range(5)} <= sink.ids
    assert clock.now() <= NOW + timedelta(seconds=60)


# --------------------------------------------------------------------------- enqueueing


class FakeSqs:
    def __init__(self, fail: Callable[[int, str], dict | None] = lambda call, entry_id: None) -> None:
        self.fail, self.calls, self.bodies = fail, 0, []

    def send_message_batch(self, QueueUrl, Entries):  # noqa: N803
        assert 1 <= len(Entries) <= 10 and sum(len(e["MessageBody"]) for e in Entries) <= 256 * 1024
        self.calls += 1
        failed, ok = [], []
        for entry in Entries:
            failure = self.fail(self.calls, entry["Id"])
            if failure:
                failed.append({"Id": entry["Id"], **failure})
            else:
                ok.append({"Id": entry["Id"], "MessageId": "m"})
                self.bodies.append(json.loads(entry["MessageBody"]))
        return {"Successful": ok, **({"Failed": failed} if failed else {})}


def orders(n: int, size: int = 50) -> list[bytes]:
    return [json.dumps({"tid": str(i), "pad": "x" * size}, ensure_ascii=False).encode() for i in range(n)]


@pytest.mark.parametrize("workers", [0, 3])
def test_orders_go_out_ten_per_call_as_intake_messages_of_the_window(workers):
    sqs = FakeSqs()
    batcher = IntakeBatcher("https://sqs/intake", client=sqs, workers=workers)
    batcher.submit("taobao", "poll:xihu-tea:w1", "2026-11-19T12:00:00.000+00:00", orders(25))
    assert batcher.drain() == 25 and sqs.calls == 3
    message = sqs.bodies[0]
    assert message["channel"] == "taobao" and message["request_id"] == "poll:xihu-tea:w1"
    assert message["source_ip"] == "" and message["headers"] == {}
    import base64

    assert {json.loads(base64.b64decode(m["body_b64"]))["tid"] for m in sqs.bodies} == {str(i) for i in range(25)}
    batcher.close()


def test_a_batch_is_cut_before_it_outgrows_the_request_size_limit():
    sqs = FakeSqs()
    batcher = IntakeBatcher("u", client=sqs, workers=0)
    batcher.submit("taobao", "r", "t", orders(10, size=60_000))  # ~80 KB each once base64-encoded
    assert batcher.drain() == 10 and sqs.calls >= 4


def test_entries_a_batch_reply_lists_as_failed_are_sent_again():
    sqs = FakeSqs(fail=lambda call, entry_id: {"Code": "InternalError", "SenderFault": False}
                  if call == 1 and entry_id in ("3", "7") else None)
    batcher = IntakeBatcher("u", client=sqs, workers=0, sleep=lambda s: None)
    batcher.submit("taobao", "r", "t", orders(10))
    assert batcher.drain() == 10 and sqs.calls == 2 and len(sqs.bodies) == 10


@pytest.mark.parametrize("failure", [{"Code": "InvalidMessageContents", "SenderFault": True},
                                     {"Code": "InternalError", "SenderFault": False}])
def test_an_entry_that_keeps_failing_fails_the_window_and_the_watermark_stays(failure):
    clock, platform, store, _ = world()
    start_at(store, NOW - 20 * MIN)
    platform.add("T1", NOW - 10 * MIN)
    platform.add("T2", NOW - 9 * MIN)
    sqs = FakeSqs(fail=lambda call, entry_id: failure if entry_id == "0" else None)
    sink = IntakeBatcher("u", client=sqs, workers=2, sleep=lambda s: None)
    result = poll_shop(SHOP, platform, store, sink, clock, time_left=Budget(clock, 100), sleep=clock.advance)
    assert result.outcome == "enqueue_failed" and failure["Code"] in result.error
    assert watermark(store) == NOW - 20 * MIN
    with pytest.raises(EnqueueError):
        sink.submit("taobao", "r", "t", orders(1))
        sink.drain()
    sink.close()


# --------------------------------------------------------------------------- property


step = st.tuples(
    st.integers(min_value=0, max_value=40),  # new orders since the last run
    st.integers(min_value=1, max_value=25),  # minutes until the next run
    st.sampled_from(["ok", "fail", "rate", "rate_out", "short", "enqueue"]),
    st.integers(min_value=1, max_value=6),  # which call fails
    st.floats(min_value=0, max_value=0.3),  # chance per call that a listed order changes meanwhile
)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=12), bounds=st.sampled_from(["[]", "[)", "(]"]),
       late=st.integers(min_value=0, max_value=11 * 60), seed=st.integers(0, 10_000))
def test_any_sequence_of_failing_and_succeeding_runs_delivers_every_order_and_the_watermark_only_moves_forward(
        steps, bounds, late, seed):
    rng = random.Random(seed)
    clock = FixedClock(NOW)
    platform = FakePlatform(clock, page_size=7, max_window=timedelta(minutes=17), latency_s=0.5, bounds=bounds)
    store, sink = MemoryWatermarkStore(), ListSink()
    policy = PollPolicy(max_window=timedelta(minutes=13), rate_limit_retries=2)
    made, previous = 0, NOW - 30 * MIN
    for new, gap, mode, failing_call, churn in steps:
        span = int((clock.now() - previous).total_seconds())
        for _ in range(new):  # modified since the previous run; some written late (by up to overlap + settle)
            modified = previous + timedelta(seconds=rng.randint(1, span))
            shown = modified + timedelta(seconds=rng.randint(0, late)) if rng.random() < 0.2 else modified
            platform.add(f"T{made}", modified, shown)
            made += 1
        previous = clock.now()

        def buyers_act(call: int, churn: float = churn) -> None:  # orders change while the run reads
            if platform.orders and rng.random() < churn:
                platform.modify(rng.choice(sorted(platform.orders)), whole_seconds(clock.now()))

        platform.before_call = buyers_act
        calls = len(platform.calls)
        at = calls + failing_call  # the call that fails in this run
        platform.fail = {
            "ok": lambda call: None,
            "fail": lambda call, at=at: PullError("TOP error 15") if call == at else None,
            "rate": lambda call, at=at: RateLimited("limited", 2) if call == at else None,
            "rate_out": lambda call, at=at: RateLimited("limited", 2) if call > at else None,
            "short": lambda call: None,
            "enqueue": lambda call: None,
        }[mode]
        if mode == "enqueue":  # a send that fails for good at the n-th window
            class Failing(ListSink):
                drains = 0
                target = sink
                fails_at = failing_call

                def drain(self) -> int:
                    Failing.drains += 1
                    if Failing.drains == self.fails_at:
                        self.target._pending = []
                        raise EnqueueError("InternalError")
                    return self.target.drain()

                def submit(self, *args):
                    self.target.submit(*args)

                def discard(self) -> None:
                    self.target.discard()

            used = Failing()
        else:
            used = sink
        poll_shop(SHOP, platform, store, used, clock, policy,
                  time_left=Budget(clock, 6 if mode == "short" else 500), sleep=clock.advance, rng=rng)
        clock.advance(gap * 60)
    # Whatever happened, calm runs afterwards deliver everything that has settled.
    platform.fail = lambda call: None
    platform.before_call = lambda call: None
    clock.advance(15 * 60)
    for _ in range(30):
        if poll_shop(SHOP, platform, store, sink, clock, policy, time_left=Budget(clock, 500),
                     sleep=clock.advance).outcome == "caught_up":
            break
        clock.advance(60)
    settled = {oid for oid, (m, shown) in platform.orders.items() if m <= watermark(store)}
    assert settled == set(platform.orders)
    # every order's latest snapshot went out (and so every order at least once)
    assert {(oid, utc_iso(m)) for oid, (m, _) in platform.orders.items()} <= sink.versions
    assert monotone(store.history[KEY])
