"""A local WeChat Pay: payment and refund notifications built, encrypted, signed and delivered as WeChat Pay does.

For the demo, the tests and the benchmarks. It holds the merchant's APIv3 key and the private half of a
WeChat Pay platform key, and sends API v3 notifications to the hub's `POST /webhooks/wechatpay`:
- the resource (a transaction, or a refund) is JSON encrypted with AES-256-GCM under the APIv3 key, with
  a random 12-character nonce and the associated data "transaction" / "refund";
- the envelope `{id, create_time, resource_type, event_type, summary, resource}` is signed with
  RSA-SHA256 (PKCS#1 v1.5) over `timestamp\\nnonce\\nbody\\n`, sent with `Wechatpay-Timestamp`,
  `Wechatpay-Nonce` (32 random characters), `Wechatpay-Signature`, `Wechatpay-Serial` and
  `Wechatpay-Signature-Type`. Each attempt is signed anew (a retry a day later carries that day's
  timestamp); the body, and so the notification id, stay the same;
- a 200 or 204 answer is a delivery; anything else, or no answer, is retried after 15s, 15s, 30s, 3m,
  10m, 20m, 30m, 30m, 30m, 60m, 3h, 3h, 3h, 6h, 6h (WeChat Pay's published schedule, 24 h 4 min in
  all): sixteen attempts, then it gives up. Time is the injected clock's: `deliver_due()` sends what is
  due now, and nothing sleeps.

`seal` builds a notification around any plaintext without sending it (late copies, duplicates and
hostile resources in tests and the demo); `request` signs one for a given time.

The private keys in infra/standins/keys/ are development keys made for this repository and published
with it: they sign nothing real. A hub configured with their public halves accepts anyone's
notifications: never configure them outside local runs and tests.
"""

from __future__ import annotations

import base64
import json
import random
import string
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from orderhub.channels.wechatpay import SIGNATURE_TYPE, signed_message
from orderhub.clock import Clock
from orderhub.outbound_http import HttpTransport, Timeouts, Transport

if TYPE_CHECKING:
    from infra.config import HubConfig

KEYS_DIR = Path(__file__).resolve().parent / "keys"
# Development keys by the serial (or public key id) the hub's configuration names them with.
DEV_KEYS = {
    "PUB_KEY_ID_0119000091912026120100000000000001": "wechatpay_platform_2026.pem",
    "5157F09EFDC096DE15EBE81A47057A7232F1B8E1": "wechatpay_platform_2025.pem",
}
# Seconds from a failed attempt to the next one: WeChat Pay's 15s/15s/30s/3m/10m/20m/30m/30m/30m/60m/3h/3h/3h/6h/6h.
RETRY_AFTER_S = (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600)
WEBHOOK_PATH = "/webhooks/wechatpay"
TIMEOUTS = Timeouts(connect_s=3.0, read_s=5.0)  # the stand-in's choice: WeChat Pay publishes no figure we found
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")  # WeChat Pay writes its times in +08:00
SUMMARIES = {"TRANSACTION.SUCCESS": "支付成功", "REFUND.SUCCESS": "退款成功", "REFUND.ABNORMAL": "退款异常",
             "REFUND.CLOSED": "退款关闭"}
_ALPHANUMERIC = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Notification:
    """One notification as WeChat Pay sends it: the body is fixed, the headers are made per attempt."""

    id: str
    event_type: str
    body: bytes
    plaintext: bytes  # the decrypted resource, for readers and tests (the hub sees only the ciphertext)

    @property
    def resource(self) -> Any:
        return json.loads(self.plaintext)


@dataclass(frozen=True)
class Attempt:
    at: datetime
    status: int | None  # None: no answer (connection refused, timeout)
    reply: bytes = b""

    @property
    def delivered(self) -> bool:
        return self.status in (200, 204)


@dataclass
class Delivery:
    """A notification on WeChat Pay's schedule: due again until delivered or given up."""

    notification: Notification
    due: datetime | None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def state(self) -> Literal["pending", "delivered", "abandoned"]:
        if self.attempts and self.attempts[-1].delivered:
            return "delivered"
        return "pending" if self.due is not None else "abandoned"


