"""`alipay`: 支付宝异步通知 (Alipay's asynchronous trade notifications), the money's source for the shop (PAY-0).

The merchant's shop and mini-program create Alipay trades with `notify_url` =
`https://<hub>/webhooks/alipay`; Alipay then notifies every change of the trade. Contract
(events/alipay/README.md has it in brief, with samples):

- `POST`, `Content-Type: application/x-www-form-urlencoded; charset=utf-8`, the body a form of
  `notify_time, notify_type (trade_status_sync), notify_id, app_id, auth_app_id, charset,
  version, sign_type, sign, trade_no, out_trade_no, out_biz_no, buyer_id, buyer_open_id,
  buyer_logon_id, seller_id, seller_email, trade_status, total_amount, receipt_amount,
  invoice_amount, buyer_pay_amount, point_amount, refund_fee, subject, body, gmt_create,
  gmt_payment, gmt_refund, gmt_close, fund_bill_list, passback_params, voucher_detail_list`
  (cross-border trades add `trans_currency`, `settle_*`, `pay_currency`...). Values are
  percent-encoded in the form's own `charset` (utf-8, or gbk/gb2312 for older applications).
  Anything else the hub has not met is drift. At most 16,000 bytes: a notification is ~1.5 KB,
  and the body is kept whole with its ledger entry (`MoneyFact.payload`, 16,000 characters).
- Signature (RSA2): the signed string is every parameter except `sign` and `sign_type`, and
  except those with an empty value (the SDK's `getSignCheckContentV1` skips them), sorted by
  name, `name=value` joined with `&`, values URL-decoded, the string in the form's charset;
  `sign` is the base64 RSA-SHA256 (PKCS#1 v1.5) signature of it by Alipay's key. The hub
  verifies the decoded bytes themselves, so what is verified is exactly what was sent, before
  any text is decoded. `secrets` are the Alipay public keys (PEM, or the bare base64 Alipay's
  console shows), current first: any of them may verify (a rotation). `sign_type` other than
  RSA2 is refused (RSA is SHA-1). Empty-valued parameters are outside the signature, so the
  parse reads an empty value as an absent one: adding `refund_fee=` changes nothing.
- Then, as Alipay advises, the notification must name this hub's application and merchant:
  `app_id` one of `options.app_id` and `seller_id` one of `options.seller_id` (each one id or a
  list: the shop's web application and its mini-program are separate Alipay applications).
  Another app's or merchant's notification is refused (401) and nothing is kept.
- No timestamp header: `notify_time` (Beijing time, signed) is the only time. Alipay resends an
  unacknowledged notification 8 times over 25 h (4m, 10m, 10m, 1h, 2h, 6h, 15h), and whether a
  resend carries a new notify_time is not documented: the hub accepts a notify_time up to 25 h
  plus `timestamp_tolerance_s` old (the last resend, ~24h24m after the first, still passes) and
  at most `timestamp_future_s` ahead. Past that a captured notification cannot be replayed; within
  it a replay changes nothing (the event id is `notify_id`, the ledger keys a movement by its
  trade or refund number and records each state once).
- Reply `success` (text/plain, exactly those 7 characters) once the notification is queued;
  anything else makes Alipay resend. A refusal is `failure` with the rejection's status (401
  signature, app or merchant; 400 malformed; 413 too large); the reason goes to the hub's log,
  not to Alipay, which reads the body only.

Mapping. One event per notification: `channel` = `options.orders_channel` (default "mall": whose
order numbers are the trades' `out_trade_no`), `channel_order_id` = `out_trade_no`, `source` =
"alipay", `event_id` = `notify_id`, `channel_code` = "<notify_type> <trade_status>" (" refund"
added when it reports one), `event_time` = `notify_time`.

| trade_status | meaning | kinds | money |
|---|---|---|---|
| WAIT_BUYER_PAY | trade created, not paid | none | none |
| TRADE_SUCCESS | paid, refundable | PAID (at gmt_payment) | the payment |
| TRADE_FINISHED | paid, no longer refundable | PAID (at gmt_payment) | the payment |
| TRADE_CLOSED | closed unpaid (timeout), or after a full refund | none / PAID | none / payment + refund |

The payment: `MoneyFact(provider="alipay", kind=PAYMENT, reference=trade_no, state=CONFIRMED,
amount=total_amount, currency, method=ONLINE, merchant_reference=out_trade_no,
account=seller_id, occurred_at=gmt_payment, payload=<the form as received>)`: TRADE_SUCCESS and
TRADE_FINISHED report the same movement (same reference, state and time: one ledger record).
A refund is reported on the trade's notification (refund_fee > 0 with gmt_refund; TRADE_SUCCESS
while part of it stays paid, TRADE_CLOSED once all is refunded): `kind=REFUND,
reference=out_biz_no, payment_reference=trade_no, amount=refund_fee, cumulative=True,
occurred_at=gmt_refund`. `refund_fee` is the trade's refunded total, not this refund's amount:
the ledger takes each refund's own amount as the step between totals. A refund without
`out_biz_no` is a full refund requested without `out_request_no` (Alipay requires one for every
partial refund): there is one per trade, so the trade number names it. A notification may report
the payment and a refund: it carries both facts. Amounts are yuan with at most 2 decimals,
read exactly into fen; anything else ("88.888", "1e2", "-1", " 1", full-width digits) is
malformed. The currency is CNY; a cross-border trade names its pricing currency in
`trans_currency` (total_amount is in it): a 2-decimal currency is booked in it, any other is a
gap and books nothing (stored, so a replay can book it once the hub knows how).
Unknown `notify_type` or `trade_status`: a gap, no kinds, no money.

Sources: opendocs.alipay.com/open/270/105902 (notification parameters, the `success` reply, the
resend schedule "25 小时以内完成 8 次通知 ... 4m,10m,10m,1h,2h,6h,15h", checking app_id and
seller_id), /open/204/105301 and /open/270/105902 (verification: all but sign and sign_type,
URL-decoded, sorted); alipay/alipay-sdk-java-all `AlipaySignature.getSignCheckContentV1` (empty
values skipped) and `BaseAsymmetricEncryptor.verify` (the string in the `charset`, UTF-8 when
none); docs.antom.com/ac/web_cn/async (the same resend note); the refund API's out_request_no
("部分退款必传"; a full refund may omit it).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from functools import cache, lru_cache
from types import MappingProxyType
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
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
)
from orderhub.clock import EARLIEST_CHANNEL_TIME
from orderhub.lifecycle.statuses import EventKind
from orderhub.models.order import MethodClass, MoneyKind, MoneyState, OrderEvent
from orderhub.money import exponent

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
SUCCESS = "success"  # the only reply Alipay counts as delivered
FAILURE = "failure"
SIGN_TYPE = "RSA2"
NOTIFY_TYPE = "trade_status_sync"
DEFAULT_ORDERS_CHANNEL = "mall"
MAX_BODY_BYTES = 16_000  # = MoneyFact.payload's limit: the form is kept whole with its entry
MAX_PARAMETERS = 100  # Alipay sends ~30
# Alipay's resends end within 25 h of the first notification (8 notifications); notify_time may be the first's.
NOTIFY_WINDOW = timedelta(hours=25)
# A movement cannot postdate the notification reporting it; one clock skew between Alipay's systems is allowed.
MOVEMENT_AFTER_NOTIFY = timedelta(hours=1)
_BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

PAID_STATUSES = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})
TRADE_STATUS: Mapping[str, str] = {
    "WAIT_BUYER_PAY": "trade created, waiting for the buyer to pay",
    "TRADE_SUCCESS": "paid, refundable",
    "TRADE_FINISHED": "paid, no longer refundable",
    "TRADE_CLOSED": "closed unpaid on timeout, or closed after a full refund",
}
CHARSETS: Mapping[str, str] = {"utf-8": "utf-8", "utf8": "utf-8", "gbk": "gbk", "gb2312": "gbk"}

# Parameters the hub reads (or knows and leaves: documented by Alipay); anything else is drift.
READ_FIELDS = ("notify_time", "notify_type", "notify_id", "app_id", "charset", "sign_type", "sign", "trade_no",
               "out_trade_no", "out_biz_no", "seller_id", "trade_status", "total_amount", "refund_fee", "gmt_payment",
               "gmt_refund", "trans_currency")
KNOWN_FIELDS = frozenset(READ_FIELDS + (
    "auth_app_id", "version", "buyer_id", "buyer_open_id", "buyer_logon_id", "seller_email", "receipt_amount",
    "invoice_amount", "buyer_pay_amount", "point_amount", "subject", "body", "gmt_create", "gmt_close",
    "fund_bill_list", "passback_params", "voucher_detail_list",
    # cross-border trades
    "settle_currency", "settle_amount", "settle_trans_rate", "trans_pay_rate", "pay_currency", "pay_amount"))

_NAME = re.compile(r"[A-Za-z0-9_]{1,64}", re.ASCII)
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ID = re.compile(r"[\x21-\x7e]{1,64}", re.ASCII)  # printable ASCII: trade numbers, order numbers, refund numbers
_NOTIFY_ID = re.compile(r"[\x21-\x7e]{1,128}", re.ASCII)
_YUAN = re.compile(r"(0|[1-9][0-9]{0,9})(?:\.([0-9]{1,2}))?", re.ASCII)  # at most 9,999,999,999.99
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}", re.ASCII)
_CURRENCY = re.compile(r"[A-Z]{3}", re.ASCII)


class AlipayChannel(Channel):
    name = "alipay"
    max_body_bytes = MAX_BODY_BYTES
    kept_headers = ("content-type",)  # the body carries its signature; the header names the charset
    known_fields = KNOWN_FIELDS
    status_map = TRADE_STATUS

    def authenticate(self, request: InboundRequest, settings: ChannelSettings, now: datetime) -> None:
        form = read_form(request.body)
        if _ascii(form, "sign_type") != SIGN_TYPE:
            raise Unauthorized("sign_type must be RSA2 (RSA-SHA256)")
        signature = _signature(form.get("sign", b""))
        keys = public_keys(tuple(settings.secrets))
        if not keys:
            raise Unauthorized("the hub has no usable Alipay public key configured")
        content = signed_content(form)
        if not any(_verifies(key, signature, content) for key in keys):
            raise Unauthorized("signature does not match")
        # Signed by Alipay; now it must be for this hub's application and merchant (Alipay's advice).
        for field, option in (("app_id", "app_id"), ("seller_id", "seller_id")):
            expected = _configured(settings.options, option)
            if not expected:
                raise Unauthorized(f"the hub has no Alipay {option} configured (options.{option})")
            if _ascii(form, field) not in expected:
                raise Unauthorized(f"{field} is not the {'application' if field == 'app_id' else 'merchant'} "
                                   "this hub is configured for")
        notified = _notify_time(form)
        skew = (notified - now).total_seconds()
        if skew > settings.timestamp_future_s:
            raise Unauthorized(f"notify_time is {int(skew)} s ahead of the hub clock "
                               f"(tolerance {settings.timestamp_future_s} s)")
        window = NOTIFY_WINDOW.total_seconds() + settings.timestamp_tolerance_s
        if -skew > window:
            raise Unauthorized(f"notify_time is {int(-skew)} s behind the hub clock (Alipay resends for 25 h; "
                               f"tolerance {int(window)} s)")

    def parse(self, body: bytes, received_headers: Mapping[str, str] | None = None,
              rules: FieldRules = NO_RULES, options: Mapping[str, Any] | None = None) -> list[OrderEvent]:
        """`options` are the channel's (`orders_channel`); without them the orders are the mall's."""
        form = read_form(body)
        charset = _charset(form, received_headers)
        values: dict[str, str] = {}
        for name, raw in form.items():
            try:
                values[name] = raw.decode(charset)
            except UnicodeDecodeError:
                raise Malformed(f"{name}: not {charset} text (the form's charset)") from None
        values, drift = self.prepare(values, rules)
        orders_channel = str((options or {}).get("orders_channel") or DEFAULT_ORDERS_CHANNEL)
        return [_normalise(values, body.decode("ascii"), drift, orders_channel)]

    def parse_with(self, body: bytes, received_headers: Mapping[str, str] | None,
                   settings: ChannelSettings) -> list[OrderEvent]:
        """`parse` with the channel's settings: the field rules and the options (`orders_channel`)."""
        return self.parse(body, received_headers, settings.field_rules, settings.options)

    def accepted(self) -> Reply:
        return Reply(200, SUCCESS, "text/plain")

    def rejected(self, rejection: ChannelRejection) -> Reply:
        return Reply(rejection.status_code, FAILURE, "text/plain")


