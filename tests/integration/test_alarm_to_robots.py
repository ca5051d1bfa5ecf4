"""An alarm reaches the robots: EventBridge (moto) matches CloudWatch's state change with the stack's
pattern, puts it on the alerts queue, and the real notifier tells the robot stand-in once; the alarm
topic, which CloudWatch publishes to itself, gets nothing more from the notifier."""

from __future__ import annotations

import json

from integration import test_notifier_on_moto as notifier_tier
from integration.test_notifier_on_moto import alarm_messages, drain_to_notifier
from unit.alert_interleavings import told_in
from unit.test_alarm_events import state_change

from infra.topology import ALERTS_QUEUE, alarm_state_change_pattern, physical_name

# The notifier tier's fixture: the hub on moto, its robots on the stand-in, an inbox on the alarm topic.
alerting = notifier_tier.alerting


def route_alarms_to_alerts(hub) -> None:
    """The stack's rule (infra/cdk/constructs/monitoring.py), on moto's default bus."""
    events = hub.client("events")
    prefix = physical_name(hub.topology.app, hub.config.stage, "")
    events.put_rule(Name=f"{prefix}alarms-to-alerts", EventPattern=json.dumps(alarm_state_change_pattern(prefix)),
                    State="ENABLED")
    events.put_targets(Rule=f"{prefix}alarms-to-alerts",
                       Targets=[{"Id": "alerts", "Arn": hub.res.queue_arns[ALERTS_QUEUE]}])


def cloudwatch_says(hub, change: dict) -> None:
    """What CloudWatch does on a state change: one event on the default bus."""
    reply = hub.client("events").put_events(Entries=[{
        "Source": change["source"], "DetailType": change["detail-type"], "Resources": change["resources"],
        "Detail": json.dumps(change["detail"])}])
    assert reply["FailedEntryCount"] == 0


def test_an_alarm_going_off_is_one_robot_message_and_its_clearing_another(alerting):
    hub = alerting
    route_alarms_to_alerts(hub)
    name = physical_name(hub.topology.app, hub.config.stage, "webhook-store-failed")
    # Given the store-failure alarm goes off, and (in the same window) goes off again after a flap
    cloudwatch_says(hub, state_change("ALARM", "OK", name=name))
    cloudwatch_says(hub, state_change("ALARM", "OK", name=name))
    assert drain_to_notifier(hub) == []
    # Then the ops robot was told once, critical, naming the alarm; the alarm topic got nothing from us
    (message,) = hub.robots.messages("ops-wecom")
    assert message.content.startswith(f"### 🔴 CRITICAL · Alarm {name}")
    assert told_in(message.content) == (f"alarm:{name}", 1)
    assert alarm_messages(hub) == []
    # When it clears, that is told too (a separate problem key: it is not held back by the alarm's window)
    cloudwatch_says(hub, state_change("OK", "ALARM", name=name))
    assert drain_to_notifier(hub) == []
    assert [told_in(m.content) for m in hub.robots.messages("ops-wecom")][1:] == [(f"alarm-cleared:{name}", 1)]


def test_other_stages_alarms_and_changes_that_are_not_news_reach_no_robot(alerting):
    hub = alerting
    route_alarms_to_alerts(hub)
    ours = physical_name(hub.topology.app, hub.config.stage, "intake-dlq-depth")
    # Another stage's alarm does not match the rule; a new alarm settling (INSUFFICIENT_DATA) does not
    # either; OK after INSUFFICIENT_DATA matches but is not news to the notifier
    cloudwatch_says(hub, state_change("ALARM", "OK", name=physical_name(hub.topology.app, "other", "intake-dlq-depth")))
    cloudwatch_says(hub, state_change("INSUFFICIENT_DATA", "OK", name=ours))
    cloudwatch_says(hub, state_change("OK", "INSUFFICIENT_DATA", name=ours))
    assert len(hub.receive(ALERTS_QUEUE)) == 1
    hub.client("sqs").purge_queue(QueueUrl=hub.queue_url(ALERTS_QUEUE))
    cloudwatch_says(hub, state_change("OK", "INSUFFICIENT_DATA", name=ours))
    assert drain_to_notifier(hub) == []  # acknowledged, not retried
    assert hub.robots.messages("ops-wecom") == [] and alarm_messages(hub) == []