@dataclass
class _Payment:
    out_trade_no: str
    total: int
    payer_total: int
    currency: str
    refunds: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # id -> (out_refund_no, amount, status)

    @property
    def refunded(self) -> int:
        return sum(amount for _, amount, status in self.refunds.values() if status != "CLOSED")


class WeChatPayStandIn:
    def __init__(self, hub_url: str, apiv3_key: str, mchid: str, appid: str, signing_key_pem: bytes | str,
                 serial: str, clock: Clock, transport: Transport | None = None, rng: random.Random | None = None,
                 timeouts: Timeouts = TIMEOUTS) -> None:
        if len(apiv3_key.encode()) != 32:
            raise ValueError("the APIv3 key is 32 ASCII characters")
        pem = signing_key_pem.encode() if isinstance(signing_key_pem, str) else signing_key_pem
        self.url = hub_url.rstrip("/") + WEBHOOK_PATH
        self.apiv3_key, self.mchid, self.appid, self.serial = apiv3_key, mchid, appid, serial
        self.clock = clock
        self._key = signing_key(pem)
        self._transport: Transport = transport or HttpTransport()
        self._timeouts = timeouts
        self._rng = rng or random.SystemRandom()
        self._payments: dict[str, _Payment] = {}
        self._sequence = 0
        self.deliveries: list[Delivery] = []

    # Notifications --------------------------------------------------------------------------

    def pay(self, out_trade_no: str, amount: int, at: datetime | None = None, **more: Any) -> str:
        """A successful payment of `amount` fen for `out_trade_no`, notified now; its transaction id."""
        notification = self.payment_notification(out_trade_no, amount, at, **more)
        self.notify(notification)
        return str(notification.resource["transaction_id"])

    def refund(self, transaction_id: str, amount: int, status: str = "SUCCESS", at: datetime | None = None,
               refund_id: str | None = None, out_refund_no: str | None = None) -> str:
        """A refund of a payment, notified now in `status` (SUCCESS / ABNORMAL / CLOSED); its refund id.
        With `refund_id`, a later state of that refund (an abnormal refund finished by hand)."""
        notification = self.refund_notification(transaction_id, amount, status, at, refund_id, out_refund_no)
        self.notify(notification)
        return str(notification.resource["refund_id"])

    def payment_notification(self, out_trade_no: str, amount: int, at: datetime | None = None, currency: str = "CNY",
                             payer_total: int | None = None, openid: str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
                             trade_type: str = "JSAPI", attach: str = "") -> Notification:
        """TRANSACTION.SUCCESS for a new payment, built and remembered (refunds refer to it), not sent."""
        at = at or self.clock.now()
        self._sequence += 1
        transaction_id = f"4200{at.astimezone(BEIJING):%Y%m%d}{self._sequence:06d}{self._digits(10)}"
        paid = amount if payer_total is None else payer_total
        self._payments[transaction_id] = _Payment(out_trade_no, amount, paid, currency)
        resource = {"mchid": self.mchid, "appid": self.appid, "out_trade_no": out_trade_no,
                    "transaction_id": transaction_id, "trade_type": trade_type, "trade_state": "SUCCESS",
                    "trade_state_desc": "支付成功", "bank_type": "OTHERS", "attach": attach,
                    "success_time": wechat_time(at), "payer": {"openid": openid},
                    "amount": {"total": amount, "payer_total": paid, "currency": currency,
                               "payer_currency": currency}}
        return self.seal("TRANSACTION.SUCCESS", _json(resource), at)

    def refund_notification(self, transaction_id: str, amount: int, status: str = "SUCCESS",
                            at: datetime | None = None, refund_id: str | None = None,
                            out_refund_no: str | None = None) -> Notification:
        """REFUND.<status> for a payment this stand-in made, built and not sent."""
        if status not in ("SUCCESS", "ABNORMAL", "CLOSED"):
            raise ValueError(f"a refund notification is SUCCESS, ABNORMAL or CLOSED, not {status}")
        payment = self._payments.get(transaction_id)
        if payment is None:
            raise ValueError(f"no payment {transaction_id} was made here")
        at = at or self.clock.now()
        if refund_id is None:
            if amount > payment.total - payment.refunded:
                raise ValueError("refund beyond what is left of the payment")
            self._sequence += 1
            refund_id = f"5030{at.astimezone(BEIJING):%Y%m%d}{self._sequence:06d}{self._digits(11)}"
            out_refund_no = out_refund_no or f"R{payment.out_trade_no}-{len(payment.refunds) + 1}"
        elif refund_id in payment.refunds:
            out_refund_no, amount, _ = payment.refunds[refund_id]
        else:
            raise ValueError(f"no refund {refund_id} of {transaction_id}")
        payment.refunds[refund_id] = (out_refund_no, amount, status)  # a closed refund returns nothing
        resource: dict[str, Any] = {
            "mchid": self.mchid, "out_trade_no": payment.out_trade_no, "transaction_id": transaction_id,
            "out_refund_no": out_refund_no, "refund_id": refund_id, "refund_status": status}
        if status == "SUCCESS":
            resource["success_time"] = wechat_time(at)
        resource |= {"user_received_account": "支付用户零钱",
                     "amount": {"total": payment.total, "refund": amount, "payer_total": payment.payer_total,
                                "payer_refund": min(amount, payment.payer_total)}}
        return self.seal(f"REFUND.{status}", _json(resource), at)

    def seal(self, event_type: str, plaintext: bytes, at: datetime | None = None, original_type: str | None = None,
             apiv3_key: str | None = None) -> Notification:
        """A notification carrying `plaintext` (any bytes) as its encrypted resource, as WeChat Pay builds it."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        at = at or self.clock.now()
        kind = original_type or ("refund" if event_type.startswith("REFUND.") else "transaction")
        nonce = self._text(12)
        sealed = AESGCM((apiv3_key or self.apiv3_key).encode()).encrypt(nonce.encode(), plaintext, kind.encode())
        notification_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=5))
        envelope = {"id": notification_id, "create_time": wechat_time(at), "resource_type": "encrypt-resource",
                    "event_type": event_type, "summary": SUMMARIES.get(event_type, "通知"),
                    "resource": {"original_type": kind, "algorithm": "AEAD_AES_256_GCM",
                                 "ciphertext": base64.b64encode(sealed).decode(), "associated_data": kind,
                                 "nonce": nonce}}
        return Notification(notification_id, event_type, _json(envelope), plaintext)

    def request(self, notification: Notification, at: datetime | None = None) -> tuple[dict[str, str], bytes]:
        """The headers (lower-case) and body of one attempt to send `notification` at `at` (default now)."""
        from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
        from cryptography.hazmat.primitives.hashes import SHA256

        timestamp = str(int((at or self.clock.now()).timestamp()))
        nonce = self._text(32)
        signature = self._key.sign(signed_message(timestamp, nonce, notification.body), PKCS1v15(), SHA256())
        return ({"content-type": "application/json", "wechatpay-timestamp": timestamp, "wechatpay-nonce": nonce,
                 "wechatpay-signature": base64.b64encode(signature).decode(), "wechatpay-serial": self.serial,
                 "wechatpay-signature-type": SIGNATURE_TYPE}, notification.body)

    # Delivery -------------------------------------------------------------------------------

    def notify(self, notification: Notification) -> Delivery:
        """Put `notification` on the delivery schedule, due now."""
        delivery = Delivery(notification, self.clock.now())
        self.deliveries.append(delivery)
        return delivery

    def duplicate(self, notification: Notification) -> Delivery:
        """The same notification (same id, same body) delivered once more, as WeChat Pay sometimes does."""
        return self.notify(notification)

    def deliver_due(self) -> list[Attempt]:
        """One attempt for every delivery due by the clock; a failure is due again after the next interval."""
        now = self.clock.now()
        made = []
        for delivery in self.deliveries:
            if delivery.due is None or delivery.due > now or delivery.state == "delivered":
                continue
            attempt = self._send(delivery.notification, now)
            delivery.attempts.append(attempt)
            failures = len(delivery.attempts)
            if attempt.delivered:
                delivery.due = None
            else:
                delivery.due = now + timedelta(seconds=RETRY_AFTER_S[failures - 1]) \
                    if failures <= len(RETRY_AFTER_S) else None
            made.append(attempt)
        return made

    def pending(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.state == "pending"]

    def _send(self, notification: Notification, now: datetime) -> Attempt:
        headers, body = self.request(notification, now)
        try:
            reply = self._transport.post(self.url, body, headers, self._timeouts)
        except OSError:
            return Attempt(now, None)
        return Attempt(now, reply.status, reply.body)

    def _text(self, length: int) -> str:
        return "".join(self._rng.choice(_ALPHANUMERIC) for _ in range(length))

    def _digits(self, length: int) -> str:
        return f"{self._rng.randrange(10**length):0{length}d}"


@lru_cache(maxsize=8)
def signing_key(pem: bytes) -> Any:
    """A PEM private key, read once (reading checks the RSA key: ~45 ms)."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return load_pem_private_key(pem, password=None)


