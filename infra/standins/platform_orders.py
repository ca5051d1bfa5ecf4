"""Order documents as Taobao (TOP), JD (JOS) and Pinduoduo return them, and a generator of a day.

Builders produce one order's snapshot in the platform's own JSON shape (field names, yuan
strings or numbers, Beijing-time strings, TOP's `{"orders": {"order": [...]}}` wrapping), with
fictional receivers (names, 1xx-0000-xxxx phone numbers, addresses). `generate_orders` makes
a realistic day: orders created over the last days and modified during the day, in a mix of
states close to what a tea shop sees (most paid and shipped, some unpaid, closed, refunded,
held, presale). Used by the fake platforms, the tests, the demo and the poller benchmark.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

CST = timezone(timedelta(hours=8))
FORMAT = "%Y-%m-%d %H:%M:%S"

SKUS = [("TEA-LJ-250", "明前龙井 250g", Decimal("129.00")), ("TEA-BLC-100", "洞庭碧螺春 100g", Decimal("68.00")),
        ("TEA-TGY-500", "安溪铁观音 500g", Decimal("158.00")),
        ("CUP-CELADON-2", "龙泉青瓷茶杯两只装", Decimal("88.00")),
        ("GIFT-SET-A", "西湖茶礼盒 A", Decimal("399.00")), ("TEA-PE-357", "普洱七子饼 357g", Decimal("219.50"))]
REGIONS = [("浙江省", "杭州市"), ("广东省", "深圳市"), ("北京", "北京市"), ("四川省", "成都市"), ("上海", "上海市"),
           ("江苏省", "苏州市"), ("湖北省", "武汉市"), ("河南省", "济源市")]
CARRIERS = {"taobao": [("顺丰速运", "SF"), ("中通快递", "ZTO"), ("圆通速递", "YT")],
            "jd": [("467", "JDV"), ("2087", "JDL")], "pdd": [("44", "SF"), ("115", "ZTO"), ("85", "YTO")]}
SURNAMES = "张王李赵刘陈杨黄周吴"


def ts(at: datetime) -> str:
    return at.astimezone(CST).strftime(FORMAT)


def yuan(amount: Decimal) -> str:
    return f"{amount:.2f}"


@dataclass(frozen=True)
class Line:
    sku: str
    name: str
    price: Decimal
    quantity: int

    @property
    def total(self) -> Decimal:
        return self.price * self.quantity


@dataclass(frozen=True)
class Receiver:
    name: str
    phone: str
    province: str
    city: str
    address: str


def fictional_receiver(rng: random.Random) -> Receiver:
    province, city = rng.choice(REGIONS)
    return Receiver(name=rng.choice(SURNAMES) + "测试", phone=f"1{rng.choice('3589')}0{rng.randint(0, 99_999_999):08d}",
                    province=province, city=city, address=f"测试路 {rng.randint(1, 999)} 号")


# Taobao (TOP Trade, JSON format) -------------------------------------------------------------


def taobao_trade(tid: int, status: str, modified: datetime, lines: list[Line], receiver: Receiver, *,
                 created: datetime, pay_time: datetime | None = None, consign_time: datetime | None = None,
                 end_time: datetime | None = None, post_fee: Decimal = Decimal("0.00"),
                 step: str = "", step_paid_fee: Decimal | None = None, refunds: dict[int, str] | None = None,
                 waybill: tuple[str, str] | None = None, shipped_lines: int | None = None,
                 seller_nick: str = "西湖茶庄旗舰店", trade_type: str = "") -> dict[str, Any]:
    """One `Trade` as `taobao.trades.sold.increment.get` returns it (every field the fake may project)."""
    payment = sum((line.total for line in lines), Decimal(0)) + post_fee
    refunds = refunds or {}
    orders = []
    for index, line in enumerate(lines):
        oid = tid + index + 1 if len(lines) > 1 else tid
        order: dict[str, Any] = {
            "oid": oid, "oid_str": str(oid), "title": line.name, "num": line.quantity, "price": yuan(line.price),
            "outer_sku_id": line.sku, "num_iid": 600000000000 + index, "total_fee": yuan(line.total),
            "payment": yuan(line.total), "divide_order_fee": yuan(line.total), "status": status,
            "refund_status": refunds.get(index, "NO_REFUND"),
        }
        if index in refunds:
            order["refund_id"] = 200000000000000 + tid % 10**9 * 10 + index
        shipped = waybill is not None and (shipped_lines is None or index < shipped_lines)
        if shipped and waybill is not None:
            order |= {"logistics_company": waybill[0], "invoice_no": waybill[1], "consign_time": ts(consign_time or
                                                                                                   modified)}
        orders.append(order)
    trade: dict[str, Any] = {
        "tid": tid, "tid_str": str(tid), "status": status, "type": trade_type or ("step" if step else "fixed"),
        "seller_nick": seller_nick, "buyer_nick": "t**1", "created": ts(created), "modified": ts(modified),
        "payment": yuan(payment), "total_fee": yuan(payment - post_fee), "post_fee": yuan(post_fee),
        "discount_fee": "0.00", "receiver_name": receiver.name, "receiver_mobile": receiver.phone,
        "receiver_state": receiver.province, "receiver_city": receiver.city, "receiver_district": "测试区",
        "receiver_address": receiver.address, "orders": {"order": orders},
    }
    if pay_time:
        trade |= {"pay_time": ts(pay_time), "alipay_no": f"{pay_time:%Y%m%d}2200{tid % 10**14:014d}"}
    if consign_time:
        trade["consign_time"] = ts(consign_time)
    if end_time:
        trade["end_time"] = ts(end_time)
    if step:
        trade["step_trade_status"] = step
        if step_paid_fee is not None:
            trade["step_paid_fee"] = yuan(step_paid_fee)
    return trade


# JD (JOS orderInfoList element) ---------------------------------------------------------------


def jd_order(order_id: int, state: str, modified: datetime, lines: list[Line], receiver: Receiver, *,
             created: datetime, paid: datetime | None = None, pay_type: str = "4-在线支付",
             freight: Decimal = Decimal("0.00"), waybill: tuple[str, str] | None = None,
             vender_id: str = "10622317") -> dict[str, Any]:
    total = sum((line.total for line in lines), Decimal(0))
    order: dict[str, Any] = {
        "orderId": str(order_id), "venderId": vender_id, "orderType": "22", "payType": pay_type,
        "orderTotalPrice": yuan(total), "orderSellerPrice": yuan(total), "orderPayment": yuan(total + freight),
        "freightPrice": yuan(freight), "sellerDiscount": "0.00", "orderState": state, "orderStateRemark": "",
        "orderStartTime": ts(created), "modified": ts(modified),
        "paymentConfirmTime": ts(paid) if paid else "0001-01-01 00:00:00",
        "itemInfoList": [{"skuId": str(10054887745652 + i), "outerSkuId": line.sku, "skuName": line.name,
                          "jdPrice": yuan(line.price), "itemTotal": str(line.quantity),
                          "wareId": str(10020665903516 + i),
                          "giftPoint": "0", "productNo": "", "newStoreId": "0"} for i, line in enumerate(lines)],
        # enSearch returns the consignee's name, phone and address encrypted; province and city in clear.
        "consigneeInfo": {"fullname": "AAS/ZFJFpm" + receiver.name.encode().hex()[:24] + "=",
                          "mobile": receiver.phone[:3] + "*******" + receiver.phone[-1],
                          "telephone": receiver.phone[:3] + "*******" + receiver.phone[-1],
                          "fullAddress": "AAS/ZFJFpmfveSme" + receiver.address.encode().hex()[:32] + "=",
                          "province": receiver.province.removesuffix("省"), "city": receiver.city},
    }
    if waybill:
        order |= {"logisticsId": waybill[0], "waybill": waybill[1]}
    return order


# Pinduoduo (order_sn_list element) -------------------------------------------------------------


def pdd_order(order_sn: str, order_status: int, updated: datetime, lines: list[Line], receiver: Receiver, *,
              created: datetime, confirm: datetime | None = None, confirm_status: int = 1, group_status: int = 1,
              risk_control_status: int = 0, refund_status: int = 1, after_sales_status: int = 0,
              shipped: datetime | None = None, received: datetime | None = None,
              waybill: tuple[int, str] | None = None, postage: Decimal = Decimal("0"),
              step: tuple[int, Decimal] | None = None) -> dict[str, Any]:
    goods = sum((line.total for line in lines), Decimal(0))
    # Pinduoduo sends yuan as JSON numbers: a float here is exactly what json.loads makes of them.
    order: dict[str, Any] = {
        "order_sn": order_sn, "order_status": order_status, "confirm_status": confirm_status,
        "group_status": group_status, "risk_control_status": risk_control_status, "refund_status": refund_status,
        "after_sales_status": after_sales_status, "trade_type": 1 if step else 0, "is_lucky_flag": 1,
        "pay_amount": float(goods + postage), "goods_amount": float(goods), "discount_amount": 0.0,
        "postage": float(postage),
        "pay_no": f"4200{created:%Y%m%d}{int(order_sn[-8:]):08d}", "pay_type": "WEIXIN",
        "created_time": ts(created), "pay_time": ts(created + timedelta(minutes=1)), "updated_at": ts(updated),
        "confirm_time": ts(confirm) if confirm else "", "province": receiver.province, "city": receiver.city,
        "town": "测试区", "receiver_name": receiver.name, "receiver_phone": receiver.phone,
        "receiver_address": receiver.address, "address": f"{receiver.province}{receiver.city}{receiver.address}",
        "item_list": [{"goods_id": 300000000 + i, "sku_id": 1100000000 + i, "outer_id": line.sku,
                       "goods_name": line.name, "goods_count": line.quantity, "goods_price": float(line.price)}
                      for i, line in enumerate(lines)],
    }
    if step:
        order["step_order_info"] = {"step_trade_status": step[0], "advanced_paid_fee": float(step[1]),
                                    "step_paid_fee": float(step[1] if step[0] == 1 else goods + postage)}
    if shipped:
        order["shipping_time"] = ts(shipped)
    if received:
        order["receive_time"] = ts(received)
    if waybill:
        order |= {"logistics_id": waybill[0], "tracking_number": waybill[1]}
    return order


# A realistic day --------------------------------------------------------------------------------

# (weight, life stage) per platform: the mix of states a day's modifications leave orders in.
_MIX: dict[str, list[tuple[int, str]]] = {
    "taobao": [(6, "unpaid"), (4, "closed_unpaid"), (22, "paid"), (24, "shipped"), (26, "finished"),
               (4, "refunded"), (3, "returning"), (3, "held"), (3, "presale_deposit"), (2, "partly_shipped"),
               (3, "finished_part_refund")],
    "jd": [(25, "paid"), (30, "shipped"), (30, "finished"), (6, "cancelled"), (4, "locked"), (3, "paused"),
           (2, "cod")],
    "pdd": [(25, "paid"), (30, "shipped"), (28, "received"), (6, "refunded"), (4, "refunding"),
            (3, "group_forming"), (2, "risk_review"), (2, "presale_deposit")],
}


def generate_orders(platform: str, count: int, start: datetime, seed: int = 0) -> list[dict[str, Any]]:
    """`count` orders modified during the day from `start`, each as its platform's current snapshot."""
    if platform not in _MIX:
        raise ValueError(f"unknown platform {platform}")
    rng = random.Random(f"{platform}:{seed}")  # noqa: S311 (fake data, reproducible by seed)
    weights, stages = zip(*_MIX[platform], strict=True)
    orders = []
    for index in range(count):
        modified = start + timedelta(seconds=rng.randrange(86_400))
        stage = rng.choices(stages, weights)[0]
        lines = [Line(sku, name, price, rng.randint(1, 3))
                 for sku, name, price in rng.sample(SKUS, rng.choice((1, 1, 1, 2, 3)))]
        build = {"taobao": _taobao_day, "jd": _jd_day, "pdd": _pdd_day}[platform]
        orders.append(build(index, stage, modified, lines, fictional_receiver(rng), rng))
    return orders


