"""The robot stand-in over real HTTP: it accepts what the platforms accept and refuses, with their
errcodes, what they refuse; the hub's robot client gets each answer right."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from infra.config import load_config
from infra.standins.robots import RobotServer, robots_for
from orderhub.alerts.robots import robot_outcome, robot_request
from orderhub.outbound_http import HttpTransport, Timeouts

# Bounds on waiting for the stand-in's thread, not times it must answer within: generous, for a busy machine.
TIMEOUTS = Timeouts(60, 60)


@pytest.fixture
def stand_in():
    server, config = robots_for(load_config())
    with server:
        yield server, config


def webhook(config, name: str):
    robot = next(r for r in config.alerts.robots if r.name == name)
    return robot.kind, robot.webhook, robot.secret


def send(kind, url, secret, markdown="### hello\nbody", now_ms=None, title="hello"):
    import time

    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    target, body, headers = robot_request(kind, url, secret, title, markdown, now_ms)
    reply = HttpTransport().post(target, body, headers, TIMEOUTS)
    return robot_outcome(kind, reply), reply


def test_robots_for_repoints_every_robot_and_robot_subscriber_and_keeps_their_keys(stand_in):
    server, config = stand_in
    original = load_config()
    for before, after in zip(original.alerts.robots, config.alerts.robots, strict=True):
        assert after.webhook.startswith(server.origin + "/")
        assert parse_qs(urlsplit(after.webhook).query) == parse_qs(urlsplit(before.webhook).query)
        assert after.secret == before.secret
    robot_subscribers = [s for s in config.subscribers if s.kind != "webhook"]
    assert robot_subscribers and all(s.endpoint.startswith(server.origin + "/") for s in robot_subscribers)
    assert {s.endpoint for s in config.subscribers if s.kind == "webhook"} == {
        s.endpoint for s in original.subscribers if s.kind == "webhook"}


def test_a_wecom_markdown_message_is_accepted_and_recorded(stand_in):
    server, config = stand_in
    result, _ = send(*webhook(config, "ops-wecom"), markdown="### 🔴 死信\n**3 times**")
    assert result.outcome == "delivered"
    (message,) = server.messages("ops-wecom")
    assert (message.msgtype, message.content) == ("markdown", "### 🔴 死信\n**3 times**")


def test_a_signed_dingtalk_markdown_message_is_accepted_with_its_title(stand_in):
    server, config = stand_in
    result, _ = send(*webhook(config, "finance-dingtalk"), title="[CRITICAL] x")
    assert result.outcome == "delivered"
    assert [(m.title, m.content) for m in server.messages("finance-dingtalk")] == [("[CRITICAL] x", "### hello\nbody")]


def test_dingtalk_refuses_a_wrong_secret_and_a_stale_timestamp(stand_in):
    import time

    server, config = stand_in
    kind, url, _ = webhook(config, "finance-dingtalk")
    result, reply = send(kind, url, "SECnot-the-robots-secret")
    assert (result.outcome, json.loads(reply.body)) == ("rejected", {"errcode": 310000, "errmsg": "sign not match"})
    two_hours_ago = int(time.time() * 1000) - 7_200_000
    result, reply = send(kind, url, webhook(config, "finance-dingtalk")[2], now_ms=two_hours_ago)
    assert result.outcome == "rejected" and json.loads(reply.body)["errmsg"] == "invalid timestamp"
    assert server.messages("finance-dingtalk") == []


def test_unknown_keys_and_tokens_are_refused_as_the_platforms_do(stand_in):
    server, _ = stand_in
    result, reply = send("wecom", f"{server.origin}/cgi-bin/webhook/send?key=nobody", "")
    assert result.outcome == "rejected" and json.loads(reply.body)["errcode"] == 93000
    result, reply = send("dingtalk", f"{server.origin}/robot/send?access_token=nobody", "SECx")
    assert result.outcome == "rejected" and json.loads(reply.body)["errcode"] == 300001


def test_a_wecom_message_over_4096_bytes_is_refused_but_the_client_never_sends_one(stand_in):
    server, config = stand_in
    kind, url, _ = webhook(config, "ops-wecom")
    raw = json.dumps({"msgtype": "markdown", "markdown": {"content": "告" * 1400}}).encode()  # 4200 bytes
    reply = HttpTransport().post(url, raw, {"Content-Type": "application/json"}, TIMEOUTS)
    assert json.loads(reply.body)["errcode"] == 40058
    result, _ = send(kind, url, "", markdown="告" * 1400)  # cut by the client between characters
    assert result.outcome == "delivered" and len(server.messages("ops-wecom")[0].content.encode()) <= 4096


@pytest.mark.parametrize("name, errcode", [("ops-wecom", 45009), ("leads-dingtalk", 130101)])
def test_the_21st_message_in_a_minute_is_rate_limited_and_retried_by_the_client(stand_in, name, errcode):
    server, config = stand_in
    robot = webhook(config, name)
    outcomes = [send(*robot, markdown=f"message {i}")[0] for i in range(21)]
    assert [o.outcome for o in outcomes] == ["delivered"] * 20 + ["retry"]
    assert f"errcode {errcode}" in outcomes[-1].reason
    assert len(server.messages(name)) == 20


def test_the_rate_limit_is_per_robot_and_per_minute():
    now = [1_000.0]
    server = RobotServer(clock=lambda: now[0])
    server.add("a", "wecom", "key-a")
    server.add("b", "wecom", "key-b")
    body = json.dumps({"msgtype": "markdown", "markdown": {"content": "x"}}).encode()
    codes = [json.loads(server.receive("/cgi-bin/webhook/send", {"key": ["key-a"]}, body)[1])["errcode"]
             for _ in range(21)]
    assert codes == [0] * 20 + [45009]
    assert json.loads(server.receive("/cgi-bin/webhook/send", {"key": ["key-b"]}, body)[1])["errcode"] == 0
    now[0] += 60
    assert json.loads(server.receive("/cgi-bin/webhook/send", {"key": ["key-a"]}, body)[1])["errcode"] == 0


def test_failures_can_be_injected_for_the_next_calls(stand_in):
    server, config = stand_in
    robot = webhook(config, "ops-wecom")
    server.fail("ops-wecom", 2)
    server.fail("leads-dingtalk", 1, errcode=-1)
    assert [send(*robot)[0].outcome for _ in range(3)] == ["retry", "retry", "delivered"]
    result, reply = send(*webhook(config, "leads-dingtalk"))
    assert result.outcome == "retry" and json.loads(reply.body)["errcode"] == -1
    assert len(server.messages("ops-wecom")) == 1 and server.robot("ops-wecom").attempts == 3