def wechat_time(at: datetime) -> str:
    """RFC 3339 in Beijing time, to the second, as WeChat Pay writes `success_time` and `create_time`."""
    return at.astimezone(BEIJING).isoformat(timespec="seconds")


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def from_config(config: HubConfig, hub_url: str, clock: Clock, serial: str | None = None,
                transport: Transport | None = None, rng: random.Random | None = None) -> WeChatPayStandIn:
    """A stand-in for the hub `config` describes (config/local.toml): its APIv3 key, merchant and app ids,
    and the development key of `serial` (default: the first configured serial with a development key)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    channel = config.channels["wechatpay"]
    configured = channel.secret_options.get("platform_keys") or channel.options.get("platform_keys") or {}
    serial = serial or next((s for s in configured if s in DEV_KEYS), None)
    if serial is None or serial not in DEV_KEYS:
        raise ValueError("the configuration names no WeChat Pay key this stand-in has a development key for")
    pem = (KEYS_DIR / DEV_KEYS[serial]).read_bytes()
    public = signing_key(pem).public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    if serial in configured and configured[serial].strip() != public.decode().strip():
        raise ValueError(f"the key configured for {serial} is not the development key's public half")
    appid = channel.options.get("appid", "")
    return WeChatPayStandIn(hub_url, channel.secrets[0], str(channel.options["mchid"]),
                            appid if isinstance(appid, str) else appid[0], pem, serial, clock, transport, rng)


SAMPLES_AT = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
SAMPLES_DIR = Path(__file__).resolve().parents[2] / "events" / "wechatpay"


def samples(config: HubConfig) -> dict[str, dict[str, Any]]:
    """The requests in events/wechatpay/, as this stand-in makes them (fixed clock and seed): a mall order
    paid, part of it refunded (abnormal first, finished by hand a day later), and a refund closed."""
    from orderhub.clock import FixedClock

    clock = FixedClock(SAMPLES_AT)
    standin = from_config(config, "http://hub.invalid", clock, rng=random.Random(20261122))  # noqa: S311 (reproducible)
    paid = standin.payment_notification("M20261118001", 25800, SAMPLES_AT - timedelta(seconds=2))
    transaction_id = paid.resource["transaction_id"]
    abnormal = standin.refund_notification(transaction_id, 5800, "ABNORMAL", SAMPLES_AT + timedelta(hours=2))
    refund_id = abnormal.resource["refund_id"]
    finished = standin.refund_notification(transaction_id, 5800, "SUCCESS", SAMPLES_AT + timedelta(days=1),
                                           refund_id=refund_id)
    closed = standin.refund_notification(transaction_id, 1000, "CLOSED", SAMPLES_AT + timedelta(days=2))
    made = {}
    for name, notification, offset in (("transaction_success", paid, 0), ("refund_abnormal", abnormal, 2),
                                       ("refund_success", finished, 24), ("refund_closed", closed, 48)):
        sent_at = SAMPLES_AT + timedelta(hours=offset)
        headers, body = standin.request(notification, sent_at)
        made[name] = {"sent_at": sent_at.isoformat(), "headers": headers, "body": body.decode(),
                      "resource (decrypted)": notification.resource}
    return made


if __name__ == "__main__":  # rewrite the samples: PYTHONPATH=shared:. python -m infra.standins.wechatpay
    from infra.config import load_config

    for name, sample in samples(load_config()).items():
        (SAMPLES_DIR / f"{name}.json").write_text(json.dumps(sample, ensure_ascii=False, indent=2) + "\n")
