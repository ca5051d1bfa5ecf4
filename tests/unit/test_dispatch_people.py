"""Robot subscribers (people told of order changes) and the dispatcher's alerts: one per problem, counted."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from orderhub.alerts import Alert, merge_alerts
from orderhub.dispatch.alerting import DeliveryAlerts
from orderhub.dispatch.delivery import SubscriberEndpoint, deliver
from orderhub.dispatch.robot_messages import render_order_change
from orderhub.money import format_minor
from orderhub.outbound_http import DeliveryResult, HttpReply

REFUND_REQUESTED = {
    "detail-type": "OrderUpdated", "source": "orderhub.orders", "time": "2026-11-19T02:31:00Z",
    "detail": {"event_id": "e1", "order_id": "oh_x", "channel": "mall", "channel_order_id": "M20261119001",
               "status": "DELIVERED", "previous_status": "DELIVERED", "currency": "CNY", "total_amount": 25800,
               "paid_amount": 25800, "refunded_amount": 0, "aftersale_open_amount": 25800,
               "aftersale_status": "IN_PROGRESS", "hold_reason": "", "occurred_at": "2026-11-19T02:31:00.000+00:00"},
}


class Robot:
    def __init__(self, reply: HttpReply | None = None, error: OSError | None = None) -> None:
        self.reply, self.error, self.posts = reply or HttpReply(200, b'{"errcode":0,"errmsg":"ok"}'), error, []

    def post(self, url, body, headers, timeouts):
        self.posts.append((url, json.loads(body), headers))
        if self.error:
            raise self.error
        return self.reply


@pytest.mark.parametrize("amount, currency, text", [(25800, "CNY", "258.00 CNY"), (5, "CNY", "0.05 CNY"),
                                                    (1200, "JPY", "1200 JPY"), (1234, "KWD", "1.234 KWD"),
                                                    (-150, "USD", "-1.50 USD")])
def test_money_is_shown_in_the_currencys_own_digits(amount, currency, text):
    assert format_minor(amount, currency) == text


def test_a_large_refund_request_reads_as_one_for_the_group():
    title, markdown = render_order_change(REFUND_REQUESTED, "Asia/Shanghai")
    assert title == "售后申请 mall M20261119001"
    assert "申请中 258.00 CNY" in markdown and "已退 0.00 CNY" in markdown
    assert "2026-11-19 10:31" in markdown  # business time zone, not UTC


def test_a_wecom_subscriber_gets_a_markdown_message_and_its_errcode_decides():
    endpoint = SubscriberEndpoint("large-refunds", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k1", "",
                                  kind="wecom")
    robot = Robot()
    assert deliver(REFUND_REQUESTED, endpoint, robot, now_ms=1_763_519_460_000).outcome == "delivered"
    (url, body, _), = robot.posts
    assert parse_qs(urlsplit(url).query) == {"key": ["k1"]}
    assert body["msgtype"] == "markdown" and "售后申请" in body["markdown"]["content"]
    limited = Robot(HttpReply(200, b'{"errcode":45009,"errmsg":"api freq out of limit"}'))
    assert deliver(REFUND_REQUESTED, endpoint, limited, now_ms=0).outcome == "retry"
    gone = Robot(HttpReply(200, b'{"errcode":93000,"errmsg":"invalid webhook url"}'))
    assert deliver(REFUND_REQUESTED, endpoint, gone, now_ms=0).outcome == "rejected"


def test_a_dingtalk_subscriber_signs_each_message_with_its_timestamp():
    endpoint = SubscriberEndpoint("leads", "https://oapi.dingtalk.com/robot/send?access_token=t1", "SECabc",
                                  kind="dingtalk")
    robot = Robot()
    assert deliver(REFUND_REQUESTED, endpoint, robot, now_ms=1_763_519_460_123).outcome == "delivered"
    (url, body, _), = robot.posts
    query = parse_qs(urlsplit(url).query)
    assert query["access_token"] == ["t1"] and query["timestamp"] == ["1763519460123"] and query["sign"]
    assert body["msgtype"] == "markdown" and body["markdown"]["title"].startswith("售后申请")


def test_a_robot_that_does_not_answer_is_retried():
    endpoint = SubscriberEndpoint("g", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", "", kind="wecom")
    assert deliver(REFUND_REQUESTED, endpoint, Robot(error=TimeoutError("read")), now_ms=0).outcome == "retry"


class Sent:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[Alert]] = []
        self.fail = fail

    def __call__(self, alerts):
        if self.fail:
            raise RuntimeError("SQS unavailable")
        self.batches.append(merge_alerts(alerts))
        return len(self.batches[-1])


class Recorder:
    def __init__(self) -> None:
        self.lines, self.metrics = [], []

    def error(self, message, extra=None):
        self.lines.append((message, extra))

    def add_metric(self, name, unit, value):
        self.metrics.append((name, value))


def test_a_batch_of_failures_makes_one_alert_per_subscriber_with_the_counts():
    sent, log = Sent(), Recorder()
    alerts = DeliveryAlerts(sent)
    failure = DeliveryResult("retry", 503, "HTTP 503")
    for _ in range(9):
        alerts.failing("wms", failure, attempt=2, max_attempts=5)
    alerts.parked("wms", failure, attempt=5)
    alerts.failing("erp", DeliveryResult("retry", None, "no response: TimeoutError"), attempt=1, max_attempts=5)
    alerts.flush(log, log)
    (batch,) = sent.batches
    by_key = {a.key: a for a in batch}
    assert set(by_key) == {"delivery:wms", "delivery:erp"}
    wms, erp = by_key["delivery:wms"], by_key["delivery:erp"]
    assert (wms.count, wms.severity, erp.count, erp.severity) == (10, "critical", 1, "warning")
    assert "10 push(es) to **wms** failed" in wms.text and "1 event(s) gave up" in wms.text
    assert "orderhub dlq redrive sub-wms-dlq" in wms.text and "attempt 1 of 5" in erp.text
    alerts.flush(log, log)  # nothing new: nothing sent
    assert len(sent.batches) == 1


def test_alerts_that_cannot_be_queued_never_fail_the_deliveries():
    log = Recorder()
    alerts = DeliveryAlerts(Sent(fail=True))
    alerts.failing("erp", DeliveryResult("retry", None, "no response: TimeoutError"), 1, 5)
    alerts.flush(log, log)  # does not raise
    assert log.lines[0][0] == "alerts not queued" and ("AlertsNotQueued", 1) in log.metrics
