"""A local Alipay: trades, and the asynchronous notifications Alipay sends the hub about them.

DEVELOPMENT KEYS ONLY. The stand-in signs with the private keys in infra/standins/keys/
(alipay_2026.pem, whose public half is the first key of config/local.toml [channels.alipay]
secrets, and alipay_2025.pem, the second). They are published in this repository: no real
Alipay application may ever be configured with their public halves.

It notifies as Alipay does (the hub's module, orderhub/channels/alipay.py, names the sources):
`POST <hub>/webhooks/alipay`, `application/x-www-form-urlencoded; charset=<charset>`, the form
percent-encoded in that charset, `sign_type=RSA2` and `sign` = base64 RSA-SHA256 over the sorted
non-empty parameters but sign and sign_type (`name=value` joined with `&`, in the charset). The
signature is computed here on its own, not with the hub's code: a stand-in that shared the hub's
signed-string builder would agree with any mistake in it.

Only HTTP 200 with the body `success` is delivered; any other reply or a transport error is tried
again on Alipay's schedule, 8 notifications in all (4m, 10m, 10m, 1h, 2h, 6h, 15h after each
failure, ~24h24m from the first), then given up. Time is the injected clock's: nothing sleeps; a
test moves the clock and calls `deliver_due()`. Whether Alipay refreshes notify_time on a resend is
not documented; the stand-in resends the same signed body, the case the hub's window must allow.

    alipay = AlipayStandIn.from_config(config, "http://127.0.0.1:8080", clock)
    trade_no = alipay.pay("M20261122001", 25800)        # TRADE_SUCCESS, queued
    alipay.deliver_due()                                 # POSTed; retried later if not `success`
    alipay.refund(trade_no, 5800, out_biz_no="RF1")      # TRADE_SUCCESS, refund_fee=58.00
    alipay.refund(trade_no, 20000, out_biz_no="RF2")     # TRADE_CLOSED, refund_fee=258.00
    late = alipay.build(trade_no, trade_status="TRADE_FINISHED")  # signed, not queued: send it yourself
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from orderhub.clock import Clock

if TYPE_CHECKING:
    from infra.config import HubConfig

NOTIFY_PATH = "/webhooks/alipay"
# After the 1st..7th failed notification; the 8th is the last (Alipay: 8 notifications within 25 h).
RETRY_INTERVALS = (timedelta(minutes=4), timedelta(minutes=10), timedelta(minutes=10), timedelta(hours=1),
                   timedelta(hours=2), timedelta(hours=6), timedelta(hours=15))
MAX_ATTEMPTS = len(RETRY_INTERVALS) + 1
KEYS_DIR = Path(__file__).resolve().parent / "keys"
DEVELOPMENT_KEYS = ("alipay_2026.pem", "alipay_2025.pem")
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

# (url, body, headers) -> (HTTP status, reply body); raises OSError when nothing came back.
Transport = Callable[[str, bytes, Mapping[str, str]], tuple[int, str]]


def urllib_transport(timeout_s: float = 15.0) -> Transport:
    """POST with the standard library, as Alipay's notifier would (it waits ~15 s for a reply)."""

    def post(url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, str]:
        request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as reply:  # noqa: S310 (the hub's URL)
                return reply.status, reply.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read().decode("utf-8", "replace")

    return post


def load_private_key(pem: str | bytes) -> RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("an Alipay signing key is RSA")
    return key


