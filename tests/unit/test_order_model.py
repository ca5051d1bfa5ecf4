"""`updated` is the mapper's cheaper `model_copy(update=...)`: it must give the same model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from orderhub.lifecycle.statuses import OrderStatus
from orderhub.models.order import Milestones, Order, Stamp, updated


def test_updated_is_model_copy_with_an_update():
    order = Order(order_id="oh_1", channel="mall", channel_order_id="M1", shop_id="s")
    changes = {"status": OrderStatus.PAID, "paid_amount": 100, "payment_stamp": Stamp(at="t", event_id="e"),
               "milestones": Milestones(paid_at="t")}
    mine, pydantics = updated(order, changes), order.model_copy(update=changes)
    assert mine == pydantics
    assert mine.model_dump() == pydantics.model_dump()
    assert mine.model_fields_set == pydantics.model_fields_set
    assert type(mine) is Order and order.status is OrderStatus.PENDING_PAYMENT  # the original is untouched


def test_an_updated_model_stays_frozen():
    milestones = updated(Milestones(), {"created_at": "t"})
    assert milestones == Milestones(created_at="t")
    with pytest.raises(ValidationError):
        milestones.paid_at = "u"  # type: ignore[misc]


OFFSETS = st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))])


@settings(max_examples=1000)
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSETS))
def test_event_times_are_stored_as_the_clock_spells_them(at):
    from orderhub.clock import utc_iso
    from orderhub.lifecycle.machine import event_iso

    assert event_iso(at) == utc_iso(at)
