"""A CloudWatch alarm's state change, as EventBridge puts it on the alerts queue, becomes one alert for the
robots (the alarm topic has it from CloudWatch already); a change that is not news becomes none."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from unit.alert_interleavings import SETTINGS, T0, WINDOW_S, told_in
from unit.test_alerts_notifier import Robots, Topic

from functions.notifier import handler as notifier_handler
from orderhub.alerts import Alert
from orderhub.alerts.alarms import alert_from_alarm_event, is_alarm_event
from orderhub.alerts.notifier import Notifier
from orderhub.clock import FixedClock
from orderhub.store.alerts import MemoryAlertStore

NAME = "orderhub-prod-webhook-store-failed"


def state_change(value: str = "ALARM", previous: str = "OK", *, event_id: str = "7bf73129-1428-4cd3-a780-95db273d1602",
                 name: str = NAME) -> dict:
    """The event CloudWatch sends to EventBridge's default bus (shape as AWS documents it)."""
    return {
        "version": "0", "id": event_id, "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
        "account": "123456789012", "time": "2026-11-10T16:03:10Z", "region": "cn-north-1",
        "resources": [f"arn:aws-cn:cloudwatch:cn-north-1:123456789012:alarm:{name}"],
        "detail": {
            "alarmName": name,
            "state": {"value": value, "timestamp": "2026-11-10T16:03:10.123+0000",
                      "reason": "Threshold Crossed: 1 out of the last 1 datapoints [4.0 (10/11/26 16:02:00)] was "
                                "greater than the threshold (0.0) (minimum 1 datapoint for OK -> ALARM transition).",
                      "reasonData": "{}"},
            "previousState": {"value": previous, "timestamp": "2026-11-10T15:00:00.000+0000", "reason": "..."},
            "configuration": {"description": "Webhooks could not be stored: channels are retrying.",
                              "metrics": []},
        },
    }


def test_an_alarm_going_off_is_a_critical_alert_for_the_robots_only():
    alert = alert_from_alarm_event(state_change())
    assert alert is not None
    assert (alert.key, alert.severity, alert.to_alarm_topic) == (f"alarm:{NAME}", "critical", False)
    assert alert.title == f"Alarm {NAME}" and alert.at == "2026-11-10T16:03:10.123+00:00"
    assert "Webhooks could not be stored" in alert.text and "Threshold Crossed" in alert.text
    assert alert.id == "alarm-event:7bf73129-1428-4cd3-a780-95db273d1602"


def test_an_alarm_clearing_is_told_once_and_a_new_alarm_settling_is_not_news():
    cleared = alert_from_alarm_event(state_change("OK", "ALARM"))
    assert cleared is not None and (cleared.key, cleared.severity) == (f"alarm-cleared:{NAME}", "info")
    assert alert_from_alarm_event(state_change("OK", "INSUFFICIENT_DATA")) is None
    assert alert_from_alarm_event(state_change("INSUFFICIENT_DATA", "OK")) is None


@given(value=st.sampled_from(["ALARM", "OK", "INSUFFICIENT_DATA"]),
       previous=st.sampled_from(["ALARM", "OK", "INSUFFICIENT_DATA", ""]))
def test_only_alarm_and_alarm_to_ok_are_told(value, previous):
    alert = alert_from_alarm_event(state_change(value, previous))
    assert (alert is not None) == (value == "ALARM" or (value, previous) == ("OK", "ALARM"))
    if alert is not None:
        assert not alert.to_alarm_topic and alert.key.endswith(NAME)


def test_an_alert_body_is_not_taken_for_an_alarm_event():
    assert is_alarm_event(state_change())
    assert not is_alarm_event(json.loads(Alert(key="k", title="t", text="x").body()))
    assert not is_alarm_event([1, 2])


def test_the_notifier_tells_the_robots_once_per_window_and_never_the_topic():
    store, robots, topic = MemoryAlertStore(), Robots(), Topic()
    clock = FixedClock(T0)
    notifier = Notifier(store, robots, topic, SETTINGS, clock)
    first = alert_from_alarm_event(state_change())
    assert first is not None
    handled = notifier.handle(first, "m1")
    assert set(handled.told) == {"robot:ops-wecom", "robot:leads-dingtalk"}  # the ops route, without "sns"
    assert topic.published == []
    # The alarm flaps within the window: counted, not told again
    clock.advance(WINDOW_S // 2)
    again = alert_from_alarm_event(state_change(event_id="second"))
    assert again is not None
    assert notifier.handle(again, "m2").counted == ["robot:ops-wecom", "robot:leads-dingtalk"]
    assert robots.told("wecom") == [(f"alarm:{NAME}", 1)] and topic.published == []


def sqs_record(body: str, message_id: str) -> dict:
    return {"messageId": message_id, "receiptHandle": "h", "body": body, "md5OfBody": "",
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:ap-southeast-1:123456789012:orderhub-test-alerts",
            "awsRegion": "ap-southeast-1"}


@pytest.mark.parametrize("body, expected", [
    (json.dumps(state_change()), "alert"),
    (json.dumps(state_change("OK", "INSUFFICIENT_DATA")), notifier_handler.NOT_NEWS),
    (Alert(key="k", title="t", text="x").body(), "alert"),
    (json.dumps({**state_change(), "detail": {"state": {"value": "ALARM"}}}), None),  # no alarm name
    ("not json", None),
    ("[]", None),
])
def test_the_handler_reads_alarm_changes_and_alerts_from_the_same_queue(body, expected):
    found = notifier_handler._alert(sqs_record(body, "m"))
    assert (found if not isinstance(found, Alert) else "alert") == expected


def test_a_told_alarm_names_the_alarm_and_what_cloudwatch_saw():
    store, robots, topic = MemoryAlertStore(), Robots(), Topic()
    alert = alert_from_alarm_event(state_change())
    assert alert is not None
    Notifier(store, robots, topic, SETTINGS, FixedClock(T0)).handle(alert, "m1")
    (wecom,) = [body for kind, _, body, _ in robots.posts if kind == "wecom"]
    content = wecom["markdown"]["content"]
    assert content.startswith(f"### 🔴 CRITICAL · Alarm {NAME}")
    assert told_in(content) == (f"alarm:{NAME}", 1) and "OK → ALARM" in content
