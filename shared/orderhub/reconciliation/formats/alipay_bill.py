"""Alipay's business detail bill (业务明细), read whole into statement lines, or refused whole.

The bill is what `alipay.data.dataservice.bill.downloadurl.query` with `bill_type=trade` points at
(`bill_download_url`, valid 30 s): a zip of GBK CSV files (member names in GBK too, without the zip's
UTF-8 flag), among them `<pid>_<yyyymmdd>_业务明细.csv` and `<pid>_<yyyymmdd>_业务明细(汇总).csv`. Each file
is a table between `#` lines (the account, the period, a `#---业务明细列表---` opening marker and a
`#---业务明细列表结束---` closing one, totals in words, the export time). The detail table's 25 columns:

    支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,
    订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,
    商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注

(full-width brackets; ids are followed by a tab so spreadsheets keep them as text). The summary file has
one row per shop and a 合计 row: 门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,…,
服务费（元）,分润（元）,实收净额（元）. Alipay does not promise the column order: columns are found by name.

Reading: 业务类型 交易 is a PAYMENT, 退款 a REFUND (its amounts are negative in the file and positive in the
line, `refund_id` the 退款批次号/请求号, i.e. the refund request's out_request_no); the amount is 商家实收
(what reached the merchant, the pair of WeChat Pay's 应结订单金额), 订单金额 and the discounts stay in `raw`;
服务费 becomes `fee`, the merchant's charge, positive (it is negative in the file; a refund's is positive, the
fee given back, and so negative in the line); time is 完成时间 (Beijing). The lines must add up to the
合计 row (counts of payments and refunds, 订单金额, 商家实收, 服务费, 分润), a table must be closed by its end
marker, and both files must be in the zip: anything else is refused, as is a zip that would inflate past
512 MiB or holds more than a few files.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator

from orderhub.reconciliation.formats._text import beijing_to_utc, column_index, decimal_units, format_units
from orderhub.reconciliation.statements import LineKind, Statement, StatementLine, StatementRefused

SOURCE = "alipay"
CURRENCY = "CNY"  # the business bill has no currency column: an Alipay merchant account settles in yuan
MAX_UNCOMPRESSED = 512 * 1024 * 1024
MAX_MEMBERS = 16  # a daily trade bill holds two files; a few more is a different product, many is a bomb
DETAIL_SUFFIX = "_业务明细.csv"
END_MARK = "列表结束"

REQUIRED = ("支付宝交易号", "商户订单号", "业务类型", "完成时间", "订单金额（元）", "商家实收（元）",
            "退款批次号/请求号", "服务费（元）")
OPTIONAL = ("对方账户", "备注", "分润（元）")
SUMMED = ("订单金额（元）", "商家实收（元）", "服务费（元）", "分润（元）")
SUMMARY_REQUIRED = ("门店编号", "交易订单总笔数", "退款订单总笔数", "订单金额（元）", "商家实收（元）", "服务费（元）")
_PERIOD = re.compile(r"起始日期：\[(\d{4})年(\d{2})月(\d{2})日.*?终止日期：\[(\d{4})年(\d{2})月(\d{2})日")


def read_business_bill(data: bytes) -> Statement:
    """The downloaded zip -> the detail file's lines, checked against the summary file's 合计 row."""
    detail, summary = _members(data)
    detail_name, detail_text = detail
    summary_name, summary_text = summary
    lines, sums, period = _read_detail(detail_name, detail_text)
    stated = _read_summary(summary_name, summary_text)
    counts = {"交易订单总笔数": sum(line.kind is LineKind.PAYMENT for line in lines),
              "退款订单总笔数": sum(line.kind is LineKind.REFUND for line in lines)}
    for name, value in stated.items():
        read = counts[name] if name in counts else sums.get(name)
        if read is None:
            continue
        if read != value:
            shown = (str(value), str(read)) if name in counts else (format_units(value, 2), format_units(read, 2))
            raise StatementRefused(SOURCE, 0, f"{summary_name}: 合计 {name} says {shown[0]}, the lines of "
                                   f"{detail_name} add up to {shown[1]}: a file is cut short or altered")
    return Statement(SOURCE, tuple(lines), stated, period)


def _members(data: bytes) -> tuple[tuple[str, str], tuple[str, str]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise StatementRefused(SOURCE, 0, f"not a readable zip ({exc})") from exc
    if len(infos) > MAX_MEMBERS:
        raise StatementRefused(SOURCE, 0, f"{len(infos)} files in the zip, more than {MAX_MEMBERS}")
    if sum(info.file_size for info in infos) > MAX_UNCOMPRESSED:
        raise StatementRefused(SOURCE, 0, f"more than {MAX_UNCOMPRESSED} bytes uncompressed")
    found: dict[str, tuple[str, zipfile.ZipInfo]] = {}
    for info in infos:
        name = _member_name(info)
        role = "summary" if "汇总" in name else "detail" if name.endswith(DETAIL_SUFFIX) else None
        if role is None:
            continue
        if role in found:
            raise StatementRefused(SOURCE, 0, f"two {role} files in the zip: {found[role][0]}, {name}")
        found[role] = (name, info)
    for role, wanted in (("detail", "…_业务明细.csv"), ("summary", "…_业务明细(汇总).csv")):
        if role not in found:
            raise StatementRefused(SOURCE, 0, f"no {wanted} in the zip")
    budget = MAX_UNCOMPRESSED
    texts = []
    for role in ("detail", "summary"):
        name, info = found[role]
        try:
            with archive.open(info) as member:
                raw = member.read(budget + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise StatementRefused(SOURCE, 0, f"{name}: cannot be read from the zip ({exc})") from exc
        if len(raw) > budget:
            raise StatementRefused(SOURCE, 0, f"more than {MAX_UNCOMPRESSED} bytes uncompressed")
        budget -= len(raw)
        try:
            texts.append((name, raw.decode("gbk")))
        except UnicodeDecodeError as exc:
            line_no = raw.count(b"\n", 0, exc.start) + 1
            raise StatementRefused(SOURCE, line_no, f"{name}: not GBK text") from exc
    return texts[0], texts[1]


def _member_name(info: zipfile.ZipInfo) -> str:
    """The member's name: GBK bytes, which Python reads as cp437 when the zip's UTF-8 flag is not set."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gbk")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _table(name: str, text: str) -> Iterator[tuple[int, list[str]]]:
    """The table's rows (values stripped of the tabs and spaces Alipay pads ids with), by file line; refused
    when the closing `#…列表结束…` marker is missing (the file was cut short)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    closed = False
    for row in reader:
        if not row or not any(cell.strip() for cell in row):
            continue
        if row[0].startswith("#"):
            closed = closed or END_MARK in row[0]
            continue
        if closed:
            raise StatementRefused(SOURCE, reader.line_num, f"{name}: a row after the table's end marker")
        yield reader.line_num, [cell.strip() for cell in row]
    if not closed:
        raise StatementRefused(SOURCE, reader.line_num, f"{name}: no end-of-table marker: the file is cut short")


def _read_detail(name: str, text: str) -> tuple[list[StatementLine], dict[str, int], str]:
    rows = _table(name, text)
    first = next(rows, None)
    if first is None:
        raise StatementRefused(SOURCE, 0, f"{name}: no header row")
    header_no, header = first
    try:
        columns = column_index(header, REQUIRED, OPTIONAL)
    except ValueError as exc:
        raise StatementRefused(SOURCE, header_no, f"{name}: {exc}") from exc
    summed = [(column, columns[column]) for column in SUMMED if column in columns]
    sums = dict.fromkeys(SUMMED, 0)
    lines: list[StatementLine] = []
    for line_no, values in rows:
        if len(values) != len(header):
            raise StatementRefused(SOURCE, line_no, f"{name}: {len(values)} values for {len(header)} columns")
        try:
            for column, position in summed:
                sums[column] += _amount(values[position], column)
            lines.append(_line(line_no, values, columns, header))
        except ValueError as exc:
            raise StatementRefused(SOURCE, line_no, f"{name}: {exc}") from exc
    match = _PERIOD.search(text[:2000])
    period = "-".join(match.groups()[:3]) if match else ""  # the start date names the business day
    return lines, sums, period


def _amount(text: str, column: str) -> int:
    try:
        return decimal_units(text or "0", 2)
    except ValueError as exc:
        raise ValueError(f"{column}: {exc}") from exc


def _line(line_no: int, values: list[str], columns: dict[str, int], header: list[str]) -> StatementLine:
    business = values[columns["业务类型"]]
    received = _amount(values[columns["商家实收（元）"]], "商家实收（元）")
    fee = -_amount(values[columns["服务费（元）"]], "服务费（元）")
    if business == "交易":
        kind, amount = LineKind.PAYMENT, received
        if received < 0:
            raise ValueError(f"a payment of negative 商家实收 {format_units(received, 2)}")
    elif business == "退款":
        kind, amount = LineKind.REFUND, -received
        if received > 0:
            raise ValueError(f"a refund of positive 商家实收 {format_units(received, 2)} (refunds are negative)")
    else:
        raise ValueError(f"业务类型 {business!r} is not one this reader knows (交易, 退款)")
    transaction_id = values[columns["支付宝交易号"]]
    if not transaction_id:
        raise ValueError("empty 支付宝交易号")
    return StatementLine(
        source=SOURCE, line_no=line_no, kind=kind, amount=amount, currency=CURRENCY,
        occurred_at=beijing_to_utc(values[columns["完成时间"]]), transaction_id=transaction_id,
        order_ref=values[columns["商户订单号"]],
        refund_id=values[columns["退款批次号/请求号"]] if kind is LineKind.REFUND else "",
        fee=fee, fee_micro=fee * 1000, remark=values[columns["备注"]] if "备注" in columns else "",
        counterparty=values[columns["对方账户"]] if "对方账户" in columns else "",
        raw=dict(zip(header, values, strict=True)))


def _read_summary(name: str, text: str) -> dict[str, int]:
    rows = _table(name, text)
    first = next(rows, None)
    if first is None:
        raise StatementRefused(SOURCE, 0, f"{name}: no header row")
    header_no, header = first
    try:
        columns = column_index(header, SUMMARY_REQUIRED, ("分润（元）",))
    except ValueError as exc:
        raise StatementRefused(SOURCE, header_no, f"{name}: {exc}") from exc
    data = list(rows)
    totals = [(no, row) for no, row in data if row[columns["门店编号"]] == "合计"]
    if len(totals) != 1 and not (not totals and len(data) == 1):
        raise StatementRefused(SOURCE, header_no, f"{name}: no single 合计 row")
    line_no, row = totals[0] if totals else data[0]
    if len(row) != len(header):
        raise StatementRefused(SOURCE, line_no, f"{name}: {len(row)} values for {len(header)} columns")
    stated: dict[str, int] = {}
    for column in ("交易订单总笔数", "退款订单总笔数"):
        text_value = row[columns[column]]
        if not text_value.isdigit():
            raise StatementRefused(SOURCE, line_no, f"{name}: {column}: not a count: {text_value!r}")
        stated[column] = int(text_value)
    for column in SUMMED:
        if column in columns:
            try:
                stated[column] = _amount(row[columns[column]], column)
            except ValueError as exc:
                raise StatementRefused(SOURCE, line_no, f"{name}: {exc}") from exc
    return stated
