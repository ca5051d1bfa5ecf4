"""The providers' bills for what a local provider notified: WeChat Pay's trade bill, Alipay's business bill.

A stand-in remembers what it notified; these functions write, in the providers' real file formats, the
bill each provider would serve for one business day (Beijing time) of it, so a demo or a test can have the
providers serve their bills and reconcile them against what the hub booked. They write the formats
`orderhub.reconciliation.formats` reads, and are written here on their own, without that code: a writer
that shared the reader's helpers would agree with any mistake in them.

- `wechatpay_trade_bill`: the ALL trade bill (UTF-8, every value prefixed with a backtick, summary header
  and row at the end). A payment is on the day of its success time; a refund on the day it was first
  notified (WeChat Pay bills a refund when it accepts it), once, with its status as of that day's end; a
  refund only ever notified CLOSED moved nothing and is not billed. The fee is `fee_rate` of the amount,
  rounded to the fen and written to 5 decimals as WeChat Pay writes it; a refund gives its share back.
- `alipay_business_bill`: the zip Alipay's `bill_type=trade` download gives: `<pid>_<yyyymmdd>_业务明细.csv`
  and `…_业务明细(汇总).csv`, GBK, `#` lines around each table. A payment is on the day of gmt_payment; a
  refund (one per notified out_biz_no, its amount the step in the trade's refunded total) on the day of
  gmt_refund, with negative amounts; 服务费 is negative, the charge.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import date, datetime, timedelta, timezone
from typing import Any

from infra.standins.alipay import AlipayStandIn
from infra.standins.wechatpay import WeChatPayStandIn

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
FEE_RATE_BP = 60  # 0.60%, the common rate of both providers for ordinary merchants, in basis points



def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split(","))


WECHAT_HEADER = _names("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
                       "付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,"
                       "退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注")
WECHAT_SUMMARY = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"

ALIPAY_HEADER = _names("支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,"
                       "对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,"
                       "商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,"
                       "退款批次号/请求号,服务费（元）,分润（元）,备注")
ALIPAY_SUMMARY_HEADER = _names("门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,"
                               "支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）")


def _fee(amount: int, rate_bp: int) -> int:
    """The fee on `amount` minor units at `rate_bp` basis points, rounded half up to the unit."""
    return (amount * rate_bp + 5000) // 10000


def _units(amount: int, places: int) -> str:
    sign = "-" if amount < 0 else ""
    whole, part = divmod(abs(amount), 10**places)
    return f"{sign}{whole}.{part:0{places}d}"


def _beijing(at: datetime) -> str:
    return at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _on(at: datetime, day: date) -> bool:
    return at.astimezone(BEIJING).date() == day


# WeChat Pay --------------------------------------------------------------------------------------------


def wechatpay_movements(standin: WeChatPayStandIn, day: date) -> list[dict[str, Any]]:
    """What the WeChat Pay bill of `day` lists, from the stand-in's notifications: payments and refunds,
    by time, each once (a notification delivered twice is one movement)."""
    payments: dict[str, dict[str, Any]] = {}
    refunds: dict[str, dict[str, Any]] = {}
    day_end = datetime(day.year, day.month, day.day, tzinfo=BEIJING) + timedelta(days=1)
    for delivery in standin.deliveries:
        notification = delivery.notification
        envelope = json.loads(notification.body)
        resource = notification.resource
        if notification.event_type == "TRANSACTION.SUCCESS":
            at = datetime.fromisoformat(resource["success_time"])
            payments.setdefault(resource["transaction_id"], {"kind": "payment", "at": at, **resource})
        elif notification.event_type.startswith("REFUND."):
            at = datetime.fromisoformat(envelope["create_time"])
            held = refunds.setdefault(resource["refund_id"], {"kind": "refund", "at": at, "states": [], **resource})
            held["states"].append((at, resource["refund_status"]))
    movements = [p for p in payments.values() if _on(p["at"], day)]
    for refund in refunds.values():
        states = [status for at, status in refund["states"] if at < day_end]
        if _on(refund["at"], day) and any(status != "CLOSED" for status in states):
            movements.append({**refund, "refund_status": "PROCESSING" if states[-1] == "ABNORMAL" else states[-1]})
    return sorted(movements, key=lambda m: (m["at"], m["kind"]))


def wechatpay_trade_bill(standin: WeChatPayStandIn, day: date, fee_rate_bp: int = FEE_RATE_BP) -> bytes:
    """The ALL trade bill WeChat Pay would give for `day` of what `standin` notified (UTF-8, not gzipped;
    WeChat Pay's `hash_value` is the SHA1 of these bytes)."""
    lines = [",".join(WECHAT_HEADER)]
    count = settle = refunded = fees = ordered = asked = 0
    for movement in wechatpay_movements(standin, day):
        amount = movement["amount"]
        if movement["kind"] == "payment":
            total, paid = amount["total"], amount["payer_total"]
            fee = _fee(total, fee_rate_bp) * 1000
            values = {"微信订单号": movement["transaction_id"], "商户订单号": movement["out_trade_no"],
                      "用户标识": movement["payer"]["openid"], "交易类型": movement["trade_type"],
                      "交易状态": "SUCCESS", "付款银行": movement["bank_type"], "货币种类": amount["currency"],
                      "应结订单金额": _units(total, 2), "代金券金额": _units(total - paid, 2), "微信退款单号": "0",
                      "商户退款单号": "0", "退款金额": "0.00", "充值券退款金额": "0.00",
                      "商户数据包": movement["attach"], "订单金额": _units(total, 2), "申请退款金额": "0.00"}
            settle, ordered = settle + total, ordered + total
        else:
            refund = amount["refund"]
            fee = -_fee(refund, fee_rate_bp) * 1000
            values = {"微信订单号": movement["transaction_id"], "商户订单号": movement["out_trade_no"],
                      "交易类型": "JSAPI", "交易状态": "REFUND", "付款银行": "OTHERS", "货币种类": "CNY",
                      "应结订单金额": "0.00", "代金券金额": "0.00", "微信退款单号": movement["refund_id"],
                      "商户退款单号": movement["out_refund_no"], "退款金额": _units(refund, 2),
                      "充值券退款金额": "0.00", "退款类型": "ORIGINAL", "退款状态": movement["refund_status"],
                      "订单金额": "0.00", "申请退款金额": _units(refund, 2)}
            refunded, asked = refunded + refund, asked + refund
        count, fees = count + 1, fees + fee
        values |= {"交易时间": _beijing(movement["at"]), "公众账号ID": standin.appid, "商户号": standin.mchid,
                   "特约商户号": "0", "商品名称": "订单支付", "手续费": _units(fee, 5),
                   "费率": f"{_units(fee_rate_bp, 2)}%"}
        lines.append(",".join("`" + values.get(name, "") for name in WECHAT_HEADER))
    lines.append(WECHAT_SUMMARY)
    lines.append(",".join("`" + value for value in (
        str(count), _units(settle, 2), _units(refunded, 2), "0.00", _units(fees, 5), _units(ordered, 2),
        _units(asked, 2))))
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


# Alipay ------------------------------------------------------------------------------------------------


def alipay_movements(standin: AlipayStandIn, day: date) -> list[dict[str, Any]]:
    """What the Alipay business bill of `day` lists, from the stand-in's queued notifications: each payment
    once (at gmt_payment), each refund once (at gmt_refund, its amount the step in refund_fee)."""
    movements: dict[tuple[str, str, str], dict[str, Any]] = {}
    refunded: dict[str, int] = {}
    for notification in standin.notifications:
        params = notification.params
        trade_no = params["trade_no"]
        if "gmt_payment" in params:
            movements.setdefault(("payment", trade_no, ""), {"kind": "payment", "at": params["gmt_payment"],
                                                              "amount": _fen(params["total_amount"]), **params})
        if "gmt_refund" in params:
            key = ("refund", trade_no, f"{params.get('out_biz_no', '')}@{params['gmt_refund']}")
            if key not in movements:
                total = _fen(params["refund_fee"])
                movements[key] = {"kind": "refund", "at": params["gmt_refund"],
                                  "amount": total - refunded.get(trade_no, 0), **params}
                refunded[trade_no] = total
    wanted = day.isoformat()
    return sorted((m for m in movements.values() if m["at"][:10] == wanted), key=lambda m: (m["at"], m["kind"]))


def _fen(yuan: str) -> int:
    whole, _, part = yuan.partition(".")
    return int(whole) * 100 + int((part + "00")[:2])


def alipay_business_bill(standin: AlipayStandIn, day: date, fee_rate_bp: int = FEE_RATE_BP) -> bytes:
    """The zip Alipay would give for `day` of what `standin` notified (bill_type=trade)."""
    stamp = day.strftime("%Y%m%d")
    period = (f"#起始日期：[{day:%Y年%m月%d日} 00:00:00]   "
              f"终止日期：[{day + timedelta(days=1):%Y年%m月%d日} 00:00:00]")
    head = ["#支付宝业务明细查询", f"#账号：[{standin.seller_id}0156]", period,
            "#-----------------------------------------业务明细列表----------------------------------------",
            ",".join(ALIPAY_HEADER)]
    payments = refunds = ordered = fees = 0
    rows = []
    for movement in alipay_movements(standin, day):
        sign = 1 if movement["kind"] == "payment" else -1
        amount = sign * movement["amount"]
        fee = -sign * _fee(movement["amount"], fee_rate_bp)
        payments, refunds = payments + (sign > 0), refunds + (sign < 0)
        ordered, fees = ordered + amount, fees + fee
        values = {"支付宝交易号": movement["trade_no"] + "\t", "商户订单号": movement["out_trade_no"] + "\t",
                  "业务类型": "交易" if sign > 0 else "退款", "商品名称": movement["subject"],
                  "创建时间": movement["gmt_create"], "完成时间": movement["at"],
                  "对方账户": movement["buyer_logon_id"], "订单金额（元）": _units(amount, 2),
                  "商家实收（元）": _units(amount, 2), "服务费（元）": _units(fee, 2), "分润（元）": "0.00",
                  "退款批次号/请求号": movement.get("out_biz_no", "") + "\t" if sign < 0 else ""}
        rows.append(",".join(values.get(name, "0.00" if "（元）" in name else "") for name in ALIPAY_HEADER))
    tail = ["#-----------------------------------------业务明细列表结束------------------------------------",
            f"#交易合计：{payments}笔，商家实收共{_units(ordered, 2)}元",
            f"#导出时间：[{day + timedelta(days=1):%Y年%m月%d日} 09:00:00]"]
    detail = "\r\n".join([*head, *rows, *tail]) + "\r\n"
    by_name = {"门店编号": "合计", "门店名称": "", "交易订单总笔数": str(payments), "退款订单总笔数": str(refunds),
               "订单金额（元）": _units(ordered, 2), "商家实收（元）": _units(ordered, 2),
               "服务费（元）": _units(fees, 2), "分润（元）": "0.00", "实收净额（元）": _units(ordered + fees, 2)}
    summary = "\r\n".join([
        "#支付宝业务汇总查询", f"#账号：[{standin.seller_id}0156]", period,
        "#-----------------------------------------业务汇总列表----------------------------------------",
        ",".join(ALIPAY_SUMMARY_HEADER), ",".join(by_name.get(name, "0.00") for name in ALIPAY_SUMMARY_HEADER),
        "#-----------------------------------------业务汇总列表结束------------------------------------",
        f"#导出时间：[{day + timedelta(days=1):%Y年%m月%d日} 09:00:00]"]) + "\r\n"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in ((f"{standin.seller_id}_{stamp}_业务明细.csv", detail),
                           (f"{standin.seller_id}_{stamp}_业务明细(汇总).csv", summary)):
            info = zipfile.ZipInfo(name, date_time=(day.year, day.month, day.day, 9, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text.encode("gbk"))
    return out.getvalue()
