"""Alert volume during a storm of failures: how many messages the people on duty get.

    python -m bench.alerts [--events 667]

The hub runs in this process (infra.local.inprocess: moto, the real handlers driven as Lambda
drives them, AWS's clock virtual): dispatcher, notifier (its clock the virtual one, so windows are
virtual minutes), hub_health and the alert digest every 5 virtual minutes, the robot stand-in
(infra.standins.robots) for the ops group. The WMS, ERP and CRM are all down for the whole storm: `--events`
domain events are put on each subscriber's queue over 30 virtual minutes (as EventBridge would),
each retried on the documented default backoff (30 s, 2, 10, 30 min; 5 attempts) and then parked,
until about 10,000 delivery attempts have failed.

- OURS: the messages the ops group's robot accepted, per problem (one per subscriber) per
  5-minute window, and in all.
- ANCHOR: one alert per failed delivery (what a dispatcher that alerts on every failure sends).

GOAL: at most 1 alert per subscriber per window (the count of occurrences travels with it).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter

from bench._support import Figure, dump_json, print_figures

STEP_S = 30
WINDOW_SCHEDULE_S = 300


def _scheduled(hub) -> dict[str, str]:
    """What EventBridge Scheduler hands a scheduled function, at AWS's (virtual) time."""
    return {"schedule": "bench", "scheduled_time": hub.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=667, help="domain events per subscriber (x3 x5 attempts)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    began = time.perf_counter()

    from bench.dispatch import domain_events
    from infra.config import load_config
    from infra.local.inprocess import client, inprocess_hub

    config = load_config()
    webhooks = [s.model_copy(update={"backoff_seconds": [30, 120, 600, 1800], "max_attempts": 5})
                for s in config.subscribers if s.kind == "webhook"]
    config = config.model_copy(update={"subscribers": webhooks})
    events = domain_events(args.events)
    with inprocess_hub(config) as hub:
        service = hub.service()
        service._environment("notifier").module._clock = hub.clock  # windows in virtual time
        for name in hub.paths:
            hub.receiver.fail(hub.paths[name], times=10**9)
        sqs = client("sqs")
        chunks = 6  # the events of the storm arrive over 30 minutes
        per_chunk = -(-len(events) // chunks)
        window_s = config.alerts.window_s
        next_schedule = 0.0
        while True:
            elapsed = hub.clock.elapsed_s
            chunk = int(elapsed // WINDOW_SCHEDULE_S)
            if chunk < chunks and elapsed % WINDOW_SCHEDULE_S == 0:
                for sub in webhooks:
                    body = [json.dumps(e) for e in events[chunk * per_chunk:(chunk + 1) * per_chunk]]
                    for start in range(0, len(body), 10):
                        sqs.send_message_batch(QueueUrl=hub.res.queue_urls[f"sub-{sub.name}"], Entries=[
                            {"Id": str(i), "MessageBody": b} for i, b in enumerate(body[start:start + 10])])
            service.drain()
            if elapsed >= next_schedule:
                service.invoke("hub_health", _scheduled(hub))
                service.invoke("notifier", _scheduled(hub))  # the alert digest
                service.drain()
                next_schedule += WINDOW_SCHEDULE_S
            pending = {q: n for q, n in service.backlog().items() if q.startswith("sub-")}
            if chunk >= chunks and not any(pending.values()):
                break
            hub.clock.advance(STEP_S)
        # one more digest a window later: what was counted after the last alert is told too
        hub.clock.advance(window_s)
        service.invoke("notifier", _scheduled(hub))
        failures = sum(inbox.failures_served for inbox in hub.inboxes.values())
        start = hub.clock.start.timestamp()
        ops = config.alerts.routes[config.alerts.default_route].robots
        messages = [m for robot in ops for m in hub.robots.messages(robot)]
        per_window: Counter = Counter()
        told: Counter = Counter()
        for m in messages:
            key = (re.search(r"Alert key: (\S+)", m.content) or [None, "?"])[1]
            per_window[(key, int((m.at - start) // window_s))] += 1
            found = re.search(r"\*\*(\d+) (?:times|more)", m.content)
            told[key] += int(found[1]) if found else 1
        virtual_minutes = hub.clock.elapsed_s / 60

    worst = max(per_window.values(), default=0)
    figures = [
        Figure("alerts", "alerts per subscriber per 5-min window during the storm (max)", worst, "alerts",
               goal="<= 1 per subscriber per window", passed=worst <= 1,
               note=f"{len(per_window)} (problem, window) pairs over {virtual_minutes:.0f} virtual minutes"),
        Figure("alerts", "alert messages for the whole storm (vs one per failure)", len(messages), "alerts",
               anchor=failures, ratio=len(messages) / failures if failures else None,
               note=f"{failures:,} failed delivery attempts by 3 subscribers; occurrences told {dict(told)}"),
    ]
    print_figures("alert volume during a storm", figures)
    details = [f"{key} window {w}: {n}" for (key, w), n in sorted(per_window.items())]
    dump_json(args.json, "alerts", figures, details, time.perf_counter() - began)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