@lru_cache(maxsize=8)
def read_form(body: bytes) -> Mapping[str, bytes]:
    """The form as Alipay sends it: name -> the value's bytes, percent-decoded (`+` a space), not yet
    decoded as text. Refused (400): anything but URL-encoded printable ASCII, a malformed escape, a
    parameter without `=` or named otherwise than [A-Za-z0-9_], a parameter twice (one reader would take
    the first, another the last: the signed value and the read one could differ), more than 100.
    Read once per body: authenticate and parse of one request share it (the last few are kept)."""
    if not body.isascii():
        raise Malformed("body is not a URL-encoded form (Alipay percent-encodes every value)")
    text = body.decode("ascii")
    if not text:
        raise Malformed("body is empty")
    if _CONTROL.search(text) is not None:
        raise Malformed("body holds control characters (Alipay percent-encodes them)")
    if _BAD_ESCAPE.search(text) is not None:
        raise Malformed("invalid percent-encoding")
    parts = text.split("&")
    if len(parts) > MAX_PARAMETERS:
        raise Malformed(f"more than {MAX_PARAMETERS} parameters")
    form: dict[str, bytes] = {}
    for part in parts:
        name, sep, value = part.partition("=")
        if not sep:
            raise Malformed("a parameter without '=' (or a stray '&')")
        key = _unquote(name).decode("latin-1") if "%" in name or "+" in name else name
        if _NAME.fullmatch(key) is None:
            raise Malformed("a parameter name is not 1-64 characters of [A-Za-z0-9_]")
        if key in form:
            raise Malformed(f"parameter {key} is repeated")
        form[key] = _unquote(value) if "%" in value or "+" in value else value.encode("ascii")
    return MappingProxyType(form)


