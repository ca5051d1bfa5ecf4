"""Throttling under concurrency: any interleaving of concurrent notifiers tells each problem once per
window per destination, and every occurrence is told exactly once (nothing lost, nothing doubled)."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit.alert_interleavings import SETTINGS, WINDOW_S, Turnstile, World, digests, notifier_for, work

from orderhub.alerts import Alert
from orderhub.store.alerts import MemoryAlertStore

SEND_OPERATIONS = ("send.post", "send.publish")


def play_interleaving(data: Any, store: Any, max_occurrences: int = 12) -> World:
    """Draw problems, occurrences, notifiers and an interleaving; play it; drain; run the digest."""
    problems = [(f"problem-{k}", data.draw(st.sampled_from(["ops", "warehouse"]), label=f"route {k}"))
                for k in range(data.draw(st.integers(1, 3), label="problems"))]
    occurrences = data.draw(st.lists(st.tuples(st.integers(0, len(problems) - 1), st.integers(1, 5)),
                                     min_size=1, max_size=max_occurrences), label="occurrences")
    world = World(store)
    world.queue = [(Alert(key=problems[k][0], title=f"{problems[k][0]} failing", text="Deliveries fail.",
                          route=problems[k][1], count=count, id=f"alert-{i}"), f"msg-{i}", 1)
                   for i, (k, count) in enumerate(occurrences)]
    workers = data.draw(st.integers(1, 3), label="notifiers")
    batches = [data.draw(st.integers(1, 3), label=f"batch size {w}") for w in range(workers)]
    failures_left = data.draw(st.integers(0, 4), label="failing sends")
    digest_runs = data.draw(st.integers(0, 2), label="digest runs meanwhile")

    turnstile = Turnstile(workers + 1)
    threads = [threading.Thread(target=work, args=(world, turnstile, w, batches[w]), daemon=True)
               for w in range(workers)]
    threads.append(threading.Thread(target=digests, args=(world, turnstile, workers, digest_runs), daemon=True))
    for thread in threads:
        thread.start()
    while choices := turnstile.next_choices():
        worker = data.draw(st.sampled_from(sorted(choices)), label="next")
        step = data.draw(st.sampled_from([0, 0, 1, 60, WINDOW_S - 1, WINDOW_S]), label="clock")
        world.clock.advance(min(step, world.longest_step()))
        world.fail_next_send = bool(choices[worker] in SEND_OPERATIONS and failures_left
                                    and data.draw(st.booleans(), label="send fails"))
        failures_left -= world.fail_next_send
        turnstile.grant(worker)
    for thread in threads:
        thread.join(timeout=600)  # each has passed its last gate: only a stuck one takes long
        assert not thread.is_alive(), f"{thread.name} did not finish"
    assert turnstile.failure is None, turnstile.failure

    # What SQS would still hand out (records failed back onto the queue), then the digest once the
    # last window closed: everything must be told by then.
    world.fail_next_send = False
    work(world, None, 0, batch=10)
    world.clock.advance(WINDOW_S)
    notifier_for(world, None, 0).digest(world.clock.now())
    assert_each_window_told_once_and_counts_add_up(world, problems, occurrences)
    return world


def assert_each_window_told_once_and_counts_add_up(world: World, problems: list[tuple[str, str]],
                                                   occurrences: list[tuple[int, int]]) -> None:
    expected: dict[tuple[str, str], int] = defaultdict(int)
    for k, count in occurrences:
        problem, route = problems[k]
        for destination in SETTINGS.routes[route]:
            expected[(problem, destination)] += count

    told: dict[tuple[str, str], int] = defaultdict(int)
    windows: dict[tuple[str, str], list[float]] = defaultdict(list)
    for problem, destination, at, count in world.confirms:
        told[(problem, destination)] += count
        windows[(problem, destination)].append(at)
    assert dict(told) == dict(expected), "told once at each destination:\n" + "\n".join(world.trace)
    for slot, starts in windows.items():
        starts.sort()
        gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        assert all(gap >= WINDOW_S - 0.001 for gap in gaps), f"{slot}: two alerts within one window {starts}"

    # What the destinations received says the same: one message per window, the counts adding up.
    received: dict[tuple[str, str], int] = defaultdict(int)
    messages = 0
    for destination, inbox in world.inbox.items():
        for problem, count in inbox:
            received[(problem, destination)] += count
            messages += 1
    assert dict(received) == dict(expected)
    assert messages == len(world.confirms)


# Every store call is a scheduling choice, so even the smallest example draws a lot.
INTERLEAVINGS = settings(max_examples=150, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.large_base_example, HealthCheck.data_too_large])


@INTERLEAVINGS
@given(st.data())
def test_any_interleaving_of_concurrent_notifiers_tells_once_per_window_and_loses_nothing(data):
    play_interleaving(data, MemoryAlertStore())


def test_a_storm_on_one_problem_is_one_message_per_destination_then_one_digest():
    # Given 10,000 failures of one subscriber reported as 1,000 messages within one window
    world = World(MemoryAlertStore())
    world.queue = [(Alert(key="delivery-failing:wms", title="wms failing", text="HTTP 503", count=10,
                          id=f"a{i}"), f"m{i}", 1) for i in range(1000)]
    # When one notifier works through them, the clock moving 0.2 s a message (200 s in all)
    notifier = notifier_for(world, None, 0)
    for alert, message_id, _ in world.take(1000):
        notifier.handle(alert, message_id)
        world.clock.advance(0.2)
    # Then each destination of the route was told once, at the first message
    assert {d: len(inbox) for d, inbox in world.inbox.items()} == {
        "robot:ops-wecom": 1, "robot:leads-dingtalk": 1, "sns": 1}
    assert world.inbox["sns"] == [("delivery-failing:wms", 10)]
    # And once the window closed, the digest told the rest, once
    world.clock.advance(WINDOW_S)
    report = notifier_for(world, None, 0).digest(world.clock.now())
    assert report.told == {f"delivery-failing:wms#{d}": 9_990 for d in SETTINGS.routes["ops"]}
    assert world.inbox["sns"][-1] == ("delivery-failing:wms", 9_990)
