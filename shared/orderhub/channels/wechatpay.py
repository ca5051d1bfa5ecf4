"""`wechatpay`: WeChat Pay API v3 payment and refund notifications; they book the payment voucher ledger.

Contract (events/wechatpay/README.md has it in brief, with samples as the stand-in sends them):

- `POST /webhooks/wechatpay`, a JSON envelope `{id, create_time, event_type, resource_type:
  "encrypt-resource", resource{algorithm: "AEAD_AES_256_GCM", ciphertext, associated_data,
  original_type, nonce}, summary}`. Only `resource` says what happened, and it is encrypted.
- Signed by WeChat Pay with RSA-SHA256 (PKCS#1 v1.5) over `Wechatpay-Timestamp\\nWechatpay-Nonce\\n
  body\\n`, the body bytes as received; `Wechatpay-Signature` is the base64 signature and
  `Wechatpay-Serial` names the key: a platform certificate's serial or a WeChat Pay public key id
  (`PUB_KEY_ID_...`). The key is looked up by that name among those configured (two during a
  rotation); an unknown name is refused, as is a timestamp outside the tolerance (300 s behind, 60 s
  ahead). `Wechatpay-Signature-Type` is WECHATPAY2-SHA256-RSA2048 when sent.
- WeChat Pay now and then sends a signature it made wrong on purpose, starting `WECHATPAY/SIGNTEST/`,
  to see that merchants verify: it is refused like any bad signature, as WeChat Pay asks.
- `resource.ciphertext` is base64 of AES-256-GCM output (the last 16 bytes are the tag), keyed by the
  APIv3 key (32 ASCII characters), nonce `resource.nonce`, associated data `resource.associated_data`.
  Each configured key is tried (current, then previous). A resource no key opens is refused 401: the
  signature proved WeChat Pay sent it, so the hub's key is what is wrong, and WeChat Pay retries any
  non-2xx for 24 h: a key configured within that time still gets the notification.
- The resource names the merchant account (`mchid`, and `appid` on payments): one that is not this
  hub's (`options.mchid`, `options.appid`: one id or a list) is refused 401 and nothing is kept.
- `TRANSACTION.SUCCESS`: a confirmed payment. `REFUND.SUCCESS` / `REFUND.ABNORMAL` / `REFUND.CLOSED`:
  a refund confirmed, pending (money not returned yet: the buyer's card was closed or frozen) or
  reversed. Any other event type is acknowledged and nothing is kept. Money is integer fen.
- Reply: success is 200 with no body; a refusal is 4xx with `{"code":"FAIL","message":...}`
  (message at most 64 characters, as documented). WeChat Pay retries any other answer
  15s/15s/30s/3m/10m/20m/30m/30m/30m/60m/3h/3h/3h/6h/6h (24 h 4 min in all).

Decryption happens in `parse`, so a replay's re-parse reads the resource as webhook ingest did; parse
has no settings argument, so it reads them through `settings_source` (the hub's configuration unless
a test gives its own). The decrypted resource is never logged: it is the `payload` of the money fact.

Configuration (`channels.wechatpay`): `secrets` = the APIv3 keys, current first;
`secret_options.platform_keys` = {serial or public key id: PEM public key or platform certificate};
`options.mchid`, `options.appid`, `options.orders_channel` (whose order numbers are the out_trade_no,
default "mall"), `options.currency` (refund notifications carry none: default CNY, the only currency
of a mainland merchant account).

Sources: pay.weixin.qq.com API v3 docs (签名验证, 回调通知 应答 200/204 and {"code":"FAIL"}, 支付结果通知
retry schedule, 应对签名探测流量 WECHATPAY/SIGNTEST/); wechatpay-apiv3/wechatpay-go
(core/auth/validators: headers and the 5-minute window; core/notify: decrypt; services/payments
models.go: the transaction's fields); fudiwei/DotNetCore.SKIT.FlurlHttpClient.Wechat
(TenpayV3 Events/Refund/RefundResource.cs: the refund's fields).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError, model_validator

from orderhub.channels.base import (
    NO_RULES,
    Channel,
    ChannelRejection,
    ChannelSettings,
    FieldRules,
    InboundRequest,
    Malformed,
    Reply,
    TooLarge,
    Unauthorized,
    compact_json,
    loads_decimal,
)
from orderhub.channels.json_reader import read_json_document
from orderhub.channels.values import signed_timestamp
from orderhub.lifecycle.statuses import EventKind
from orderhub.models.order import MethodClass, MoneyKind, MoneyState, OrderEvent

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PROVIDER = "wechatpay"
TIMESTAMP_HEADER = "wechatpay-timestamp"
NONCE_HEADER = "wechatpay-nonce"
SIGNATURE_HEADER = "wechatpay-signature"
SERIAL_HEADER = "wechatpay-serial"
SIGNATURE_TYPE_HEADER = "wechatpay-signature-type"
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
PROBE_PREFIX = "WECHATPAY/SIGNTEST/"
REPLY_MESSAGE_CHARS = 64  # `message` is string[1,64] in WeChat Pay's reply format
PAYLOAD_CHARS = 16_000  # MoneyFact.payload

_SERIAL = re.compile(r"[A-Za-z0-9_]{1,64}", re.ASCII)
_NONCE = re.compile(r"[\x21-\x7e]{1,64}", re.ASCII)  # printable, no space or line break: one line of the message
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})", re.ASCII)

# event_type -> what the resource is: a payment, or a refund in the state the type names.
EVENT_TYPES: Mapping[str, tuple[str, str]] = {
    "TRANSACTION.SUCCESS": ("transaction", "SUCCESS"),
    "REFUND.SUCCESS": ("refund", "SUCCESS"),
    "REFUND.ABNORMAL": ("refund", "ABNORMAL"),
    "REFUND.CLOSED": ("refund", "CLOSED"),
}
REFUND_STATES: Mapping[str, tuple[MoneyState, str]] = {
    "SUCCESS": (MoneyState.CONFIRMED, ""),
    "ABNORMAL": (MoneyState.PENDING, "refund abnormal: not returned to the buyer yet (card closed or frozen); "
                                     "finish it in the merchant platform"),
    "CLOSED": (MoneyState.REVERSED, "refund closed: no money returned"),
}

_ENVELOPE = ("id", "create_time", "event_type", "resource_type", "summary", "resource")
_RESOURCE = ("algorithm", "ciphertext", "associated_data", "original_type", "nonce", "plaintext")
_TRANSACTION = ("appid", "mchid", "out_trade_no", "transaction_id", "trade_type", "trade_state", "trade_state_desc",
                "bank_type", "attach", "success_time", "payer", "payer.openid", "amount", "amount.total",
                "amount.payer_total", "amount.currency", "amount.payer_currency", "scene_info",
                "scene_info.device_id", "promotion_detail")
_PROMOTION = ("coupon_id", "name", "scope", "type", "amount", "stock_id", "wechatpay_contribute", "merchant_contribute",
              "other_contribute", "currency", "goods_detail")
_PROMOTED_GOODS = ("goods_id", "quantity", "unit_price", "discount_amount", "goods_remark")
_REFUND = ("mchid", "out_trade_no", "transaction_id", "out_refund_no", "refund_id", "refund_status", "success_time",
           "user_received_account", "amount", "amount.total", "amount.refund", "amount.payer_total",
           "amount.payer_refund", "amount.currency")
# Paths of the envelope with the decrypted resource at `resource.plaintext` (as the SDKs name it).
KNOWN_FIELDS = frozenset(
    {*_ENVELOPE, *(f"resource.{f}" for f in _RESOURCE)}
    | {f"resource.plaintext.{f}" for f in (*_TRANSACTION, *_REFUND)}
    | {f"resource.plaintext.promotion_detail[].{f}" for f in _PROMOTION}
    | {f"resource.plaintext.promotion_detail[].goods_detail[].{f}" for f in _PROMOTED_GOODS}
)


def _rfc3339(value: Any) -> datetime:
    if not isinstance(value, str) or _TIME.fullmatch(value) is None:
        raise ValueError("must be an RFC 3339 time with an offset (2026-11-22T10:59:59+08:00)")
    return datetime.fromisoformat(value)


Time = Annotated[datetime, BeforeValidator(_rfc3339)]
Fen = Annotated[int, Strict(), Field(ge=0, le=10**12)]  # JSON integers only: not 1.5, not "15", not true
Currency = Annotated[str, Strict(), Field(pattern=r"^[A-Z]{3}$")]
Id = Annotated[str, Strict(), Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_|*@-]+$")]


class _Encrypted(BaseModel):
    algorithm: Literal["AEAD_AES_256_GCM"]
    ciphertext: Annotated[str, Strict(), Field(min_length=1)]
    associated_data: Annotated[str, Strict(), Field(max_length=256)] = ""
    original_type: Literal["transaction", "refund"]
    nonce: Annotated[str, Strict(), Field(min_length=8, max_length=32)]  # 12 characters as WeChat Pay sends


class _Notification(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: Annotated[str, Strict(), Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
    create_time: Time
    event_type: str
    resource_type: Literal["encrypt-resource"]
    resource: _Encrypted


class _PaidAmount(BaseModel):
    total: Fen
    currency: Currency
    payer_total: Fen | None = None
    payer_currency: Currency | None = None


class _Transaction(BaseModel):
    model_config = ConfigDict(extra="allow")

    appid: Id
    mchid: Id
    out_trade_no: Id
    transaction_id: Id
    trade_state: Literal["SUCCESS"]
    success_time: Time
    amount: _PaidAmount


class _RefundAmount(BaseModel):
    total: Fen
    refund: Fen
    payer_total: Fen | None = None
    payer_refund: Fen | None = None
    currency: Currency | None = None

    @model_validator(mode="after")
    def _within_the_payment(self) -> _RefundAmount:
        if self.refund > self.total:
            raise ValueError("refund is more than the payment's total")
        if self.payer_refund is not None and self.payer_total is not None and self.payer_refund > self.payer_total:
            raise ValueError("payer_refund is more than payer_total")
        return self


class _Refund(BaseModel):
    model_config = ConfigDict(extra="allow")

    mchid: Id
    out_trade_no: Id
    transaction_id: Id
    out_refund_no: Id
    refund_id: Id
    refund_status: Literal["SUCCESS", "ABNORMAL", "CLOSED"]
    success_time: Time | None = None
    amount: _RefundAmount


SettingsSource = Callable[[], ChannelSettings]


def configured_settings() -> ChannelSettings:
    """The hub's `wechatpay` configuration (APIv3 keys, merchant ids), as webhook ingest reads it."""
    from orderhub.settings import channel_config

    return channel_config(PROVIDER)