def _unquote(text: str) -> bytes:
    """`unquote_to_bytes(text.replace("+", " "))` for text whose every `%` starts an escape and that holds no
    control character (read_form checked both): decoded in C by the quoted-printable decoder, `%XX` read
    as `=XX` and a literal `=` as `=3D` (5x faster than urllib's loop over each escape)."""
    return binascii.a2b_qp(text.replace("=", "=3D").replace("%", "=").replace("+", " ").encode("ascii"))


def signed_content(form: Mapping[str, bytes]) -> bytes:
    """What Alipay signs: every non-empty parameter but sign and sign_type, sorted by name, `name=value`
    joined with `&`, the values as decoded bytes (the text in the form's charset)."""
    return b"&".join(name.encode() + b"=" + form[name] for name in sorted(form)
                     if form[name] and name not in ("sign", "sign_type"))


@cache
def _public_key(text: str) -> RSAPublicKey | None:
    """A configured Alipay public key: PEM, or the bare base64 of its DER as Alipay's console shows it."""
    pem = text.strip()
    if not pem.startswith("-----BEGIN"):
        pem = "-----BEGIN PUBLIC KEY-----\n" + "".join(pem.split()) + "\n-----END PUBLIC KEY-----"
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii", "replace"))
    except (ValueError, UnsupportedAlgorithm):
        return None
    return key if isinstance(key, RSAPublicKey) and key.key_size >= 2048 else None


