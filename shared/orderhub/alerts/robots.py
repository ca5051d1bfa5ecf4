"""WeCom (企业微信) and DingTalk (钉钉) group robots: the request each platform expects, and what its reply means.

WeCom group robot ("消息推送", developer.work.weixin.qq.com document 91770):
- POST the robot's webhook `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<key>` (the key in the URL
  is the only credential), JSON `{"msgtype": "markdown", "markdown": {"content": ...}}`.
- `content` at most 4096 bytes of UTF-8 (a longer one is refused: errcode 40058 "markdown.content exceed
  max length 4096", seen in real replies quoted in public issues).
- 20 messages per minute per robot. Over it: errcode 45009 "api freq out of limit" (the WeChat/WeCom
  family's frequency code; public robot clients treat it as the robot's rate limit and retry later).
- Reply: HTTP 200 with `{"errcode": 0, "errmsg": "ok"}`; an unknown or deleted robot: 93000 "invalid
  webhook url"; -1: system busy, retry.

DingTalk custom robot (自定义机器人, "加签" security):
- POST `https://oapi.dingtalk.com/robot/send?access_token=<token>&timestamp=<ms>&sign=<sign>` where
  sign = urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}"))), the timestamp in
  milliseconds and within one hour of DingTalk's clock.
- JSON `{"msgtype": "markdown", "markdown": {"title": ..., "text": ...}}`; the whole body at most 20000
  bytes (460101 "message too long, exceed 20000 bytes").
- 20 messages per minute per robot: 130101 "send too fast, exceed 20 times per minute".
- 310000: sign not match / invalid timestamp / keywords not in content / IP not in the whitelist;
  300001 (300005 for an external group): "token is not exist".
- Doubt: 90030 "webhook over limit" is reported (third-party Q&A only) when a robot's call quota is
  used up; it is treated as a rate limit (retried, then parked), not as a bad request.

Sources: public clients, issue threads quoting the platforms' replies, and copies of the platforms'
pages (docs/decisions.md). Both platforms answer HTTP 200 for refusals too, so the outcome is read
from `errcode`. URLs hold the robots' keys: nothing here logs or returns them in a reason.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from orderhub.outbound_http import DeliveryResult, HttpReply

WECOM = "wecom"
DINGTALK = "dingtalk"
KINDS = (WECOM, DINGTALK)

WECOM_MARKDOWN_MAX_BYTES = 4096
DINGTALK_BODY_MAX_BYTES = 20_000
# DingTalk shows the title in the chat list and notifications; no published limit, kept short.
DINGTALK_TITLE_MAX_BYTES = 256
DINGTALK_TIMESTAMP_TOLERANCE_MS = 3_600_000
TRUNCATED = "…"
USER_AGENT = "orderhub-notifier/1"

# errcodes after which the same message can succeed later (rate limits, platform busy).
WECOM_RETRY = {-1: "system busy", 45009: "rate limit: 20 messages per minute per robot"}
DINGTALK_RETRY = {-1: "system busy", 130101: "rate limit: 20 messages per minute per robot",
                  90030: "robot call quota used up"}
# Known refusals, named for operators (any other errcode is a refusal too).
WECOM_REJECT = {93000: "invalid webhook url (robot key unknown or robot removed)",
                40058: "invalid request parameter (e.g. markdown.content over 4096 bytes)",
                40008: "invalid message type"}
DINGTALK_REJECT = {310000: "security check failed (sign, timestamp, keyword or IP whitelist)",
                   300001: "token is not exist", 300005: "token is not exist (external group)",
                   460101: "message too long (over 20000 bytes)"}


class RobotKindError(ValueError):
    pass


def truncate_utf8(text: str, max_bytes: int, marker: str = TRUNCATED) -> str:
    """`text` cut to at most `max_bytes` of UTF-8, ending with `marker` when cut; never splits a character."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    room = max_bytes - len(marker.encode())
    if room < 0:
        return ""
    # errors="ignore" drops the partial character a byte cut may leave at the end.
    return data[:room].decode(errors="ignore") + marker


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}")), before URL-encoding."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _with_query(url: str, extra: dict[str, str]) -> str:
    """`url` with `extra` query parameters set (replacing any of the same name), values percent-encoded."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in extra]
    query = urlencode(kept + list(extra.items()), quote_via=quote, safe="")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _json(document: dict) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def robot_request(kind: str, webhook: str, secret: str, title: str, markdown: str,
                  now_ms: int) -> tuple[str, bytes, dict[str, str]]:
    """(url, body, headers) of one markdown message to a robot.

    `markdown` is the whole message (its heading included); `title` is what DingTalk shows in the
    chat list (WeCom has none). Texts over the platform's byte limit are cut, never split mid-character.
    A DingTalk robot without a secret is sent unsigned (its security is then a keyword or IP list).
    """
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
    if kind == WECOM:
        content = truncate_utf8(markdown, WECOM_MARKDOWN_MAX_BYTES)
        return webhook, _json({"msgtype": "markdown", "markdown": {"content": content}}), headers
    if kind == DINGTALK:
        url = webhook
        if secret:
            url = _with_query(webhook, {"timestamp": str(now_ms), "sign": dingtalk_sign(secret, now_ms)})
        head = truncate_utf8(title, DINGTALK_TITLE_MAX_BYTES)
        body = _json({"msgtype": "markdown", "markdown": {"title": head, "text": markdown}})
        if len(body) > DINGTALK_BODY_MAX_BYTES:
            # JSON escaping can make the body longer than the text: the longest cut that fits (binary search).
            fits, low, high = b"", 0, len(markdown.encode())
            while low <= high:
                budget = (low + high) // 2
                candidate = _json({"msgtype": "markdown", "markdown": {
                    "title": head, "text": truncate_utf8(markdown, budget)}})
                if len(candidate) <= DINGTALK_BODY_MAX_BYTES:
                    fits, low = candidate, budget + 1
                else:
                    high = budget - 1
            body = fits
        return url, body, headers
    raise RobotKindError(f"unknown robot kind {kind!r} (expected one of {KINDS})")


def robot_outcome(kind: str, reply: HttpReply) -> DeliveryResult:
    """A robot's reply -> delivered / retry (rate limits, platform busy, 429, 5xx) / rejected (bad key,
    bad sign, bad request). Reasons name the errcode and never carry the URL."""
    status = reply.status
    if status == 429 or status >= 500:
        return DeliveryResult("retry", status, f"HTTP {status}")
    if not 200 <= status < 300:
        return DeliveryResult("rejected", status, f"HTTP {status}: permanent, not retried")
    try:
        document = json.loads(reply.body or b"{}")
        code = int(document["errcode"])
    except (ValueError, KeyError, TypeError):
        # A 2xx that is not the robot's JSON (a proxy's page, a cut reply): it may not have been posted.
        return DeliveryResult("retry", status, "unreadable robot reply")
    if code == 0:
        return DeliveryResult("delivered", status, "ok")
    message = str(document.get("errmsg", ""))[:120]
    retry, reject = (WECOM_RETRY, WECOM_REJECT) if kind == WECOM else (DINGTALK_RETRY, DINGTALK_REJECT)
    if code in retry:
        return DeliveryResult("retry", status, f"errcode {code}: {retry[code]}")
    known = reject.get(code)
    return DeliveryResult("rejected", status, f"errcode {code}: {known or message or 'refused'}")
