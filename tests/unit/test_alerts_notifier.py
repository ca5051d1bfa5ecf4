"""The notifier's behaviour, one destination outcome at a time: told, counted, retried, digested."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from unit.alert_interleavings import SETTINGS, T0, WINDOW_S, told_in

from infra.config import load_config
from orderhub.alerts import Alert, merge_alerts
from orderhub.alerts.notifier import AlertNotDelivered, AlertSettings, Notifier
from orderhub.alerts.robots import dingtalk_sign
from orderhub.clock import FixedClock, utc_iso
from orderhub.outbound_http import HttpReply
from orderhub.store.alerts import MemoryAlertStore

OK = b'{"errcode":0,"errmsg":"ok"}'
WALL_MS = 1_763_690_400_000


class Robots:
    """Answers each robot with the next scripted reply (default: ok), recording what was posted."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str, dict, bool]] = []  # (kind, url, body, accepted)
        self.script: dict[str, list[HttpReply | OSError]] = {}

    def post(self, url, body, headers, timeouts):
        kind = "wecom" if "wecom" in url else "dingtalk"
        queued = self.script.get(kind) or []
        answer = queued.pop(0) if queued else HttpReply(200, OK)
        self.posts.append((kind, url, json.loads(body), answer == HttpReply(200, OK)))
        if isinstance(answer, OSError):
            raise answer
        return answer

    def told(self, kind: str) -> list[tuple[str, int]]:
        """(key, count) of every message the robot accepted."""
        return [told_in(body["markdown"].get("content") or body["markdown"]["text"])
                for k, _, body, accepted in self.posts if k == kind and accepted]


class Topic:
    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []
        self.fail = 0

    def publish(self, subject, message):
        if self.fail:
            self.fail -= 1
            raise ConnectionError("SNS throttled")
        self.published.append((subject, message))


@pytest.fixture
def hub():
    class Hub:
        store = MemoryAlertStore()
        robots = Robots()
        topic = Topic()
        clock = FixedClock(T0)

        def notifier(self, settings: AlertSettings = SETTINGS) -> Notifier:
            return Notifier(self.store, self.robots, self.topic, settings, self.clock, wall_ms=lambda: WALL_MS)

    return Hub()


def failing(n: int = 1, **overrides) -> Alert:
    return Alert(**{"key": "delivery-failing:wms", "title": "Deliveries to wms are failing",
                    "text": "Last answer: HTTP 503.", "severity": "warning", "count": n, **overrides})


def test_the_first_occurrence_is_told_at_once_to_every_destination_of_its_route(hub):
    handled = hub.notifier().handle(failing(3, id="a1"), "m1")
    assert handled.told == {"robot:ops-wecom": 3, "robot:leads-dingtalk": 3, "sns": 3}
    assert hub.robots.told("wecom") == [("delivery-failing:wms", 3)]
    assert hub.robots.told("dingtalk") == [("delivery-failing:wms", 3)]
    (subject, message), = hub.topic.published
    assert subject == "[WARNING] Deliveries to wms are failing"
    assert "3 times" in message and "Last answer: HTTP 503." in message


def test_the_dingtalk_robot_is_signed_with_the_wall_clock(hub):
    hub.clock.advance(86_400 * 30)  # a moved test clock must not make DingTalk refuse the timestamp
    hub.notifier().handle(failing(), "m1")
    url = next(u for k, u, _, _ in hub.robots.posts if k == "dingtalk")
    query = parse_qs(urlsplit(url).query)
    assert query["timestamp"] == [str(WALL_MS)] and query["sign"] == [dingtalk_sign("SECx", WALL_MS)]