class WeChatPayChannel(Channel):
    name = PROVIDER
    max_body_bytes = 64 * 1024
    kept_headers = (TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER, SERIAL_HEADER)
    known_fields = KNOWN_FIELDS

    def __init__(self, settings_source: SettingsSource = configured_settings) -> None:
        self.settings_source = settings_source

    def authenticate(self, request: InboundRequest, settings: ChannelSettings, now: datetime) -> None:
        headers = request.headers
        for header in (SIGNATURE_HEADER, SERIAL_HEADER, NONCE_HEADER, TIMESTAMP_HEADER):
            if not headers.get(header):
                raise Unauthorized(f"missing {_spelled(header)}")
        signature, serial, nonce = headers[SIGNATURE_HEADER], headers[SERIAL_HEADER], headers[NONCE_HEADER]
        if headers.get(SIGNATURE_TYPE_HEADER, SIGNATURE_TYPE) != SIGNATURE_TYPE:
            raise Unauthorized(f"Wechatpay-Signature-Type must be {SIGNATURE_TYPE}")
        if signature.startswith(PROBE_PREFIX):
            raise Unauthorized("signature probe (WECHATPAY/SIGNTEST/): refused as WeChat Pay asks")
        timestamp = headers[TIMESTAMP_HEADER]
        signed_timestamp(timestamp, "Wechatpay-Timestamp", now, settings.timestamp_tolerance_s,
                         settings.timestamp_future_s)
        if _NONCE.fullmatch(nonce) is None:
            raise Unauthorized("Wechatpay-Nonce must be 1-64 printable ASCII characters")
        key = _key_for(serial, settings, now)
        try:
            presented = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise Unauthorized("Wechatpay-Signature is not base64") from None
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
        from cryptography.hazmat.primitives.hashes import SHA256

        try:  # the RSA verification is the comparison: nothing secret is compared here
            key.verify(presented, signed_message(timestamp, nonce, request.body), PKCS1v15(), SHA256())
        except InvalidSignature:
            raise Unauthorized("signature does not match") from None

    def parse(self, body: bytes, received_headers: Mapping[str, str] | None = None,
              rules: FieldRules = NO_RULES) -> list[OrderEvent]:
        return self._parse(body, rules, None)

    def parse_with(self, body: bytes, received_headers: Mapping[str, str] | None,
                   settings: ChannelSettings) -> list[OrderEvent]:
        """`parse` with the settings webhook ingest (or the mapper) already holds: not read a second time."""
        return self._parse(body, settings.field_rules, settings)

    def _parse(self, body: bytes, rules: FieldRules, given: ChannelSettings | None) -> list[OrderEvent]:
        envelope = loads_decimal(body)
        if not isinstance(envelope, dict):
            raise Malformed("body must be a JSON object")
        event_type = envelope.get("event_type")
        if not isinstance(event_type, str) or not event_type:
            raise Malformed("event_type: required")
        meaning = EVENT_TYPES.get(event_type)
        if meaning is None:
            return []  # not a payment or refund result: acknowledged, nothing kept
        try:
            head = _Notification.model_validate(envelope)
        except ValidationError as exc:
            raise Malformed(_describe(exc)) from None
        original_type, status = meaning
        if head.resource.original_type != original_type:
            raise Malformed(f"resource.original_type: {event_type} carries a {original_type}")
        settings = given if given is not None else self.settings_source()
        plaintext = decrypt(head.resource.ciphertext, head.resource.nonce, head.resource.associated_data,
                            settings.secrets)
        resource = read_json_document(plaintext, "resource (decrypted)")
        if not isinstance(resource, dict):
            raise Malformed("resource (decrypted): must be a JSON object")
        view, drift = self.prepare({**envelope, "resource": {**envelope["resource"], "plaintext": resource}}, rules)
        resource = view["resource"]["plaintext"]
        text = plaintext.decode()  # UTF-8: the reader refused anything else
        try:
            if original_type == "transaction":
                return [_payment(head, _Transaction.model_validate(resource), text, settings.options, drift)]
            refund = _Refund.model_validate(resource)
        except ValidationError as exc:
            raise Malformed(_describe(exc, "resource.")) from None
        if refund.refund_status != status:
            raise Malformed(f"resource.refund_status: {refund.refund_status} in a {event_type} notification")
        return [_refund(head, refund, text, settings.options, drift)]

    def accepted(self) -> Reply:
        return Reply(200, "", content_type="text/plain")  # 200 or 204 and no body: WeChat Pay reads the status

    def rejected(self, rejection: ChannelRejection) -> Reply:
        return Reply(rejection.status_code,
                     compact_json({"code": "FAIL", "message": rejection.reason[:REPLY_MESSAGE_CHARS]}))