def _taobao_day(index: int, stage: str, modified: datetime, lines: list[Line], receiver: Receiver,
                rng: random.Random) -> dict[str, Any]:
    tid = 4_030_000_000_000_000_000 + index * 1000 + rng.randrange(1000)
    age = timedelta(minutes=rng.randint(5, 60)) if stage in ("unpaid", "closed_unpaid", "paid", "held") \
        else timedelta(days=rng.randint(1, 8), minutes=rng.randint(0, 600))
    created = modified - age
    paid = created + timedelta(minutes=rng.randint(1, 4))
    shipped = paid + (modified - paid) / 3
    waybill = rng.choice(CARRIERS["taobao"])
    bill = (waybill[0], f"{waybill[1]}{rng.randint(10**11, 10**12 - 1)}")
    common: dict[str, Any] = {"created": created}
    if stage == "unpaid":
        return taobao_trade(tid, "WAIT_BUYER_PAY", modified, lines, receiver, **common)
    if stage == "closed_unpaid":
        return taobao_trade(tid, "TRADE_CLOSED_BY_TAOBAO", modified, lines, receiver, end_time=modified, **common)
    if stage == "presale_deposit":
        deposit = (sum((line.total for line in lines), Decimal(0)) * Decimal("0.2")).quantize(Decimal("0.01"))
        return taobao_trade(tid, "WAIT_BUYER_PAY", modified, lines, receiver, step="FRONT_PAID_FINAL_NOPAID",
                            step_paid_fee=deposit, **common)
    common["pay_time"] = paid
    if stage == "paid":
        return taobao_trade(tid, "WAIT_SELLER_SEND_GOODS", modified, lines, receiver, **common)
    if stage == "held":
        return taobao_trade(tid, "PAID_FORBID_CONSIGN", modified, lines, receiver, **common)
    if stage == "refunded":
        return taobao_trade(tid, "TRADE_CLOSED", modified, lines, receiver, end_time=modified,
                            refunds=dict.fromkeys(range(len(lines)), "SUCCESS"), **common)
    common |= {"consign_time": shipped, "waybill": bill}
    if stage == "shipped":
        return taobao_trade(tid, "WAIT_BUYER_CONFIRM_GOODS", modified, lines, receiver, **common)
    if stage == "partly_shipped" and len(lines) > 1:
        return taobao_trade(tid, "SELLER_CONSIGNED_PART", modified, lines, receiver, shipped_lines=1, **common)
    if stage == "returning":
        return taobao_trade(tid, "WAIT_BUYER_CONFIRM_GOODS", modified, lines, receiver,
                            refunds={0: rng.choice(["WAIT_BUYER_RETURN_GOODS", "WAIT_SELLER_CONFIRM_GOODS"])}, **common)
    if stage == "finished_part_refund" and len(lines) > 1:
        return taobao_trade(tid, "TRADE_FINISHED", modified, lines, receiver, end_time=modified,
                            refunds={0: "SUCCESS"}, **common)
    return taobao_trade(tid, "TRADE_FINISHED", modified, lines, receiver, end_time=modified, **common)


