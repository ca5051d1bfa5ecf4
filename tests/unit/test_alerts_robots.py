"""WeCom / DingTalk robot protocols: the request each platform expects and what its replies mean."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import parse_qs, quote_plus, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderhub.alerts.robots import (
    DINGTALK_BODY_MAX_BYTES,
    WECOM_MARKDOWN_MAX_BYTES,
    dingtalk_sign,
    robot_outcome,
    robot_request,
    truncate_utf8,
)
from orderhub.outbound_http import HttpReply

WECOM_HOOK = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
DING_HOOK = "https://oapi.dingtalk.com/robot/send?access_token=0c23deadbeef"
DING_SECRET = "SECdev-finance-dingtalk-sign-secret-93d1"


def reply(errcode: int, errmsg: str = "", status: int = 200) -> HttpReply:
    return HttpReply(status, json.dumps({"errcode": errcode, "errmsg": errmsg}).encode())


# --------------------------------------------------------------------------- DingTalk signing

def test_dingtalk_sign_matches_a_published_worked_example():
    # Given the example pair (timestamp 1700000000000, secret "secret") published with a public client
    # (docs.rs crate dingding, signature.rs), url-encoded as DingTalk's own Python sample does (quote_plus)
    published = "OuzzJR5%2BxZ4%2FEYwqtNt6sMYZQMTa%2FHEGvc9miJe7XzY%3D"
    assert quote_plus(dingtalk_sign("secret", 1_700_000_000_000)) == published


def test_dingtalk_request_carries_timestamp_and_sign_computed_independently():
    now_ms = 1_763_772_000_123
    url, body, headers = robot_request("dingtalk", DING_HOOK, DING_SECRET, "Dead letters", "### Dead letters", now_ms)

    # The signature as DingTalk's documentation computes it, here by hand.
    string_to_sign = f"{now_ms}\n{DING_SECRET}".encode()
    expected = base64.b64encode(hmac.new(DING_SECRET.encode(), string_to_sign, hashlib.sha256).digest()).decode()
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "oapi.dingtalk.com", "/robot/send")
    query = parse_qs(parts.query)
    assert query == {"access_token": ["0c23deadbeef"], "timestamp": [str(now_ms)], "sign": [expected]}
    # '+', '/' and '=' of base64 travel percent-encoded (a raw '+' would reach DingTalk as a space).
    raw_sign = parts.query.split("sign=", 1)[1]
    assert raw_sign == quote_plus(expected) and "+" not in raw_sign
    assert json.loads(body) == {"msgtype": "markdown",
                                "markdown": {"title": "Dead letters", "text": "### Dead letters"}}
    assert headers["Content-Type"].startswith("application/json")


def test_a_dingtalk_webhook_that_already_has_a_stale_sign_gets_a_fresh_one():
    stale = DING_HOOK + "&timestamp=1&sign=old"
    url, _, _ = robot_request("dingtalk", stale, DING_SECRET, "t", "m", 5_000)
    query = parse_qs(urlsplit(url).query)
    assert query["timestamp"] == ["5000"] and query["sign"] == [dingtalk_sign(DING_SECRET, 5_000)]


def test_a_dingtalk_robot_without_secret_is_posted_unsigned():
    url, _, _ = robot_request("dingtalk", DING_HOOK, "", "t", "m", 5_000)
    assert url == DING_HOOK


def test_wecom_request_is_a_markdown_message_to_the_webhook_as_given():
    url, body, _ = robot_request("wecom", WECOM_HOOK, "", "ignored by WeCom", "### 标题\n**粗体**", 0)
    assert url == WECOM_HOOK
    assert json.loads(body) == {"msgtype": "markdown", "markdown": {"content": "### 标题\n**粗体**"}}


def test_an_unknown_robot_kind_is_refused():
    with pytest.raises(ValueError, match="unknown robot kind"):
        robot_request("feishu", "https://example.invalid", "", "t", "m", 0)


# --------------------------------------------------------------------------- truncation

@given(st.text(max_size=3000), st.integers(min_value=0, max_value=5000))
def test_truncation_never_splits_a_character_and_keeps_the_limit(text, limit):
    cut = truncate_utf8(text, limit)
    assert len(cut.encode()) <= max(limit, 0)
    if len(text.encode()) <= limit:
        assert cut == text
    elif limit >= 3:
        assert cut.endswith("…") and text.startswith(cut[:-1])


def test_wecom_content_is_cut_to_4096_bytes_of_utf8_between_characters():
    markdown = "### 死信\n" + "订单积压" * 2000  # 3 bytes a character: far over the limit
    _, body, _ = robot_request("wecom", WECOM_HOOK, "", "", markdown, 0)
    content = json.loads(body)["markdown"]["content"]
    assert len(content.encode()) <= WECOM_MARKDOWN_MAX_BYTES
    assert len(content.encode()) > WECOM_MARKDOWN_MAX_BYTES - 6  # cut at the limit, not far before
    assert content.endswith("…") and markdown.startswith(content[:-1])


@pytest.mark.parametrize("filler", ["队列" * 9000, "\"quoted\"\n" * 3000, "\x01" * 19_000])
def test_dingtalk_body_fits_20000_bytes_even_when_json_escaping_grows_it(filler):
    _, body, _ = robot_request("dingtalk", DING_HOOK, DING_SECRET, "title", "### head\n" + filler, 0)
    assert len(body) <= DINGTALK_BODY_MAX_BYTES
    text = json.loads(body)["markdown"]["text"]
    assert text.startswith("### head") and text.endswith("…")


# --------------------------------------------------------------------------- replies

@pytest.mark.parametrize("kind, code, outcome", [
    ("wecom", 0, "delivered"),
    ("wecom", 45009, "retry"),  # api freq out of limit: 20 messages a minute per robot
    ("wecom", -1, "retry"),  # system busy
    ("wecom", 93000, "rejected"),  # invalid webhook url: key unknown or robot removed
    ("wecom", 40058, "rejected"),  # markdown.content exceed max length 4096
    ("wecom", 40008, "rejected"),
    ("wecom", 12345, "rejected"),  # anything unknown is a refusal, not a silent success
    ("dingtalk", 0, "delivered"),
    ("dingtalk", 130101, "retry"),  # send too fast, exceed 20 times per minute
    ("dingtalk", -1, "retry"),
    ("dingtalk", 310000, "rejected"),  # sign not match / invalid timestamp / keywords / IP
    ("dingtalk", 300001, "rejected"),  # token is not exist
    ("dingtalk", 300005, "rejected"),
    ("dingtalk", 460101, "rejected"),  # message too long
])
def test_errcodes_are_classified(kind, code, outcome):
    result = robot_outcome(kind, reply(code, "from the platform"))
    assert result.outcome == outcome and result.status == 200
    if code:
        assert f"errcode {code}" in result.reason


def test_the_same_errcode_means_what_its_platform_says():
    # 45009 is WeCom's rate limit; DingTalk never sends it, so there it is an unknown refusal.
    assert robot_outcome("wecom", reply(45009)).outcome == "retry"
    assert robot_outcome("dingtalk", reply(45009)).outcome == "rejected"


@pytest.mark.parametrize("status, outcome", [(429, "retry"), (500, "retry"), (502, "retry"), (503, "retry"),
                                             (404, "rejected"), (400, "rejected"), (301, "rejected")])
def test_http_status_before_errcode(status, outcome):
    assert robot_outcome("wecom", HttpReply(status, b"<html>")).outcome == outcome


@pytest.mark.parametrize("body", [b"", b"<html>gateway</html>", b'{"ok": true}', b'{"errcode": "x"}'])
def test_a_2xx_that_is_not_the_robots_json_is_retried(body):
    assert robot_outcome("dingtalk", HttpReply(200, body)).outcome == "retry"


def test_a_reason_never_carries_the_webhook_key():
    answer = reply(93000, "invalid webhook url, hint: [1755605200056773468916791]")
    assert "693a91f6" not in robot_outcome("wecom", answer).reason
