"""The pull clients sign as the platforms do (published worked examples), send what they sign,
and turn each platform's replies into pages or the right error."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl

import pytest

from orderhub.pull import PULL_CLIENTS, client_class
from orderhub.pull import jd as jd_client
from orderhub.pull import pdd as pdd_client
from orderhub.pull import taobao as taobao_client
from orderhub.pull.base import PullError, RateLimited, Shop

CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 20, 12, 0, 5, tzinfo=CST)
START = datetime(2026, 11, 20, 11, 0, tzinfo=CST)


# Published worked examples --------------------------------------------------------------------


def test_top_md5_signature_matches_the_published_example():
    # TOP "API调用方法详解" (docId=101617): secret "helloworld" signs taobao.item.seller.get to this value.
    params = {"method": "taobao.item.seller.get", "app_key": "12345678", "session": "test",
              "timestamp": "2016-01-01 12:00:00", "format": "json", "v": "2.0", "sign_method": "md5",
              "fields": "num_iid,title,nick,price,num", "num_iid": "11223344"}
    assert taobao_client.sign(params, "helloworld", "md5") == "66987CB115214E59E6EC978214934FB8"


def test_top_hmac_methods_are_hmac_md5_and_hmac_sha256_over_the_sorted_pairs():
    # The parameter string of {"Hi": " There"} is "Hi There": RFC 2202 / RFC 4231 test case 1.
    assert taobao_client.sign({"Hi": " There"}, "\x0b" * 16, "hmac") == "9294727A3638BB1C13F48EF8158BFC9D"
    assert taobao_client.sign({"Hi": " There"}, "\x0b" * 20, "hmac-sha256") == (
        "B0344C61D8DB38535CA8AFCEAF0BF12B881DC200C9833DA726E9376C2E32CFF7")
    params = {"b": "2", "a": "1", "sign": "ignored", "empty": ""}
    expected = hmac.new(b"k", b"a1b2", hashlib.sha256).hexdigest().upper()
    assert taobao_client.sign(params, "k", "hmac-sha256") == expected


def test_jd_signature_matches_the_published_example():
    # JOS dev guide (listId=2643) worked example, secret "yourappSecret".
    params = {"360buy_param_json": '{"end_date":null,"optional_fields":null,"order_state":"WAIT_SELLER_STOCK_OUT",'
                                   '"page":"1","page_size":"200","start_date":null}',
              "access_token": "yourtoken", "app_key": "yourappkey", "method": "jingdong.pop.order.search",
              "timestamp": "2021-05-07 09:20:39.683+0800", "v": "2.0"}
    assert jd_client.sign(params, "yourappSecret") == "D70825340F4084360B9362B60DFD7930"


def test_pdd_signature_matches_the_published_example():
    # Pinduoduo "API调用" doc worked example, client_secret "testSecret".
    params = {"type": "pdd.order.number.list.get", "client_id": "1", "page": "1", "page_size": "10",
              "data_type": "XML", "timestamp": "1480411125", "order_status": "1",
              "access_token": "asd78172s8ds9a921j9qqwda12312w1w21211"}
    assert pdd_client.sign(params, "testSecret") == "E4DE3ED21002510DED352819E7AE6775"


# What each client sends ------------------------------------------------------------------------


class Recorder:
    """An injected transport: records each call, answers with the next canned reply."""

    def __init__(self, *replies: tuple[int, bytes] | Exception) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[str, bytes, dict[str, str]]] = []

    def __call__(self, url: str, body: bytes, headers) -> tuple[int, bytes]:
        self.calls.append((url, body, dict(headers)))
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


def ok(document: dict) -> tuple[int, bytes]:
    return 200, json.dumps(document, ensure_ascii=False).encode()


def client(channel: str, http: Recorder):
    return client_class(channel)("app-key", "app-secret", "https://gateway.example/router", http, clock=lambda: NOW)


def test_every_pulled_channel_has_a_client_class_with_its_limits():
    assert set(PULL_CLIENTS) == {"taobao", "jd", "pdd"}
    limits = {name: (client_class(name).max_window, client_class(name)("k", "s", "u").page_size)
              for name in PULL_CLIENTS}
    assert limits == {"taobao": (timedelta(days=1), 100), "jd": (timedelta(days=28), 100),
                      "pdd": (timedelta(minutes=30), 100)}


def test_taobao_sends_the_signed_form_with_beijing_times_and_has_next_paging():
    http = Recorder(ok({"trades_sold_increment_get_response": {"has_next": True, "trades": {"trade": [
        {"tid": 1, "tid_str": "1", "payment": 12.5}]}}}))
    page = client("taobao", http).fetch_page(Shop("taobao", "s1", "shop-session"), START,
                                             START + timedelta(minutes=30), 2)
    url, body, headers = http.calls[0]
    sent = dict(parse_qsl(body.decode()))
    assert url == "https://gateway.example/router" and headers["Content-Type"].startswith(
        "application/x-www-form-urlencoded")
    assert {k: sent[k] for k in ("method", "app_key", "session", "timestamp", "format", "v", "sign_method",
                                 "start_modified", "end_modified", "page_no", "page_size", "use_has_next")} == {
        "method": "taobao.trades.sold.increment.get", "app_key": "app-key", "session": "shop-session",
        "timestamp": "2026-11-20 12:00:05", "format": "json", "v": "2.0", "sign_method": "hmac-sha256",
        "start_modified": "2026-11-20 11:00:00", "end_modified": "2026-11-20 11:30:00", "page_no": "2",
        "page_size": "100", "use_has_next": "true"}
    assert "receiver_name" not in sent["fields"] and "receiver_state" in sent["fields"]
    unsigned = {k: v for k, v in sent.items() if k != "sign"}
    assert sent["sign"] == taobao_client.sign(unsigned, "app-secret", "hmac-sha256")
    assert page.has_next is True and page.orders == [b'{"tid":1,"tid_str":"1","payment":12.5}']


def test_jd_sends_the_business_parameters_as_one_signed_json_string():
    http = Recorder(ok({"jingdong_pop_order_enSearch_responce": {"code": "0", "searchorderinfo_result": {
        "apiResult": {"success": True}, "orderTotal": 101, "orderInfoList": [{"orderId": "3"}]}}}))
    page = client("jd", http).fetch_page(Shop("jd", "s1", "jd-token"), START, START + timedelta(days=2), 1)
    sent = dict(parse_qsl(http.calls[0][1].decode()))
    assert (sent["method"], sent["access_token"], sent["v"], sent["sign_method"]) == (
        "jingdong.pop.order.enSearch", "jd-token", "2.0", "md5")
    business = json.loads(sent["360buy_param_json"])
    assert (business["start_date"], business["end_date"], business["dateType"], business["page_size"]) == (
        "2026-11-20 11:00:00", "2026-11-22 11:00:00", "0", "100")
    assert "TRADE_CANCELED" in business["order_state"] and "orderId" in business["optional_fields"]
    raw = "app-secret" + "".join(k + v for k, v in sorted(sent.items()) if k != "sign") + "app-secret"
    assert sent["sign"] == hashlib.md5(raw.encode(), usedforsecurity=False).hexdigest().upper()
    assert page.has_next is True and page.orders == [b'{"orderId":"3"}']  # 1 * 100 < 101


def test_pdd_posts_one_json_object_of_exactly_the_signed_strings():
    orders = [{"order_sn": "261120-1", "pay_amount": 0.29}]
    http = Recorder(ok({"order_sn_increment_get_response": {"has_next": False, "total_count": 1,
                                                            "order_sn_list": orders}}))
    page = client("pdd", http).fetch_page(Shop("pdd", "s1", "pdd-token"), START, START + timedelta(minutes=30), 1)
    _, body, headers = http.calls[0]
    sent = json.loads(body)
    assert headers["Content-Type"] == "application/json" and all(isinstance(v, str) for v in sent.values())
    assert {k: sent[k] for k in ("type", "client_id", "access_token", "timestamp", "data_type", "order_status",
                                 "refund_status", "is_lucky_flag", "start_updated_at", "end_updated_at")} == {
        "type": "pdd.order.number.list.increment.get", "client_id": "app-key", "access_token": "pdd-token",
        "timestamp": str(int(NOW.timestamp())), "data_type": "JSON", "order_status": "5", "refund_status": "5",
        "is_lucky_flag": "0", "start_updated_at": str(int(START.timestamp())),
        "end_updated_at": str(int(START.timestamp()) + 1800)}
    raw = "app-secret" + "".join(k + v for k, v in sorted(sent.items()) if k != "sign") + "app-secret"
    assert sent["sign"] == hashlib.md5(raw.encode(), usedforsecurity=False).hexdigest().upper()
    assert page.orders == [b'{"order_sn":"261120-1","pay_amount":0.29}'] and page.has_next is False


@pytest.mark.parametrize("channel, too_long", [("taobao", timedelta(days=1, seconds=1)),
                                               ("jd", timedelta(days=29)), ("pdd", timedelta(minutes=31))])
def test_a_window_longer_than_the_platform_allows_is_refused_before_any_call(channel, too_long):
    http = Recorder()
    with pytest.raises(ValueError):
        client(channel, http).fetch_page(Shop(channel, "s", "t"), START, START + too_long, 1)
    assert http.calls == []


# Replies -> pages or errors --------------------------------------------------------------------

RATE_LIMITS = {
    "taobao": {"error_response": {"code": 7, "msg": "App Call Limited",
                                  "sub_code": "accesscontrol.limited-by-api-access-count",
                                  "sub_msg": "This ban will last for 7 more seconds"}},
    "jd": {"error_response": {"code": "2", "zh_desc": "限制时间内调用失败次数", "en_desc": "App Call Limited"}},
    "pdd": {"error_response": {"error_code": 70031, "error_msg": "调用过于频繁", "sub_code": "70031",
                               "sub_msg": "", "request_id": "1"}},
}
BAD_SIGNATURES = {
    "taobao": {"error_response": {"code": 25, "msg": "Invalid signature"}},
    "jd": {"error_response": {"code": "12", "zh_desc": "无效签名", "en_desc": "Invalid Signature"}},
    "pdd": {"error_response": {"error_code": 20004, "error_msg": "签名验证失败", "sub_code": "20004",
                               "sub_msg": "签名验证失败", "request_id": "1"}},
}
WINDOW = {"taobao": timedelta(minutes=30), "jd": timedelta(minutes=30), "pdd": timedelta(minutes=30)}


@pytest.mark.parametrize("channel", ["taobao", "jd", "pdd"])
def test_the_platforms_rate_limit_error_is_rate_limited(channel):
    http = Recorder(ok(RATE_LIMITS[channel]))
    with pytest.raises(RateLimited) as caught:
        client(channel, http).fetch_page(Shop(channel, "s", "t"), START, START + WINDOW[channel], 1)
    assert caught.value.retry_after_s == (7.0 if channel == "taobao" else 1.0)


@pytest.mark.parametrize("channel", ["taobao", "jd", "pdd"])
@pytest.mark.parametrize("reply", ["bad_signature", "http_500", "timeout", "not_json", "no_result"])
def test_any_other_failure_is_a_pull_error_that_names_no_secret(channel, reply):
    replies = {"bad_signature": ok(BAD_SIGNATURES[channel]), "http_500": (500, b"oops"),
               "timeout": TimeoutError("timed out"), "not_json": (200, b"<html>"), "no_result": ok({"x": 1})}
    http = Recorder(replies[reply])
    with pytest.raises(PullError) as caught:
        client(channel, http).fetch_page(Shop(channel, "s", "shop-token"), START, START + WINDOW[channel], 1)
    assert not isinstance(caught.value, RateLimited)
    assert "app-secret" not in str(caught.value) and "shop-token" not in str(caught.value)


def test_a_jd_business_failure_is_a_pull_error():
    http = Recorder(ok({"jingdong_pop_order_enSearch_responce": {"code": "0", "searchorderinfo_result": {
        "apiResult": {"success": False, "chineseErrCode": "开始时间和结束时间，不得相差超过1个月"}}}}))
    with pytest.raises(PullError, match="不得相差超过1个月"):
        client("jd", http).fetch_page(Shop("jd", "s", "t"), START, START + timedelta(days=1), 1)


def test_an_empty_window_is_an_empty_last_page():
    http = Recorder(ok({"trades_sold_increment_get_response": {"has_next": False}}))
    page = client("taobao", http).fetch_page(Shop("taobao", "s", "t"), START, START + timedelta(minutes=5), 1)
    assert page.orders == [] and page.has_next is False