def signed_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What WeChat Pay signs: three lines, each ending in \\n, the body as sent."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def decrypt(ciphertext: str, nonce: str, associated_data: str, apiv3_keys: Sequence[str]) -> bytes:
    """The resource's plaintext, opened with the first APIv3 key that authenticates it (GCM's tag)."""
    try:
        sealed = base64.b64decode(ciphertext, validate=True)
    except (binascii.Error, ValueError):
        raise Malformed("resource.ciphertext: not base64") from None
    if len(sealed) < 16:
        raise Malformed("resource.ciphertext: shorter than its 16-byte tag")
    from cryptography.exceptions import InvalidTag

    keys = [key for key in apiv3_keys if len(key.encode()) == 32]
    if not keys:
        raise Unauthorized("no APIv3 key (32 ASCII characters) is configured for WeChat Pay")
    for key in keys:
        try:
            return _cipher(key).decrypt(nonce.encode(), sealed, associated_data.encode())
        except InvalidTag:
            continue
    raise Unauthorized("resource cannot be decrypted with any configured APIv3 key")


@lru_cache(maxsize=8)
def _cipher(key: str) -> AESGCM:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key.encode())


def _key_for(serial: str, settings: ChannelSettings, now: datetime) -> RSAPublicKey:
    if _SERIAL.fullmatch(serial) is None:
        raise Unauthorized("Wechatpay-Serial is not a certificate serial or public key id")
    keys = settings.options.get("platform_keys") or {}
    pem = keys.get(serial) if isinstance(keys, Mapping) else None
    if not isinstance(pem, str):
        raise Unauthorized(f"Wechatpay-Serial {serial} names no configured WeChat Pay key")
    key, valid_from, valid_until = _platform_key(serial, pem)
    if valid_from is not None and valid_until is not None and not valid_from <= now <= valid_until:
        raise Unauthorized(f"the platform certificate {serial} is not valid now")
    return key


