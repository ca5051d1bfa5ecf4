"""Poller throughput: one run over 10,000 orders against each fake platform, over real local HTTP.

    python -m bench.poller [--orders 10000] [--repeats 3] [--channels taobao,jd,pdd]

Per channel (Taobao, JD, Pinduoduo): the fake platform (infra.standins.platforms: it checks signatures,
tokens and timestamps as the platform does) is started on a local port and loaded with
`--orders` orders of one shop, all modified within 30 minutes that end 5 minutes ago (one poll
stretch). Then, alternately, `--repeats` times each:

- POLLER: one `orderhub.pull.poller.poll_shop` run from a watermark at the start of those 30
  minutes (a fresh in-memory watermark store each time, the channel's real client, the default
  `PollPolicy`, the Lambda's time budget), into an in-memory sink (the `Sink` protocol: what a
  window submitted is counted once it is drained, as the intake queue would hold it). It reads the
  stretch the handler would: the 10-minute overlap before the watermark, the 30 minutes, and up
  to `now - settle`, in windows that each fit one page (halved while page 1 says has_next).
- FLOOR: the same client pages forward through the same 30 minutes as one query (fetch_page 1..N
  until has_next is false): no windows, no sink, no watermark. The fewest calls and the least
  work that can return the window; also what the platforms warn loses orders while the window
  changes, which is why the poller does not do it.

Figures, each beside its floor (best wall time of the repeats for the rates, the same run's
counts for the rest): orders/s (distinct orders arrived / wall s), API calls, orders per call,
and whether every one of the orders arrived. The fake server runs in this process (threads
sharing the interpreter with the client), so a call costs the server's work too, for both.
No goal is set for speed (information); all orders arriving is the goal.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench._support import Figure, dump_json, print_figures

CHANNELS = ("taobao", "jd", "pdd")
APP_KEY, SECRET = "bench-app-key", "bench-app-secret-0123"
SPAN = timedelta(minutes=30)  # Pinduoduo's longest query: the floor reads the span as one window
SPAN_ENDS_AGO = timedelta(minutes=5)  # settled for every platform (Pinduoduo asks for 3 minutes)
PAGE_SIZE = 100


class MemorySink:
    """The poller's `Sink` in memory: submitted orders count as arrived once drained."""

    def __init__(self) -> None:
        self.arrived: list[bytes] = []
        self.submits = 0
        self._pending: list[bytes] = []

    def submit(self, channel: str, request_id: str, received_at: str, orders: Sequence[bytes]) -> None:
        self.submits += 1
        self._pending.extend(orders)

    def drain(self) -> int:
        sent = len(self._pending)
        self.arrived.extend(self._pending)
        self._pending = []
        return sent


@dataclass
class Run:
    seconds: float
    calls: int
    received: int  # orders received, duplicates included
    distinct: int
    detail: dict[str, Any] = field(default_factory=dict)


def _orders(channel: str, count: int, start: datetime, seed: int) -> list[dict[str, Any]]:
    """`count` generated orders, each modified at a whole second within (start, start + SPAN]."""
    from infra.standins.platform_orders import generate_orders, ts

    key = "updated_at" if channel == "pdd" else "modified"
    rng = random.Random(f"bench.poller:{channel}:{seed}")  # noqa: S311 - fake data
    orders = generate_orders(channel, count, start - timedelta(days=1), seed=seed)
    for order in orders:
        order[key] = ts(start + timedelta(seconds=1 + rng.randrange(int(SPAN.total_seconds()))))
    return orders


def _distinct(channel: str, raw: list[bytes]) -> int:
    from infra.standins.platform_orders import order_id_of

    return len({order_id_of(channel, json.loads(doc)) for doc in raw})


def poll_once(channel: str, client: Any, shop: Any, watermark: datetime) -> Run:
    from functions.channel_poller.handler import MARGIN_S
    from infra.topology import POLLER_TIMEOUT_S
    from orderhub.clock import SystemClock
    from orderhub.pull.poller import poll_shop
    from orderhub.pull.windows import PollPolicy
    from orderhub.store.watermarks import MemoryWatermarkStore, shop_key

    store = MemoryWatermarkStore()
    clock = SystemClock()
    store.start(shop_key(channel, shop.shop_id), watermark, clock.now())
    sink = MemorySink()
    budget = POLLER_TIMEOUT_S - MARGIN_S
    started = time.perf_counter()
    result = poll_shop(shop, client, store, sink, clock, PollPolicy(),
                       time_left=lambda: budget - (time.perf_counter() - started))
    seconds = time.perf_counter() - started
    return Run(seconds, result.calls, len(sink.arrived), _distinct(channel, sink.arrived), {
        "outcome": result.outcome, "windows": result.windows, "window_s": result.window_s,
        "submits": sink.submits, "watermark_after": result.watermark_after, "error": result.error})


