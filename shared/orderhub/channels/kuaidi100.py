"""`kuaidi100`: 快递100 订阅推送 (tracking subscription push), the carrier callback (OUT-4).

Each waybill is subscribed at poll.kuaidi100.com/poll (by whatever holds the merchant's
kuaidi100 key: the ERP or shipping tool; the hub does not subscribe waybills itself) with
`parameters.callbackurl` = `https://<hub>/webhooks/kuaidi100` and `parameters.salt` = the
channel secret (and `resultv2=4` for the detailed states). kuaidi100 then pushes every change of
the parcel. Contract
(events/kuaidi100/README.md has it in brief, with samples):

- `POST`, `Content-Type: application/x-www-form-urlencoded`, form fields `param` (a JSON
  document) and `sign`; other form fields are ignored. At most 256 KiB (each push carries the
  parcel's full history).
- `sign` = upper-case hex MD5(param + salt), over the `param` text exactly as sent (UTF-8),
  salt = the `salt` given at subscription. When the subscription had no salt (null) kuaidi100
  sends no `sign`; with an empty salt it still signs (MD5 of param alone, forgeable). The hub
  refuses both: a push must carry a sign made with a configured, non-empty salt. During a
  rotation every configured salt is tried (waybills subscribed earlier keep the old salt until
  their tracking ends).
- No timestamp or nonce is signed: a captured push can be replayed as long as the salt is
  valid. A replay is harmless: its event id is a hash of (waybill, state, newest scan time), so
  it is a duplicate in the order's log, and the parcel state is last-writer-wins by scan time,
  so an old push never overwrites a newer one.
- `param`: `status` (monitoring: polling | shutdown = ended, sent when signed for | abort =
  stopped, e.g. "3天查询无记录", "60天无变化", or after kuaidi100 corrected the carrier code |
  updateall = full re-push), `billstatus` (deprecated), `message`, `autoCheck`, `comOld`,
  `comNew`, `lastResult` {`message`, `state`, `status` (communication status, ignored),
  `condition`, `ischeck`, `com`, `nu`, `data`[{`context`, `time`, `ftime`, `status`,
  `statusCode`, `areaCode`, `areaName`, `areaCenter`, `areaPinYin`, `location`}], `routeInfo`,
  `isLoop`}, and `destResult` (same shape; international tracking only, not read).
  `data` is the full history, newest first. Times are Beijing time `yyyy-MM-dd HH:mm:ss`.
- `lastResult.state`: 0 在途, 1 揽收, 2 疑难, 3 签收, 4 退签, 5 派件, 6 退回, 7 转投, 8 清关, 14 拒签;
  with resultv2 the detailed states 101/102/103, 1001/1002/1003, 501, 301-304, 401, 201-210,
  10-13 (`LOGISTICS_STATE` below maps every one).
- Reply within 20 s with `{"result":true,"returnCode":"200","message":"成功"}` once stored.
  Anything else is a failure: kuaidi100 pushes again about 30 minutes later. The hub's failure
  reply is `{"result":false,"returnCode":"500","message":<reason>}` with the HTTP status of the
  rejection.

Mapping. A push names a waybill, not an order: the event has no `channel`/`channel_order_id`,
`source = "kuaidi100"`, and `logistics = LogisticsFact(state, carrier=com, tracking_no=nu,
description)`; the mapper finds the order by its waybill links. `event_time` is the newest scan's
time. Collected and moving scans imply PICKED_UP (the carrier has the parcel: ST-4), a signed
scan PICKED_UP + DELIVERED; ordered-not-collected, problem, refused and returned states imply no
milestone, only the parcel state. `description` is the newest scan text with every run of 7+
digits (phone numbers) and the name after 签收人/派件人/快递员... masked, cut to 80 characters.
`status=abort` with scans: an event with no milestones, its own event id (so the stop is visible
in the order's log) and `status=abort;message=...` in `channel_code`. `abort` or `shutdown`
without any scan: nothing to date an event with, acknowledged and dropped (any other status
without a scan is malformed). An unknown `state` is a gap; the
event then carries the parcel state NONE (the carrier's latest word is not understood) and no
milestone, so the order keeps its status.

Sources: api.kuaidi100.com/document/dingyueyuantong (sign = md5(param + salt), 32 upper-case;
salt null -> no sign, empty salt -> still signed); kuaidi100's API docs on apifox
(project 514987: api-8568518 推送接口, field list and status/state meanings; api-8562559 §1.6,
the state and resultv2 detailed state table); api.kuaidi100.com/document/timeout (the success
reply, 20 s timeout); kuaidi100-api/java-demo `SubscribePushParamResp`, `SubscribePushResult`,
`SubscribePushData`, `SubscribeResp` (field names); kuaidi100's PHP callback sample as copied in
many integrations (`{"result":false,"returnCode":"500","message":"失败"}`, "30分钟以后会重推").
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from pydantic import ValidationError

from orderhub.channels.base import (
    NO_RULES,
    Channel,
    ChannelRejection,
    ChannelSettings,
    FieldRules,
    InboundRequest,
    Malformed,
    Reply,
    Unauthorized,
    compact_json,
    constant_time_match,
    loads_decimal,
    strptime_ymd_hms,
)
from orderhub.lifecycle.statuses import EventKind, LogisticsStatus
from orderhub.models.order import OrderEvent

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
DESCRIPTION_MAX = 80
_BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

_L = LogisticsStatus
_PICKED = (EventKind.PICKED_UP,)
_SIGNED = (EventKind.PICKED_UP, EventKind.DELIVERED)

# lastResult.state (basic and resultv2 detailed) -> (the parcel's state, milestones it implies).
LOGISTICS_STATE: Mapping[str, tuple[LogisticsStatus, tuple[EventKind, ...]]] = {
    "1": (_L.COLLECTED, _PICKED),  # 揽收
    "101": (_L.ORDERED, ()),  # 已下单: waybill created
    "102": (_L.ORDERED, ()),  # 待揽收: waiting for the courier
    "103": (_L.COLLECTED, _PICKED),  # 已揽收
    "0": (_L.IN_TRANSIT, _PICKED),  # 在途
    "1001": (_L.IN_TRANSIT, _PICKED),  # 到达派件城市
    "1002": (_L.IN_TRANSIT, _PICKED),  # 干线
    "1003": (_L.IN_TRANSIT, _PICKED),  # 转递: sent on to a new address
    "7": (_L.IN_TRANSIT, _PICKED),  # 转投: handed to another carrier
    "8": (_L.IN_TRANSIT, _PICKED),  # 清关
    "10": (_L.IN_TRANSIT, _PICKED),  # 待清关
    "11": (_L.IN_TRANSIT, _PICKED),  # 清关中
    "12": (_L.IN_TRANSIT, _PICKED),  # 已清关
    "13": (_L.EXCEPTION, ()),  # 清关异常
    "5": (_L.OUT_FOR_DELIVERY, _PICKED),  # 派件
    "501": (_L.OUT_FOR_DELIVERY, _PICKED),  # 投柜或驿站: in a locker/station, not yet collected
    "3": (_L.DELIVERED, _SIGNED),  # 签收
    "301": (_L.DELIVERED, _SIGNED),  # 本人签收
    "302": (_L.DELIVERED, _SIGNED),  # 派件异常后签收
    "303": (_L.DELIVERED, _SIGNED),  # 代签
    "304": (_L.DELIVERED, _SIGNED),  # 投柜或站签收
    "2": (_L.EXCEPTION, ()),  # 疑难
    "201": (_L.EXCEPTION, ()),  # 超时未签收
    "202": (_L.EXCEPTION, ()),  # 超时未更新
    "203": (_L.REJECTED, ()),  # 拒收: the recipient refuses, the sender to confirm
    "204": (_L.EXCEPTION, ()),  # 派件异常
    "205": (_L.EXCEPTION, ()),  # 柜或驿站超时未取
    "206": (_L.EXCEPTION, ()),  # 无法联系
    "207": (_L.EXCEPTION, ()),  # 超区
    "208": (_L.EXCEPTION, ()),  # 滞留
    "209": (_L.EXCEPTION, ()),  # 破损
    "210": (_L.EXCEPTION, ()),  # 销单: the sender cancelled the shipment
    "14": (_L.REJECTED, ()),  # 拒签
    "6": (_L.RETURNING, ()),  # 退回: on its way back to the sender
    "4": (_L.RETURNED, ()),  # 退签: back with the sender
    "401": (_L.EXCEPTION, ()),  # 已销单: the waybill was cancelled
}

# param.status: the monitoring state. Every one is mapped; abort is reported, never a milestone.
MONITORING_STATUS: Mapping[str, str] = {
    "polling": "tracking",
    "updateall": "full re-push",
    "shutdown": "tracking ended (signed for)",
    "abort": "tracking stopped",
}

_TRACK_FIELDS = ("message", "state", "status", "condition", "ischeck", "com", "nu", "isLoop",
                 "data", "data[].context", "data[].time", "data[].ftime", "data[].status", "data[].statusCode",
                 "data[].areaCode", "data[].areaName", "data[].areaCenter", "data[].areaPinYin",
                 "data[].location", "routeInfo", *(f"routeInfo.{end}{leaf}" for end in ("from", "cur", "to")
                                                     for leaf in ("", ".number", ".name")))
KNOWN_FIELDS = frozenset({"status", "billstatus", "message", "autoCheck", "comOld", "comNew",
                          "lastResult", "destResult",
                          *(f"{root}.{leaf}" for root in ("lastResult", "destResult") for leaf in _TRACK_FIELDS)})

_DIGITS = re.compile(r"\+?\d[\d\s-]{5,}\d")
_PERSON = re.compile(r"(签收人|派件人|派送人|取件人|收件人|寄件人|快递员|派件员|揽收员|揽件员|配送员|业务员|联系人)"
                     r"(\s*[:：]\s*|\s+)([\u4e00-\u9fa5·]{2,4}|[A-Za-z]{2,20})")


class Kuaidi100Channel(Channel):
    name = "kuaidi100"
    known_fields = KNOWN_FIELDS
    status_map = LOGISTICS_STATE
    monitoring_map = MONITORING_STATUS

    def authenticate(self, request: InboundRequest, settings: ChannelSettings, now: datetime) -> None:
        # No timestamp to check: kuaidi100 signs none (the module docstring says why a replay is harmless).
        form = _form(request.body, Unauthorized)
        presented = form.get("sign", "")
        if not presented:
            raise Unauthorized("missing sign: subscribe the waybill with parameters.salt so kuaidi100 signs its pushes")
        if "param" not in form:
            raise Unauthorized("missing param")
        salts = [salt for salt in settings.secrets if salt]
        if not salts:
            raise Unauthorized("the hub has no kuaidi100 salt configured")
        if not constant_time_match([sign(form["param"], salt) for salt in salts], presented):
            raise Unauthorized("signature does not match")

    def parse(self, body: bytes, received_headers: Mapping[str, str] | None = None,
              rules: FieldRules = NO_RULES) -> list[OrderEvent]:
        form = _form(body, Malformed)
        if "param" not in form:
            raise Malformed("param: required")
        try:
            param = loads_decimal(form["param"])
        except Malformed as exc:
            raise Malformed(f"param: not JSON we accept: {exc.reason}") from None
        if not isinstance(param, dict):
            raise Malformed("param: must be a JSON object")
        param, drift = self.prepare(param, rules)
        return _normalise(param, drift)

    def accepted(self) -> Reply:
        return Reply(200, '{"result":true,"returnCode":"200","message":"成功"}')

    def rejected(self, rejection: ChannelRejection) -> Reply:
        return Reply(rejection.status_code,
                     compact_json({"result": False, "returnCode": "500", "message": rejection.reason}))


def _form(body: bytes, error: type[ChannelRejection]) -> dict[str, str]:
    try:
        fields = parse_form(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise error("body is not a UTF-8 form (application/x-www-form-urlencoded)") from None
    repeated = sorted(name for name, values in fields.items() if len(values) > 1)
    if repeated:
        raise error(f"form field {repeated[0]} is repeated")
    return {name: values[0] for name, values in fields.items()}


def parse_form(text: str) -> dict[str, list[str]]:
    """`parse_qs(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")`, the
    escapes decoded a run at a time in C: a push's `param` is thousands of `%XX` (its scan texts
    are Chinese), which `unquote` turns into bytes one by one in Python."""
    fields: dict[str, list[str]] = {}
    for name_value in text.split("&") if text else ():
        name, sep, value = name_value.partition("=")
        if not sep:
            raise ValueError(f"bad query field: {name_value!r}")
        fields.setdefault(_unquote(name.replace("+", " ")), []).append(_unquote(value.replace("+", " ")))
    return fields


_ESCAPES = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


def _decode_escapes(run: re.Match[str]) -> str:
    return bytes.fromhex(run.group().replace("%", "")).decode("utf-8")


def _unquote(text: str) -> str:
    """`unquote(text, errors="strict")`. Well-formed ASCII input (what kuaidi100 sends) is decoded
    in C by the quoted-printable decoder, `%XX` read as `=XX` (as the youzan module does);
    anything else a run of escapes at a time (a run is whole UTF-8 characters or an error either way)."""
    if "%" not in text:
        return text
    if text.isascii() and not ("=" in text or "\r" in text or "\n" in text or "%" in text[-2:]
                                or "%%" in text):  # "==" is one "=" to the decoder
        decoded = binascii.a2b_qp(text.replace("%", "="))
        # A malformed escape survives as "=": more "=" out than "%3D" in means one was there.
        if decoded.count(b"=") == text.count("%3D") + text.count("%3d"):
            return decoded.decode("utf-8")
    return _ESCAPES.sub(_decode_escapes, text)


def _normalise(param: Mapping[str, Any], drift: tuple[str, ...]) -> list[OrderEvent]:
    status = _text(param.get("status"), "status")
    result = param.get("lastResult")
    if not isinstance(result, dict):
        raise Malformed("lastResult: required, an object")
    gaps: list[str] = []
    if status not in MONITORING_STATUS:
        gaps.append(f"status={status}")
    tracking_no = _text(result.get("nu"), "lastResult.nu")
    if not tracking_no or len(tracking_no) > 64:
        raise Malformed("lastResult.nu: the waybill number is required (at most 64 characters)")
    carrier = (_text(result.get("com"), "lastResult.com") or _text(param.get("comNew"), "comNew"))[:32]
    state = _text(result.get("state"), "lastResult.state")
    if not state:
        raise Malformed("lastResult.state: required")
    scans = result.get("data")
    if scans is None:
        scans = []
    if not isinstance(scans, list):
        raise Malformed("lastResult.data: must be a list")
    newest = _newest_scan(scans)
    if newest is None:
        if status in ("abort", "shutdown"):
            return []  # tracking stopped before any scan: nothing to date or apply (see the docstring)
        raise Malformed("lastResult.data: no scan with a time (ftime/time)")
    at, context = newest

    mapped = LOGISTICS_STATE.get(state)
    kinds: tuple[EventKind, ...] = ()
    parcel_state = LogisticsStatus.NONE
    if mapped is None:
        gaps.append(f"state={state}")
    else:
        parcel_state, kinds = mapped
    codes = [f"status={status}", f"state={state}"]
    identity = [tracking_no, state, at.isoformat()]
    if status == "abort":
        kinds = ()
        message = _text(param.get("message"), "message")
        if message:
            codes.append(f"message={message[:40]}")
        identity.append("abort")  # the stop is its own event, not a duplicate of the last scan's push
    if param.get("autoCheck") in ("1", 1) and param.get("comNew"):
        codes.append(f"comNew={_text(param.get('comNew'), 'comNew')[:32]}")
    event = {
        "channel": "", "source": "kuaidi100",
        "event_id": "k100_" + hashlib.sha256("\x1f".join(identity).encode()).hexdigest()[:40],
        "channel_code": ";".join(codes)[:200], "kinds": kinds, "gaps": tuple(gaps), "drift": drift,
        "event_time": at,
        "logistics": {"state": parcel_state, "carrier": carrier, "tracking_no": tracking_no,
                      "description": scrub(context)},
    }
    try:
        return [OrderEvent.model_validate(event)]
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        raise Malformed(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None


def _text(value: Any, where: str) -> str:
    """A string field; kuaidi100 sends most values as strings, some (state) also as numbers."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Malformed(f"{where}: must be a string")
    return str(value).strip()