@lru_cache(maxsize=16)
def _platform_key(serial: str, pem: str) -> tuple[RSAPublicKey, datetime | None, datetime | None]:
    """A configured key, read once: a PEM public key, or a platform certificate whose serial is `serial`."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    valid_from = valid_until = None
    try:
        if "CERTIFICATE" in pem:
            cert = x509.load_pem_x509_certificate(pem.encode())
            if f"{cert.serial_number:X}" != serial.upper().lstrip("0"):
                raise Unauthorized(f"the certificate configured for {serial} has another serial number")
            key: object = cert.public_key()
            valid_from, valid_until = cert.not_valid_before_utc, cert.not_valid_after_utc
        else:
            key = load_pem_public_key(pem.encode())
    except ValueError:
        raise Unauthorized(f"the key configured for {serial} cannot be read") from None
    if not isinstance(key, RSAPublicKey):
        raise Unauthorized(f"the key configured for {serial} is not an RSA key")
    return key, valid_from, valid_until


def _account(mchid: str, appid: str | None, options: Mapping[str, Any]) -> None:
    """The notification must be for this hub's merchant account (and one of its apps, for a payment)."""
    own = options.get("mchid")
    if not own:
        raise Unauthorized("the hub has no WeChat Pay mchid configured")
    if mchid != str(own):
        raise Unauthorized("resource.mchid is not this hub's merchant account")
    if appid is not None:
        apps = options.get("appid") or ()
        if appid not in ((apps,) if isinstance(apps, str) else tuple(apps)):
            raise Unauthorized("resource.appid is not one of this hub's apps")