def test_within_the_window_occurrences_are_counted_then_told_with_the_next_alert(hub):
    notifier = hub.notifier()
    notifier.handle(failing(1), "m1")
    for i in range(5):
        hub.clock.advance(30)
        handled = notifier.handle(failing(2), f"m{i + 2}")
        assert handled.told == {} and len(handled.counted) == 3
    hub.clock.advance(WINDOW_S)
    handled = notifier.handle(failing(1), "m9")
    assert handled.told["sns"] == 11  # the 10 counted plus this one
    assert hub.robots.told("wecom") == [("delivery-failing:wms", 1), ("delivery-failing:wms", 11)]
    second = hub.topic.published[-1][1]
    assert "11 more since the last alert (at 10:00)" in second
    assert "First 2026-11-21 10:00:30 · last 2026-11-21 10:07:30 (Asia/Shanghai)" in second


def test_a_rate_limited_robot_fails_the_record_and_the_retry_tells_only_what_was_missing(hub):
    # Given WeCom answers "api freq out of limit" once
    hub.robots.script["wecom"] = [HttpReply(200, b'{"errcode":45009,"errmsg":"api freq out of limit"}')]
    alert = failing(4, id="alert-1")
    with pytest.raises(AlertNotDelivered) as failed:
        hub.notifier().handle(alert, "m1")
    assert set(failed.value.failures) == {"robot:ops-wecom"}
    assert "45009" in failed.value.failures["robot:ops-wecom"]
    assert len(hub.topic.published) == 1 and hub.robots.told("dingtalk") == [("delivery-failing:wms", 4)]

    # When SQS hands the record out again, in a later invocation
    hub.clock.advance(180)
    retry = hub.notifier()
    retry.recall(["alert-1"])
    handled = retry.handle(alert, "m1")

    # Then only WeCom is told, with the whole count; the others are not told or counted twice
    assert handled.told == {"robot:ops-wecom": 4}
    assert sorted(handled.earlier) == ["robot:leads-dingtalk", "sns"]
    assert len(hub.topic.published) == 1 and len(hub.robots.told("dingtalk")) == 1
    hub.clock.advance(WINDOW_S)
    assert hub.notifier().digest(hub.clock.now()).told == {}  # nothing was left pending anywhere


def test_a_robot_that_failed_is_not_tried_again_in_the_same_invocation(hub):
    hub.robots.script["wecom"] = [OSError("connection refused")]
    notifier = hub.notifier()
    for key in ("delivery-failing:wms", "delivery-failing:erp", "dead-letters:sub-wms-dlq"):
        with pytest.raises(AlertNotDelivered):
            notifier.handle(failing(key=key), key)
    wecom_posts = [u for k, u, _, _ in hub.robots.posts if k == "wecom"]
    assert len(wecom_posts) == 1  # one timeout per dead robot and invocation, not one per record
    assert len(hub.topic.published) == 3  # the healthy destinations were told each problem


def test_a_refused_robot_key_fails_the_record_with_the_reason(hub):
    hub.robots.script["wecom"] = [HttpReply(200, b'{"errcode":93000,"errmsg":"invalid webhook url"}')]
    with pytest.raises(AlertNotDelivered, match="errcode 93000"):
        hub.notifier().handle(failing(), "m1")
    # The claim was released: the next attempt tells WeCom instead of counting into a window nobody told
    hub.notifier().handle(failing(), "m2")
    assert hub.robots.told("wecom") == [("delivery-failing:wms", 1)]


def test_a_failed_alarm_topic_publish_is_retried_like_a_robot(hub):
    hub.topic.fail = 1
    with pytest.raises(AlertNotDelivered, match="alarm topic"):
        hub.notifier().handle(failing(id="a1"), "m1")
    hub.notifier().handle(failing(id="a2"), "m2")
    assert [told_in(m) for _, m in hub.topic.published] == [("delivery-failing:wms", 1)]


def test_an_alert_for_an_unknown_route_goes_to_the_default_route(hub):
    handled = hub.notifier().handle(failing(route="no-such-team"), "m1")
    assert handled.route == "ops" and set(handled.told) == set(SETTINGS.routes["ops"])


