"""A pulled snapshot dates each milestone by the platform's own field, not by when the hub polled."""

from __future__ import annotations

import json

from infra.demo.traffic import EVENTS_DIR
from orderhub.channels.taobao import CHANNEL
from orderhub.lifecycle.machine import apply_event


def test_an_order_first_seen_finished_keeps_the_platforms_pay_and_consign_times():
    story = json.loads((EVENTS_DIR / "taobao" / "stories" / "finished.json").read_text(encoding="utf-8"))
    last = dict(story["snapshots"][-1])
    (event,) = CHANNEL.parse(json.dumps(last, ensure_ascii=False).encode())
    order, _ = apply_event(None, event)
    # Given only the last snapshot (modified long after payment), the milestones still read as the trade says
    assert order.milestones.created_at == _utc(last["created"])
    assert order.milestones.paid_at == _utc(last["pay_time"])
    assert order.milestones.ship_requested_at == _utc(last["consign_time"])
    assert order.milestones.paid_at < _utc(last["modified"])


def _utc(cst: str) -> str:
    from datetime import datetime, timedelta, timezone

    from orderhub.clock import utc_iso

    return utc_iso(datetime.fromisoformat(cst).replace(tzinfo=timezone(timedelta(hours=8))))
