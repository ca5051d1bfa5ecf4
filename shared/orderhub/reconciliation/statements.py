"""Statement lines: what a payment provider's bill or a bank statement says moved, one line each (REC-1).

Every statement format (WeChat Pay trade bill, Alipay business detail bill, bank CSV by a per-bank
column mapping, MT940, ISO 20022 camt.053) is read into `StatementLine`s by its own module in
`orderhub.reconciliation.formats`; the matcher only ever sees these. Money is integer minor units,
exactly as written (a yuan amount that is not exact to the fen, or a fee to the 1/100,000 yuan, is kept in
its own exact field); a file that does not parse is refused whole with the line number and the reason
(`StatementRefused`), never read in part.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class LineKind(StrEnum):
    PAYMENT = "payment"  # money in for an order
    REFUND = "refund"  # money back to a buyer
    FEE = "fee"  # the provider's or bank's charge, when the statement lists it as a line of its own
    OTHER = "other"  # anything else the statement moved (a settlement to the bank account, an adjustment)


class RawRow(Mapping[str, str]):
    """A row as read, by header name, for reports: the file's header positions, shared by all its rows, and
    the row's values in a tuple. A dict per row would cost about 1 KiB more on each line of a million-row bill."""

    __slots__ = ("_positions", "_values")

    def __init__(self, positions: Mapping[str, int], values: tuple[str, ...]) -> None:
        self._positions, self._values = positions, values

    def __getitem__(self, name: str) -> str:
        return self._values[self._positions[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._positions)

    def __len__(self) -> int:
        return len(self._positions)

    def __repr__(self) -> str:
        return repr(dict(self))


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One movement as a statement reports it.

    `source` names the statement's origin (`wechatpay`, `alipay`, `bank:<name>`); `line_no` is the line (or
    entry) in the file it came from, so a difference can be traced back to the row a person sees.
    """

    source: str
    line_no: int
    kind: LineKind
    amount: int  # minor units, positive; the kind says the direction
    currency: str
    occurred_at: str  # UTC ISO 8601 with offset (the statement's own time, converted)
    transaction_id: str = ""  # the provider's transaction id (WeChat Pay 微信订单号, Alipay 支付宝交易号, bank ref)
    order_ref: str = ""  # the merchant's order number (商户订单号 / out_trade_no), where the statement has it
    refund_id: str = ""  # the provider's refund id (微信退款单号), or the merchant's (商户退款单号 / out_biz_no)
    fee: int | None = None  # the provider's fee on this line, in minor units, when exact to them
    fee_micro: int | None = None  # the fee as written, in 1/100,000 of the major unit (WeChat Pay's 5 decimals)
    remark: str = ""  # the statement's free text (bank 摘要/附言, Alipay 备注): the matcher's last resort
    counterparty: str = ""  # the other side's account or name, as the statement shows it (no more)
    raw: Mapping[str, str] = field(default_factory=dict)  # the row as read, by header name (for reports)


class StatementRefused(ValueError):
    """A statement that cannot be read whole: which line, and why. Nothing of it is used."""

    def __init__(self, source: str, line_no: int, reason: str) -> None:
        super().__init__(f"{source} line {line_no}: {reason}")
        self.source, self.line_no, self.reason = source, line_no, reason


@dataclass(frozen=True)
class Statement:
    """A whole statement as read: its lines, and the totals it states about itself (to check it is whole)."""

    source: str
    lines: tuple[StatementLine, ...]
    # What the file says of itself (summary rows, opening/closing balances), by name, in minor units: the
    # reader checks its lines against these and refuses a file whose lines do not add up to them.
    stated_totals: dict[str, int] = field(default_factory=dict)
    period: str = ""  # the business date (or dates) the statement covers, as it says