def _newest_scan(scans: list[Any]) -> tuple[datetime, str] | None:
    """(time, context) of the newest scan. `data` is documented newest first; the time decides anyway."""
    newest: tuple[datetime, str] | None = None
    for i, scan in enumerate(scans):
        if not isinstance(scan, dict):
            raise Malformed(f"lastResult.data[{i}]: must be an object")
        raw = scan.get("ftime") or scan.get("time")
        if raw in (None, ""):
            continue
        at = _beijing(raw, f"lastResult.data[{i}].ftime")
        if newest is None or at > newest[0]:
            newest = (at, _text(scan.get("context"), f"lastResult.data[{i}].context"))
    return newest


def _beijing(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise Malformed(f"{where}: not a time")
    text = value.strip()
    try:
        return strptime_ymd_hms(text).replace(tzinfo=_BEIJING)
    except ValueError:
        pass
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=_BEIJING)
    except ValueError:
        pass
    raise Malformed(f"{where}: not yyyy-MM-dd HH:mm:ss")


def scrub(context: str) -> str:
    """A scan text safe to keep: phone-like digit runs and names after 签收人/派件人/... masked, short."""
    text = _DIGITS.sub(lambda m: "*" if sum(c.isdigit() for c in m.group()) >= 7 else m.group(), context)
    text = _PERSON.sub(lambda m: m.group(1) + m.group(2) + "*", text)
    text = " ".join(text.split())
    return text if len(text) <= DESCRIPTION_MAX else text[:DESCRIPTION_MAX - 1] + "…"


def sign(param: str, salt: str) -> str:
    """The push signature: upper-case hex MD5 of the param text followed by the salt."""
    return hashlib.md5((param + salt).encode("utf-8"), usedforsecurity=False).hexdigest().upper()


def client_request(payload: bytes, headers: Mapping[str, str], secret: str, app_key: str,
                   now: datetime) -> tuple[dict[str, str], bytes]:
    """What kuaidi100 sends: `payload` is the param JSON text; the body is the signed form."""
    param = payload.decode("utf-8")
    body = urlencode({"param": param, "sign": sign(param, secret)}).encode("ascii")
    return {**{k.lower(): v for k, v in headers.items()}, "content-type": FORM_CONTENT_TYPE}, body


CHANNEL = Kuaidi100Channel()
