"""One alarm per pulled channel on how far behind its pulls are (ING-5), on the metric the poller emits."""

from __future__ import annotations

import json

import pytest

from infra.topology import PULL_CHANNELS
from infrastructure.synthesis import Synth

THIRTY_MINUTES_S = 30 * 60


def _lag_alarms(synth: Synth) -> dict[str, dict]:
    """channel -> the properties of the alarm on its PullLagSeconds."""
    found: dict[str, dict] = {}
    for alarm in synth.of_type("AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if props.get("MetricName") == "PullLagSeconds":
            (channel,) = [d["Value"] for d in props["Dimensions"] if d["Name"] == "channel"]
            assert channel not in found, f"two lag alarms for {channel}"
            found[channel] = props
    return found


def _topic(synth: Synth) -> dict:
    (topic_id,) = synth.of_type("AWS::SNS::Topic")
    return {"Ref": topic_id}


def _emitted(channel: str, synth: Synth, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> dict:
    """The embedded-metric document the poller prints for a channel's lag, in its Lambda environment."""
    from aws_lambda_powertools.metrics import MetricUnit

    from functions.channel_poller import handler

    for key, value in synth.topology.function("channel_poller").environment.items():
        if isinstance(value, str):
            monkeypatch.setenv(key, value)
    capsys.readouterr()
    handler._count(channel, "PullLagSeconds", 42.0, MetricUnit.Seconds)
    (line,) = [line for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    return json.loads(line)


def test_every_pulled_channel_alarms_when_its_pulls_fall_more_than_half_an_hour_behind(synth: Synth) -> None:
    alarms = _lag_alarms(synth)
    pulled = synth.topology.function("channel_poller").environment["PULL_CHANNELS"]
    assert set(alarms) == set(PULL_CHANNELS) == set(str(pulled).split(","))
    for channel, alarm in alarms.items():
        assert alarm["Namespace"] == "OrderHub", channel
        assert alarm["Statistic"] == "Maximum", channel
        assert alarm["Period"] == 300, channel
        assert alarm["Threshold"] == THIRTY_MINUTES_S, channel
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold", channel
        assert alarm["EvaluationPeriods"] == 1, channel
        assert alarm["AlarmActions"] == [_topic(synth)] and alarm["OKActions"] == [_topic(synth)], channel
        # One run per 5 minutes need not land in every period: a period without one keeps the state.
        assert alarm["TreatMissingData"] == "ignore", channel
        assert alarm["AlarmName"] == synth.settings.name(f"pull-lag-{channel}")


def test_each_lag_alarm_watches_exactly_the_metric_the_poller_emits(synth: Synth, monkeypatch, capsys) -> None:
    # CloudWatch matches a metric by its whole dimension set: Powertools adds `service` beside `channel`.
    for channel, alarm in _lag_alarms(synth).items():
        document = _emitted(channel, synth, monkeypatch, capsys)
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        assert alarm["Namespace"] == directive["Namespace"]
        (dimension_names,) = directive["Dimensions"]
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {n: document[n] for n in dimension_names}
        assert [m["Name"] for m in directive["Metrics"]] == [alarm["MetricName"]]
