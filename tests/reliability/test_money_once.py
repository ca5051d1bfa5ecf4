"""PAY-1 under a storm: one payment callback delivered a thousand times at once books one ledger entry.

WeChat Pay sends a notification again until it hears 200 (and sometimes when it did): the copies race
through webhook ingest and four status-mapper environments at once. The expectation comes from what was
sent (one transaction of one amount), never from the hub's own output.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from infra.demo.traffic import synthetic_mall_events
from infra.local.inprocess import LambdaService, client
from infra.standins.wechatpay import from_config
from orderhub.clock import SystemClock
from orderhub.lifecycle.machine import hub_order_id
from orderhub.store.order_item import order_from_item
from reliability.checker import TALLIES, Tally, outbox_events
from reliability.concurrency import ScaledOut, atomic_aws_calls
from reliability.test_nothing_lost import MAX_CHANNEL_RETRIES, absent_functions, post_until_stored, webhook_event


def deliver_until_acknowledged(service: LambdaService, wechatpay, notification) -> int:
    """WeChat Pay's side: each attempt signed at its own time; anything but 200/204 is tried again."""
    for attempt in range(1, MAX_CHANNEL_RETRIES + 1):
        headers, body = wechatpay.request(notification)
        try:
            reply = service.invoke("webhook_ingest", webhook_event(body, headers, channel="wechatpay"))
        except Exception:  # noqa: S112 - the function failed: API Gateway answers 5xx, WeChat Pay retries
            continue
        if reply["statusCode"] in (200, 204):
            return attempt
        assert reply["statusCode"] >= 500, reply  # a 4xx would be a bug: the notification is genuine
    raise AssertionError(f"notification {notification.id} not acknowledged after {MAX_CHANNEL_RETRIES} tries")


def test_one_payment_callback_delivered_a_thousand_times_at_once_books_one_entry(world):
    service = world.service(exclude=absent_functions(world))
    (created,) = synthetic_mall_events(1, seed=31)
    post_until_stored(world, service, created)
    service.settle(world.clock)
    order_no, amount = created["order"]["order_no"], created["order"]["total_amount"]
    order_id = hub_order_id("mall", order_no)
    # Given WeChat Pay's notification of one payment, delivered 1,000 times at once to eight ingest and
    # four mapper environments
    wechatpay = from_config(world.config, "http://unused", SystemClock())
    notification = wechatpay.payment_notification(order_no, amount)
    transaction_id = notification.resource["transaction_id"]
    service.environments("webhook_ingest", 8)
    mappers = ScaledOut(service, "status_mapper", 4)
    with atomic_aws_calls(), ThreadPoolExecutor(max_workers=8) as pool:
        tries = list(pool.map(lambda _: deliver_until_acknowledged(service, wechatpay, notification), range(1000)))
        mappers.drain()
    mappers.close()
    service.settle(world.clock)

    # Then the payments table holds one record of that transaction, of the amount sent
    records = client("dynamodb").scan(TableName=world.res.tables["payments"], ConsistentRead=True)["Items"]
    ids = sorted(item["record_id"]["S"] for item in records)
    mine = [i for i in ids if i.startswith(f"wechatpay:payment:{transaction_id}#")]
    tally = Tally("1,000 concurrent copies of one payment callback", sent=1, lost=0 if mine else 1,
                  duplicated=max(0, len(mine) - 1), unexpected=len(ids) - len(mine))
    tally.notes.update({"acknowledged": len(tries), "ledger records": len(ids)})
    TALLIES.append(tally)
    assert len(ids) == 1 and ids[0].startswith(f"wechatpay:payment:{transaction_id}#confirmed@"), ids
    # and the order's money is that one payment, confirmed
    item = client("dynamodb").get_item(TableName=world.res.tables["orders"], Key={"order_id": {"S": order_id}},
                                       ConsistentRead=True)["Item"]
    order = order_from_item(item)
    assert (order.paid_amount, order.payment_confirmed, list(order.ledger)) == (amount, True, ids)
    # and finance hears of it once
    outbox = outbox_events(client("dynamodbstreams"), world.res.stream_arns["orders"])
    confirmed = [e for e in outbox if e["detail-type"] == "PaymentConfirmed"]
    assert len({e["detail"]["event_id"] for e in confirmed}) == 1
    assert [e["detail"]["movement"]["reference"] for e in confirmed][:1] == [transaction_id]