def _payment(head: _Notification, paid: _Transaction, text: str, options: Mapping[str, Any],
             drift: tuple[str, ...]) -> OrderEvent:
    _account(paid.mchid, paid.appid, options)
    money = _fact(MoneyKind.PAYMENT, paid.transaction_id, MoneyState.CONFIRMED, paid.amount.total,
                  paid.amount.currency, paid.out_trade_no, paid.mchid, paid.success_time, text)
    return _event(head, paid.out_trade_no, (EventKind.PAID,), paid.success_time, money, options, drift)


def _refund(head: _Notification, refund: _Refund, text: str, options: Mapping[str, Any],
            drift: tuple[str, ...]) -> OrderEvent:
    _account(refund.mchid, None, options)
    state, note = REFUND_STATES[refund.refund_status]
    at = refund.success_time or head.create_time  # only a successful refund has its own time
    money = _fact(MoneyKind.REFUND, refund.refund_id, state, refund.amount.refund,
                  refund.amount.currency or str(options.get("currency", "CNY")), refund.out_refund_no,
                  refund.mchid, at, text, payment_reference=refund.transaction_id, note=note)
    return _event(head, refund.out_trade_no, (), at, money, options, drift)


def _fact(kind: MoneyKind, reference: str, state: MoneyState, amount: int, currency: str, merchant_reference: str,
          account: str, at: datetime, text: str, **more: str) -> dict[str, Any]:
    if len(text) > PAYLOAD_CHARS:
        raise TooLarge(f"decrypted resource longer than {PAYLOAD_CHARS} characters, which the ledger keeps whole")
    return {"provider": PROVIDER, "kind": kind, "reference": reference, "state": state, "amount": amount,
            "currency": currency, "method": MethodClass.ONLINE, "merchant_reference": merchant_reference,
            "account": account, "occurred_at": at, "payload": text, **more}


def _event(head: _Notification, order_no: str, kinds: tuple[EventKind, ...], at: datetime, money: dict[str, Any],
           options: Mapping[str, Any], drift: tuple[str, ...]) -> OrderEvent:
    event = {"channel": str(options.get("orders_channel") or "mall"), "channel_order_id": order_no,
             "source": PROVIDER, "event_id": head.id, "channel_code": head.event_type, "kinds": kinds,
             "event_time": at, "drift": drift, "money": (money,)}
    try:
        return OrderEvent.model_validate(event)  # the money fact with it: one validation in pydantic-core
    except ValidationError as exc:
        raise Malformed(_describe(exc)) from None


def _describe(exc: ValidationError, prefix: str = "") -> str:
    """The first few problems as `field: message`, without echoing input values."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{prefix}{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def _spelled(header: str) -> str:
    return "-".join(part.capitalize() for part in header.split("-"))


CHANNEL = WeChatPayChannel()