def test_a_route_without_sns_publishes_nothing_on_the_topic(hub):
    handled = hub.notifier().handle(failing(route="warehouse"), "m1")
    assert handled.told == {"robot:ops-wecom": 1} and hub.topic.published == []


def test_the_sns_subject_is_one_line_under_100_characters(hub):
    hub.notifier().handle(failing(title="Deliveries\nto " + "a-very-long-subscriber-name " * 10), "m1")
    subject = hub.topic.published[0][0]
    assert len(subject) < 100 and "\n" not in subject and subject.startswith("[WARNING] Deliveries to")


def test_the_digest_tells_a_quiet_problem_once_and_counts_as_its_windows_alert(hub):
    notifier = hub.notifier()
    notifier.handle(failing(), "m1")
    hub.clock.advance(60)
    notifier.handle(failing(6), "m2")  # counted: the window is open
    hub.clock.advance(100)
    assert hub.notifier().digest(hub.clock.now()).told == {}  # the window is still open

    hub.clock.advance(WINDOW_S)  # 460 s after the first alert, 400 s after the last occurrence
    report = hub.notifier().digest(hub.clock.now())
    assert report.told == {"delivery-failing:wms#robot:ops-wecom": 6, "delivery-failing:wms#robot:leads-dingtalk": 6,
                           "delivery-failing:wms#sns": 6}
    message = hub.topic.published[-1][1]
    assert "6 more since the last alert (at 10:00), none in the last 7 min" in message
    assert hub.notifier().digest(hub.clock.now()).told == {}  # told once

    # The digest opened a window: an occurrence right after is counted, not told
    hub.clock.advance(10)
    assert hub.notifier().handle(failing(), "m3").told == {}


def test_a_digest_that_cannot_reach_a_robot_keeps_the_count_for_the_next_run(hub):
    notifier = hub.notifier()
    notifier.handle(failing(), "m1")
    notifier.handle(failing(5), "m2")
    hub.clock.advance(WINDOW_S + 60)
    hub.robots.script["wecom"] = [HttpReply(503)]
    report = hub.notifier().digest(hub.clock.now())
    assert report.failed == {"delivery-failing:wms#robot:ops-wecom": "HTTP 503"}
    hub.clock.advance(300)
    assert hub.notifier().digest(hub.clock.now()).told == {"delivery-failing:wms#robot:ops-wecom": 5}


def test_settings_from_the_configuration_documents():
    config = load_config()
    params, secrets = config.parameter_documents()
    settings = AlertSettings.from_documents(
        json.loads(params[f"{config.config_prefix}/alerts/settings"]),
        json.loads(secrets[f"{config.secrets_prefix}/alerts/robots"]), config.business_timezone)
    assert settings.window_s == config.alerts.window_s
    assert settings.routes["finance"] == ("robot:finance-dingtalk", "sns")
    finance = settings.destinations["robot:finance-dingtalk"]
    assert finance.kind == "dingtalk" and finance.secret.startswith("SEC") and "access_token=" in finance.webhook
    assert settings.route_of(Alert(key="k", title="t", text="x")) == ("ops", ("robot:ops-wecom", "sns"))


def test_alerts_merged_by_a_producer_keep_the_first_and_last_occurrence():
    t1, t2, t3 = (utc_iso(T0 + timedelta(seconds=s)) for s in (0, 40, 90))
    merged, = merge_alerts([failing(at=t2), failing(2, at=t3), failing(at=t1)])
    assert (merged.count, merged.first_at, merged.at) == (4, t1, t3)


def test_a_queued_alert_reads_back_and_unknown_fields_are_ignored():
    body = json.dumps({**json.loads(failing(2, id="x1").body()), "added_later": True})
    assert Alert.from_body(body) == failing(2, id="x1")
    with pytest.raises(ValueError):
        Alert.from_body(json.dumps({"key": "", "title": "t", "text": "x"}))