def public_keys(secrets: tuple[str, ...]) -> tuple[RSAPublicKey, ...]:
    """The usable keys among the configured ones, in order (loaded once each: ~60 us a load)."""
    return tuple(key for key in map(_public_key, secrets) if key is not None)


def _verifies(key: RSAPublicKey, signature: bytes, content: bytes) -> bool:
    try:
        key.verify(signature, content, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _signature(value: bytes) -> bytes:
    if not value:
        raise Unauthorized("missing sign")
    if len(value) > 1024:  # a 4096-bit key's signature is 684 base64 characters
        raise Unauthorized("sign is too long")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Unauthorized("sign is not base64") from None


def _ascii(form: Mapping[str, bytes], name: str) -> str:
    """A parameter Alipay sends as ASCII (ids, codes, times); "" when absent."""
    value = form.get(name, b"")
    if not value.isascii():
        raise Malformed(f"{name}: not ASCII")
    return value.decode("ascii")


def _configured(options: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = options.get(name)
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value if v)
    return ()


def _notify_time(form: Mapping[str, bytes]) -> datetime:
    text = _ascii(form, "notify_time")
    if not text:
        raise Unauthorized("missing notify_time")
    return beijing(text, "notify_time")


def _charset(form: Mapping[str, bytes], headers: Mapping[str, str] | None) -> str:
    """The form's `charset` (signed) decides; without one the Content-Type's, else UTF-8 (the SDK's default)."""
    named = _ascii(form, "charset")
    if not named and headers:
        for param in headers.get("content-type", "").split(";")[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset":
                named = value.strip().strip('"')
    codec = CHARSETS.get((named or "utf-8").lower())
    if codec is None:
        raise Malformed("charset: not one Alipay sends (utf-8, gbk, gb2312)")
    return codec


def beijing(text: str, where: str) -> datetime:
    """Alipay's `yyyy-MM-dd HH:mm:ss`, Beijing time, as an aware time (from 2000 on: nothing earlier is real)."""
    if _TIME.fullmatch(text) is None:
        raise Malformed(f"{where}: not yyyy-MM-dd HH:mm:ss")
    try:
        at = datetime.fromisoformat(text).replace(tzinfo=_BEIJING)
    except ValueError:
        raise Malformed(f"{where}: not a date and time") from None
    if at < EARLIEST_CHANNEL_TIME:
        raise Malformed(f"{where}: before {EARLIEST_CHANNEL_TIME:%Y-%m-%d}")
    return at


def yuan_to_fen(text: str, where: str) -> int:
    """"88.88" -> 8888, exactly: ASCII digits, no sign, no exponent, at most 2 decimals and 10 integer digits."""
    matched = _YUAN.fullmatch(text)
    if matched is None:
        raise Malformed(f"{where}: not an amount in yuan with at most 2 decimals")
    whole, cents = matched.groups()
    return int(whole) * 100 + int((cents or "").ljust(2, "0"))


def _id(values: Mapping[str, str], name: str, pattern: re.Pattern[str] = _ID) -> str:
    value = values.get(name, "")
    if not value:
        raise Malformed(f"{name}: required")
    if pattern.fullmatch(value) is None:
        raise Malformed(f"{name}: not printable ASCII of at most {64 if pattern is _ID else 128} characters")
    return value


def _movement_time(values: Mapping[str, str], name: str, notified: datetime) -> datetime:
    text = values.get(name, "")
    if not text:
        raise Malformed(f"{name}: required")
    at = beijing(text, name)
    if at > notified + MOVEMENT_AFTER_NOTIFY:
        raise Malformed(f"{name}: after the notify_time that reports it")
    return at


def _normalise(values: Mapping[str, str], payload: str, drift: tuple[str, ...], orders_channel: str) -> OrderEvent:
    notify_id = _id(values, "notify_id", _NOTIFY_ID)
    out_trade_no = _id(values, "out_trade_no")
    notify_type = values.get("notify_type", "")
    status = values.get("trade_status", "")
    if not notify_type or not status:
        raise Malformed("notify_type and trade_status: required")
    if not values.get("notify_time"):
        raise Malformed("notify_time: required")
    notified = beijing(values["notify_time"], "notify_time")
    gaps: list[str] = []
    if notify_type != NOTIFY_TYPE:
        gaps.append(f"notify_type={notify_type[:40]}")
    if status not in TRADE_STATUS:
        gaps.append(f"trade_status={status[:40]}")

    refund_total = yuan_to_fen(values["refund_fee"], "refund_fee") if values.get("refund_fee") else 0
    refunded = not gaps and refund_total > 0
    paid = not gaps and (status in PAID_STATUSES or (refunded and bool(values.get("gmt_payment"))))
    currency = values.get("trans_currency") or "CNY"
    if _CURRENCY.fullmatch(currency) is None or exponent(currency) != 2:
        gaps.append(f"trans_currency={currency[:8]}")
    books = not gaps

    event: dict[str, Any] = {
        "channel": orders_channel, "channel_order_id": out_trade_no, "source": "alipay", "event_id": notify_id,
        "channel_code": f"{notify_type} {status}{' refund' if refunded else ''}"[:200], "event_time": notified,
        "drift": drift,
    }
    money: list[dict[str, Any]] = []
    if paid or refunded:
        trade_no = _id(values, "trade_no")
        common = {"provider": "alipay", "state": MoneyState.CONFIRMED, "currency": currency,
                  "method": MethodClass.ONLINE, "account": _id(values, "seller_id") if values.get("seller_id") else "",
                  "payload": payload}
        total = yuan_to_fen(values.get("total_amount", ""), "total_amount")
        if paid:
            paid_at = _movement_time(values, "gmt_payment", notified)
            event["kinds"] = (EventKind.PAID,)
            event["milestone_times"] = {EventKind.PAID: paid_at}
            money.append({**common, "kind": MoneyKind.PAYMENT, "reference": trade_no, "amount": total,
                          "merchant_reference": out_trade_no, "occurred_at": paid_at})
        if refunded:
            if refund_total > total:
                raise Malformed("refund_fee: more than total_amount")
            out_biz_no = _id(values, "out_biz_no") if values.get("out_biz_no") else ""
            money.append({**common, "kind": MoneyKind.REFUND, "reference": out_biz_no or trade_no,
                          "payment_reference": trade_no, "amount": refund_total, "cumulative": True,
                          "merchant_reference": out_biz_no,
                          "occurred_at": _movement_time(values, "gmt_refund", notified)})
    if books:
        event["money"] = tuple(money)
    event["gaps"] = tuple(gaps)
    try:
        return OrderEvent.model_validate(event)
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        raise Malformed(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None


CHANNEL = AlipayChannel()