def public_pem(key: RSAPrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode().strip()


@cache
def _development_key(name: str) -> tuple[str, str]:
    """(private PEM, its public half without whitespace) of a key file (a load checks the key: ~0.1 s)."""
    pem = (KEYS_DIR / name).read_text(encoding="ascii")
    return pem, "".join(public_pem(load_private_key(pem)).split())


def development_key_for(public_key_pem: str) -> str:
    """The development private key (PEM) whose public half is `public_key_pem`."""
    wanted = "".join(public_key_pem.split())
    for name in DEVELOPMENT_KEYS:
        pem, public = _development_key(name)
        if public == wanted:
            return pem
    raise ValueError("no development key matches the configured Alipay public key: the stand-in signs with "
                     "development keys only")


def signing_string(params: Mapping[str, str]) -> str:
    """Alipay's string to sign: non-empty parameters but sign and sign_type, sorted, `k=v` joined with `&`."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if params[k] and k not in ("sign", "sign_type"))


def rsa2_sign(text: str, key: RSAPrivateKey, charset: str = "utf-8") -> str:
    return base64.b64encode(key.sign(text.encode(charset), padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def form_body(params: Mapping[str, str], charset: str = "utf-8") -> bytes:
    """The form as sent: `name=value` in the given order, values percent-encoded in `charset` (space as `+`)."""
    return "&".join(f"{quote_plus(k)}={quote_plus(v, encoding=charset)}" for k, v in params.items()).encode("ascii")


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def beijing_text(at: datetime) -> str:
    return at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class Trade:
    out_trade_no: str
    trade_no: str
    total_fen: int
    subject: str
    created_at: datetime
    status: str = "WAIT_BUYER_PAY"
    paid_at: datetime | None = None
    closed_at: datetime | None = None
    refunded_fen: int = 0
    last_refund: tuple[str, datetime] | None = None  # (out_biz_no or "", gmt_refund) of the latest refund


@dataclass
class Notification:
    """One notification, signed; `next_at` is when it is due (None once delivered or given up)."""

    params: dict[str, str]
    body: bytes
    headers: dict[str, str]
    next_at: datetime | None = None
    attempts: int = 0
    delivered: bool = False

    @property
    def notify_id(self) -> str:
        return self.params.get("notify_id", "")

    @property
    def given_up(self) -> bool:
        return not self.delivered and self.attempts >= MAX_ATTEMPTS


@dataclass(frozen=True)
class Delivery:
    notify_id: str
    attempt: int
    at: datetime
    status: int | None  # None: no reply (transport error)
    reply: str
    delivered: bool
    error: str = ""


@dataclass
class AlipayStandIn:
    hub_url: str  # the hub's base URL; notifications go to <hub_url>/webhooks/alipay
    app_id: str
    seller_id: str
    signing_key_pem: str
    clock: Clock
    transport: Transport = field(default_factory=urllib_transport)
    charset: str = "utf-8"
    seller_email: str = "shop@example.com"
    trades: dict[str, Trade] = field(default_factory=dict)  # by trade_no
    notifications: list[Notification] = field(default_factory=list)  # queued, oldest first
    deliveries: list[Delivery] = field(default_factory=list)
    _key: RSAPrivateKey = field(init=False, repr=False)
    _sequence: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._key = load_private_key(self.signing_key_pem)

    @classmethod
    def from_config(cls, config: HubConfig, hub_url: str, clock: Clock, transport: Transport | None = None,
                    charset: str = "utf-8") -> AlipayStandIn:
        """The application, merchant and current key the hub is configured with (config [channels.alipay])."""
        channel = config.channels["alipay"]
        app_id, seller_id = (_first(channel.options.get(name)) for name in ("app_id", "seller_id"))
        if not app_id or not seller_id:
            raise ValueError("[channels.alipay] options need app_id and seller_id")
        return cls(hub_url, app_id, seller_id, development_key_for(channel.secrets[0]), clock,
                   transport or urllib_transport(), charset)

    @property
    def notify_url(self) -> str:
        return self.hub_url.rstrip("/") + NOTIFY_PATH

    # The trades ---------------------------------------------------------------------------------

    def create(self, out_trade_no: str, amount_fen: int, at: datetime | None = None, subject: str = "订单支付",
               notify: bool = False) -> str:
        """A trade waiting for the buyer (WAIT_BUYER_PAY); Alipay notifies it only to those who subscribe."""
        if amount_fen <= 0:
            raise ValueError("an Alipay trade is at least 0.01 yuan")
        if self._by_out_trade_no(out_trade_no) is not None:
            raise ValueError(f"out_trade_no {out_trade_no} already has a trade")
        at = self._past(at)
        self._sequence += 1
        trade_no = f"{at.astimezone(BEIJING):%Y%m%d}22001{self._sequence:015d}"
        self.trades[trade_no] = Trade(out_trade_no, trade_no, amount_fen, subject, at)
        if notify:
            self._queue(trade_no)
        return trade_no

    def pay(self, out_trade_no: str, amount_fen: int, at: datetime | None = None, *, subject: str = "订单支付",
            refundable: bool = True) -> str:
        """The buyer pays (creating the trade if needed): TRADE_SUCCESS, or TRADE_FINISHED for a product
        without refunds. Returns the trade number."""
        at = self._past(at)
        trade = self._by_out_trade_no(out_trade_no)
        if trade is None:
            trade = self.trades[self.create(out_trade_no, amount_fen, at - timedelta(seconds=20), subject)]
        if trade.status != "WAIT_BUYER_PAY":
            raise ValueError(f"trade {trade.trade_no} is {trade.status}, not waiting for payment")
        if amount_fen != trade.total_fen:
            raise ValueError("the buyer pays the trade's total_amount")
        trade.status, trade.paid_at = ("TRADE_SUCCESS" if refundable else "TRADE_FINISHED"), at
        if not refundable:
            trade.closed_at = at
        self._queue(trade.trade_no)
        return trade.trade_no

    def finish(self, trade_no: str, at: datetime | None = None) -> None:
        """The refund period ends: TRADE_FINISHED."""
        trade = self.trades[trade_no]
        if trade.status != "TRADE_SUCCESS":
            raise ValueError(f"trade {trade_no} is {trade.status}")
        trade.status, trade.closed_at = "TRADE_FINISHED", self._past(at)
        self._queue(trade_no)

    def refund(self, trade_no: str, amount_fen: int, out_biz_no: str | None = None,
               at: datetime | None = None) -> None:
        """A refund: the notification carries the trade's refunded total (refund_fee) and this refund's
        out_biz_no and time; the trade is TRADE_CLOSED once all of it is refunded."""
        trade = self.trades[trade_no]
        if trade.status != "TRADE_SUCCESS":
            raise ValueError(f"trade {trade_no} is {trade.status}: not refundable")
        if not 0 < amount_fen <= trade.total_fen - trade.refunded_fen:
            raise ValueError("refund amount invalid (REASON_TRADE_REFUND_FEE_ERR)")
        full = trade.refunded_fen + amount_fen == trade.total_fen
        if out_biz_no is None and not (full and trade.refunded_fen == 0):
            raise ValueError("a partial refund needs out_biz_no (the refund API's out_request_no)")
        at = self._past(at)
        trade.refunded_fen += amount_fen
        trade.last_refund = (out_biz_no or "", at)
        if full:
            trade.status, trade.closed_at = "TRADE_CLOSED", at
        self._queue(trade_no)

    def close(self, out_trade_no: str, at: datetime | None = None) -> None:
        """An unpaid trade times out: TRADE_CLOSED, nothing paid."""
        trade = self._by_out_trade_no(out_trade_no)
        if trade is None or trade.status != "WAIT_BUYER_PAY":
            raise ValueError(f"no trade of {out_trade_no} waits for payment")
        trade.status, trade.closed_at = "TRADE_CLOSED", self._past(at)
        self._queue(trade.trade_no)

    # Notifications --------------------------------------------------------------------------------

    def params(self, trade_no: str) -> dict[str, str]:
        """The parameters of a notification of the trade as it stands (unsigned), in the order Alipay's
        examples list them."""
        trade = self.trades[trade_no]
        self._sequence += 1
        notify_id = hashlib.sha256(f"{self.app_id}/{trade_no}/{self._sequence}".encode()).hexdigest()[:34]
        digits = int(hashlib.sha256(trade.out_trade_no.encode()).hexdigest()[:12], 16) % 10**12
        params = {
            "gmt_create": beijing_text(trade.created_at), "charset": self.charset,
            "seller_email": self.seller_email, "subject": trade.subject, "buyer_id": f"2088{digits:012d}",
            "notify_id": notify_id, "notify_type": "trade_status_sync", "trade_status": trade.status,
            "app_id": self.app_id, "version": "1.0", "seller_id": self.seller_id,
            "notify_time": beijing_text(self.clock.now()), "out_trade_no": trade.out_trade_no,
            "total_amount": yuan(trade.total_fen), "trade_no": trade.trade_no, "auth_app_id": self.app_id,
            "buyer_logon_id": f"{digits % 1000:03d}***@example.com",
        }
        if trade.paid_at is not None:
            paid = yuan(trade.total_fen)
            params |= {"gmt_payment": beijing_text(trade.paid_at), "invoice_amount": paid, "receipt_amount": paid,
                       "buyer_pay_amount": paid, "point_amount": "0.00",
                       "fund_bill_list": json.dumps([{"amount": paid, "fundChannel": "ALIPAYACCOUNT"}],
                                                    separators=(",", ":"))}
        if trade.last_refund is not None:
            out_biz_no, refunded_at = trade.last_refund
            params |= {"refund_fee": yuan(trade.refunded_fen), "gmt_refund": beijing_text(refunded_at)}
            if out_biz_no:
                params["out_biz_no"] = out_biz_no
        if trade.closed_at is not None:
            params["gmt_close"] = beijing_text(trade.closed_at)
        return params

    def signed(self, params: Mapping[str, str | None], charset: str | None = None) -> Notification:
        """Any parameters, signed with the stand-in's key (a None value leaves the parameter out): the
        notification as Alipay would send it, not queued."""
        charset = charset or self.charset
        kept = {k: v for k, v in params.items() if v is not None and k not in ("sign", "sign_type")}
        kept["sign_type"] = "RSA2"
        kept["sign"] = rsa2_sign(signing_string(kept), self._key, charset)
        headers = {"Content-Type": f"application/x-www-form-urlencoded; charset={charset}",
                   "User-Agent": "Mozilla/4.0"}
        return Notification(kept, form_body(kept, charset), headers)

    def build(self, trade_no: str, /, **overrides: str | None) -> Notification:
        """A fresh notification of the trade as it stands (new notify_id), `overrides` applied, signed and
        not queued: for sending late or duplicated copies with `send`."""
        return self.signed({**self.params(trade_no), **overrides})

    def send(self, notification: Notification) -> Delivery:
        """POST one notification now, outside any schedule."""
        now = self.clock.now()
        attempt = notification.attempts + 1
        try:
            status, reply = self.transport(self.notify_url, notification.body, notification.headers)
        except OSError as exc:
            delivery = Delivery(notification.notify_id, attempt, now, None, "", False, type(exc).__name__)
        else:
            delivered = status == 200 and reply == "success"
            delivery = Delivery(notification.notify_id, attempt, now, status, reply, delivered)
        self.deliveries.append(delivery)
        return delivery

    def deliver_due(self) -> list[Delivery]:
        """Send every notification that is due by the clock; schedule the next try of each that failed."""
        now = self.clock.now()
        done = []
        for notification in self.notifications:
            if notification.next_at is None or notification.next_at > now:
                continue
            delivery = self.send(notification)
            notification.attempts = delivery.attempt
            notification.delivered = delivery.delivered
            if delivery.delivered or notification.attempts >= MAX_ATTEMPTS:
                notification.next_at = None
            else:
                notification.next_at = now + RETRY_INTERVALS[notification.attempts - 1]
            done.append(delivery)
        return done

    @property
    def pending(self) -> list[Notification]:
        return [n for n in self.notifications if n.next_at is not None]

    def next_due(self) -> datetime | None:
        return min((n.next_at for n in self.pending if n.next_at is not None), default=None)

    def _queue(self, trade_no: str) -> Notification:
        notification = self.build(trade_no)
        notification.next_at = self.clock.now()
        self.notifications.append(notification)
        return notification

    def _past(self, at: datetime | None) -> datetime:
        """When something happened: by the clock's now at the latest (a notification reports the past)."""
        now = self.clock.now()
        if at is not None and at > now:
            raise ValueError("the stand-in notifies what has happened: move its clock past `at` first")
        return at or now

    def _by_out_trade_no(self, out_trade_no: str) -> Trade | None:
        return next((t for t in self.trades.values() if t.out_trade_no == out_trade_no), None)


def _first(value: Any) -> str:
    if isinstance(value, list | tuple):
        return str(value[0]) if value else ""
    return str(value or "")