def page_through_once(channel: str, client: Any, shop: Any, start: datetime, end: datetime) -> Run:
    received: list[bytes] = []
    calls, number = 0, 1
    started = time.perf_counter()
    while True:
        page = client.fetch_page(shop, start, end, number)
        calls += 1
        received += page.orders
        if not page.has_next:
            break
        number += 1
    seconds = time.perf_counter() - started
    return Run(seconds, calls, len(received), _distinct(channel, received))


def measure(channel: str, count: int, repeats: int) -> tuple[list[Run], list[Run], datetime]:
    from infra.standins.platforms import DEFAULT_SESSION, DEFAULT_SHOP, fake_for
    from orderhub.pull import client_class
    from orderhub.pull.base import Shop
    from orderhub.pull.windows import whole_seconds

    start = whole_seconds(datetime.now(UTC) - SPAN_ENDS_AGO - SPAN)
    with fake_for(channel, APP_KEY, SECRET) as fake:
        fake.load(_orders(channel, count, start, seed=1))
        client = client_class(channel)(APP_KEY, SECRET, fake.url, page_size=PAGE_SIZE)
        shop = Shop(channel, DEFAULT_SHOP, DEFAULT_SESSION)
        page_through_once(channel, client, shop, start, start + SPAN)  # warm-up: connections, caches, imports
        polls, floors = [], []
        for _ in range(repeats):
            polls.append(poll_once(channel, client, shop, start))
            floors.append(page_through_once(channel, client, shop, start, start + SPAN))
    return polls, floors, start


def figures_for(channel: str, count: int, polls: list[Run], floors: list[Run]) -> list[Figure]:
    poll = min(polls, key=lambda r: r.seconds)
    floor = min(floors, key=lambda r: r.seconds)
    label = "bare forward page-through of the same 30 minutes, same client, same run"
    arrived_all = all(r.distinct == count for r in polls)
    poll_rate, floor_rate = poll.distinct / poll.seconds, floor.distinct / floor.seconds
    return [
        Figure("poller", f"poller {channel}: orders/s ({count:,}-order window)", poll_rate, "orders/s",
               anchor=floor_rate, anchor_label=label, ratio=poll_rate / floor_rate,
               note=f"best of {len(polls)}: {poll.seconds:.2f} s (floor {floor.seconds:.2f} s); "
                    f"{poll.detail['windows']} windows, last window {poll.detail['window_s']} s, "
                    f"outcome {poll.detail['outcome']}"),
        Figure("poller", f"poller {channel}: API calls", poll.calls, "calls", anchor=floor.calls,
               anchor_label=label, ratio=poll.calls / floor.calls,
               note="poller calls include halvings (page 1 said has_next) and the empty overlap/settle windows"),
        Figure("poller", f"poller {channel}: orders per call", poll.received / poll.calls, "orders/call",
               anchor=floor.received / floor.calls, anchor_label=label,
               ratio=(poll.received / poll.calls) / (floor.received / floor.calls),
               note=f"orders received per call, duplicates included ({poll.received - poll.distinct} re-read "
                    f"on window bounds, which are inclusive at both ends); page size {PAGE_SIZE}"),
        Figure("poller", f"poller {channel}: orders arrived", min(r.distinct for r in polls), "orders",
               anchor=floor.distinct, anchor_label=label, goal=f"all {count:,}, every run", passed=arrived_all),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--channels", default=",".join(CHANNELS))
    parser.add_argument("--json")
    args = parser.parse_args()
    began = time.perf_counter()
    figures: list[Figure] = []
    details: list[str] = []
    for channel in (c for c in args.channels.split(",") if c):
        polls, floors, start = measure(channel, args.orders, args.repeats)
        figures += figures_for(channel, args.orders, polls, floors)
        details.append(f"{channel}: {args.orders:,} orders modified in "
                       f"{start:%H:%M:%S}Z-{start + SPAN:%H:%M:%S}Z, watermark {start:%H:%M:%S}Z")
        for n, (poll, floor) in enumerate(zip(polls, floors, strict=True), 1):
            details.append(f"  run {n}: poller {poll.seconds:.2f} s, {poll.calls} calls, {poll.distinct:,} distinct "
                           f"of {poll.received:,} received, {poll.detail['windows']} windows, "
                           f"{poll.detail['outcome']}, watermark -> {poll.detail['watermark_after']}"
                           f"{' ' + poll.detail['error'] if poll.detail['error'] else ''}; "
                           f"floor {floor.seconds:.2f} s, {floor.calls} calls, {floor.distinct:,} distinct")
    print_figures(f"Poller throughput on a {args.orders:,}-order window, real local HTTP (floor: bare page-through)",
                  figures)
    print("\n" + "\n".join(details))
    dump_json(args.json, "poller", figures, details, time.perf_counter() - began)


if __name__ == "__main__":
    main()
