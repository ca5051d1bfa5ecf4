"""`orderhub drift report` / `gaps report` over the channel-health sets: what events did not list is one
last row per channel, and the heading counts it truly."""

from __future__ import annotations

from infra.cli.reports import drift_report, gaps_report
from orderhub.channels.base import FieldRules
from orderhub.channels.drift import MAX_LISTED_PER_EVENT, drift_paths
from orderhub.store.health import InMemoryChannelHealth

T1, T2 = "2026-11-19T01:00:00.000+00:00", "2026-11-19T02:00:00.000+00:00"


def test_an_event_with_thousands_of_unknown_fields_reads_as_the_first_ones_and_how_many_more():
    # Given one Shopify order with 4,000 unknown fields, as the edge lists them, and one with two
    health = InMemoryChannelHealth()
    payload = {f"custom_{i:04}": i for i in range(4_000)}
    health.record("shopify", drift_paths(payload, frozenset({"id"})), (), "e1", T1)
    health.record("shopify", ("custom_0000", "note_attributes_x"), [f"status={i}" for i in range(40)], "e2", T2)
    # When the operator reads the reports
    text = drift_report(health.entries(), lambda channel: FieldRules(ignore=("note_attributes_x",)))
    lines = text.splitlines()
    # Then the heading counts the listed paths and the rest, and the rest is the last row
    assert lines[0] == (f"channel shopify: {MAX_LISTED_PER_EVENT + 1} unknown field paths, and "
                        f"{4_000 - MAX_LISTED_PER_EVENT} more not listed (an event lists its first "
                        f"{MAX_LISTED_PER_EVENT})")
    assert lines[-1].split()[:2] == [f"(+{4_000 - MAX_LISTED_PER_EVENT}", "more"]
    assert lines[-1].split()[-5:] == ["1", T1, T1, "e1", "-"]  # one event had more; the example is it
    custom = next(line for line in lines if "custom_0000" in line).split()
    assert custom[:2] == ["custom_0000", "2"] and custom[-2:] == ["e2", "-"]
    assert next(line for line in lines if "note_attributes_x" in line).split()[-1] == "ignore"
    gaps = gaps_report(health.entries()).splitlines()
    assert gaps[0] == (f"channel shopify: {MAX_LISTED_PER_EVENT} unmapped codes, and 8 more not listed "
                       f"(an event lists its first {MAX_LISTED_PER_EVENT})")