def _jd_day(index: int, stage: str, modified: datetime, lines: list[Line], receiver: Receiver,
            rng: random.Random) -> dict[str, Any]:
    order_id = 300_000_000_000 + index * 100 + rng.randrange(100)
    created = modified - timedelta(hours=rng.randint(1, 150))
    paid = created + timedelta(seconds=rng.randint(20, 300))
    carrier = rng.choice(CARRIERS["jd"])
    bill = (carrier[0], f"{carrier[1]}{rng.randint(10**11, 10**12 - 1)}")
    state = {"paid": "WAIT_SELLER_STOCK_OUT", "shipped": "WAIT_GOODS_RECEIVE_CONFIRM", "finished": "FINISHED_L",
             "cancelled": "TRADE_CANCELED", "locked": "LOCKED", "paused": "PAUSE", "cod": "WAIT_GOODS_RECEIVE_CONFIRM"}
    shipped = stage in ("shipped", "finished", "cod")
    return jd_order(order_id, state[stage], modified, lines, receiver, created=created,
                    paid=None if stage == "cod" else paid, pay_type="1-货到付款" if stage == "cod" else "4-在线支付",
                    waybill=bill if shipped else None)


def _pdd_day(index: int, stage: str, modified: datetime, lines: list[Line], receiver: Receiver,
             rng: random.Random) -> dict[str, Any]:
    created = modified - timedelta(hours=rng.randint(1, 200))
    sn = f"{created:%y%m%d}-{500_000_000_000_000 + index * 1000 + rng.randrange(1000)}"
    carrier, prefix = rng.choice(CARRIERS["pdd"])
    bill = (int(carrier), f"{prefix}{rng.randint(10**11, 10**12 - 1)}")
    confirm = created + timedelta(minutes=1)
    shipped = confirm + (modified - confirm) / 3
    if stage == "paid":
        return pdd_order(sn, 1, modified, lines, receiver, created=created, confirm=confirm)
    if stage == "group_forming":
        return pdd_order(sn, 1, modified, lines, receiver, created=created, confirm_status=0, group_status=0)
    if stage == "risk_review":
        return pdd_order(sn, 1, modified, lines, receiver, created=created, confirm=confirm, risk_control_status=1)
    if stage == "presale_deposit":
        deposit = Decimal("20.00")
        return pdd_order(sn, 1, modified, lines, receiver, created=created, confirm=confirm, step=(1, deposit))
    if stage == "refunded":
        return pdd_order(sn, 1, modified, lines, receiver, created=created, confirm=confirm, refund_status=4,
                         after_sales_status=10)
    if stage == "refunding":
        return pdd_order(sn, 2, modified, lines, receiver, created=created, confirm=confirm, refund_status=2,
                         after_sales_status=3, shipped=shipped, waybill=bill)
    if stage == "shipped":
        return pdd_order(sn, 2, modified, lines, receiver, created=created, confirm=confirm, shipped=shipped,
                         waybill=bill)
    return pdd_order(sn, 3, modified, lines, receiver, created=created, confirm=confirm, shipped=shipped,
                     waybill=bill, received=modified)


def modified_of(platform: str, order: dict[str, Any]) -> datetime:
    """The snapshot's modification time, as the platform filters on it."""
    key = {"taobao": "modified", "jd": "modified", "pdd": "updated_at"}[platform]
    return datetime.strptime(order[key], FORMAT).replace(tzinfo=CST)


def order_id_of(platform: str, order: dict[str, Any]) -> str:
    return str(order[{"taobao": "tid_str", "jd": "orderId", "pdd": "order_sn"}[platform]])
