"""The fake Taobao, JD and Pinduoduo APIs over real local HTTP, driven by the hub's own clients.

They check what the real platforms check (signature, token, timestamp, window, page size) and
answer with the platform's own error bodies, serve a generated day by modified time in pages,
rate-limit, and fail a configured window.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest

from infra.standins.platform_orders import generate_orders, modified_of, order_id_of
from infra.standins.platforms import DEFAULT_SESSION, DEFAULT_SHOP, fake_for
from orderhub.channels import get_channel
from orderhub.pull import client_class
from orderhub.pull import jd as jd_client
from orderhub.pull import pdd as pdd_client
from orderhub.pull import taobao as taobao_client
from orderhub.pull.base import PullError, RateLimited, Shop
from orderhub.pull.taobao import http_post

CST = timezone(timedelta(hours=8))
DAY = datetime(2026, 11, 20, tzinfo=CST)
NOW = datetime(2026, 11, 21, 0, 10, tzinfo=CST)
CHANNELS = ["taobao", "jd", "pdd"]
APP_KEY, SECRET = "app-key-1", "app-secret-1"


def clock() -> datetime:
    return NOW


@pytest.fixture(params=CHANNELS)
def platform(request):
    with fake_for(request.param, APP_KEY, SECRET, clock=clock) as fake:
        yield fake


def client_for(fake, secret: str = SECRET, page_size: int = 100):
    return client_class(fake.channel)(APP_KEY, secret, fake.url, page_size=page_size, clock=clock)


def shop(fake, session: str = DEFAULT_SESSION) -> Shop:
    return Shop(fake.channel, DEFAULT_SHOP, session)


def read_window(client, fake, start: datetime, end: datetime) -> list[bytes]:
    orders, page = [], 1
    while True:
        result = client.fetch_page(shop(fake), start, end, page)
        orders += result.orders
        if not result.has_next:
            return orders
        page += 1


def windows(size: timedelta, start: datetime = DAY, end: datetime = DAY + timedelta(days=1)):
    while start < end:
        yield start, min(start + size, end)
        start += size


def raw_call(fake, params: dict[str, str]) -> dict:
    """Send parameters as the platform's clients do, signed or not; the parsed reply."""
    if fake.channel == "pdd":
        status, body = http_post(fake.url, json.dumps(params).encode(), {"Content-Type": "application/json"})
    else:
        status, body = http_post(fake.url, urlencode(params).encode(),
                                 {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"})
    assert status == 200
    return json.loads(body)


def error_code(channel: str, reply: dict) -> str:
    error = reply["error_response"]
    return str(error["error_code"] if channel == "pdd" else error["code"])


def test_a_generated_day_is_served_whole_in_windows_and_pages_and_parses_cleanly(platform):
    day = generate_orders(platform.channel, 600, DAY, seed=7)
    platform.load(day)
    client = client_for(platform, page_size=50)
    seen: Counter[str] = Counter()
    for start, end in windows(min(client.max_window, timedelta(hours=6))):
        for raw in read_window(client, platform, start, end):
            (event,) = get_channel(platform.channel).parse(raw)
            assert event.gaps == () and event.drift == ()
            assert start <= event.event_time <= end
            seen[event.channel_order_id] += 1
    assert set(seen) == {order_id_of(platform.channel, o) for o in day}
    # Window bounds are inclusive at both ends, so an order modified exactly on a bound comes twice: harmless.
    assert all(n <= 2 for n in seen.values())


def test_pages_follow_the_platforms_order_and_has_next_ends_the_window(platform):
    day = generate_orders(platform.channel, 120, DAY, seed=3)
    platform.load(day)
    client = client_for(platform, page_size=20)
    start, end = DAY + timedelta(hours=10), DAY + timedelta(hours=10, minutes=30)
    expected = sorted((modified_of(platform.channel, o), order_id_of(platform.channel, o)) for o in day
                      if start <= modified_of(platform.channel, o) <= end)
    got = [json.loads(raw) for raw in read_window(client, platform, start, end)]
    times = [modified_of(platform.channel, o) for o in got]
    assert len(got) == len(expected)
    # TOP lists newest first (its documented order); JOS (sortType 0) and this Pinduoduo fake oldest first.
    assert times == sorted(times, reverse=platform.channel == "taobao")
    beyond = client.fetch_page(shop(platform), start, end, 99)
    assert beyond.orders == [] and beyond.has_next is False


def test_a_changed_order_moves_to_the_window_of_its_new_modified_time(platform):
    first, later = generate_orders(platform.channel, 1, DAY, seed=11)[0], None
    platform.put(first)
    old_time = modified_of(platform.channel, first)
    later = json.loads(json.dumps(first, default=float))
    key = "updated_at" if platform.channel == "pdd" else "modified"
    later[key] = (old_time + timedelta(minutes=40)).strftime("%Y-%m-%d %H:%M:%S")
    platform.put(later)
    client = client_for(platform)
    assert read_window(client, platform, old_time - timedelta(minutes=1), old_time + timedelta(minutes=1)) == []
    moved = read_window(client, platform, old_time + timedelta(minutes=39), old_time + timedelta(minutes=41))
    assert [order_id_of(platform.channel, json.loads(m)) for m in moved] == [order_id_of(platform.channel, first)]


REAL_ERRORS = {
    "bad_signature": {"taobao": "25", "jd": "12", "pdd": "20004"},
    "bad_token": {"taobao": "27", "jd": "19", "pdd": "10019"},
    "stale_timestamp": {"taobao": "31", "jd": "8", "pdd": "10000"},
    "rate_limited": {"taobao": "7", "jd": "2", "pdd": "70031"},
}


def signed_params(fake, session: str = DEFAULT_SESSION, skew: timedelta = timedelta(0)) -> dict[str, str]:
    at = NOW + skew
    client = client_class(fake.channel)(APP_KEY, SECRET, fake.url, clock=lambda: at)
    return client.request_params(shop(fake, session), NOW - timedelta(minutes=30), NOW - timedelta(minutes=5), 1)


@pytest.mark.parametrize("position", [0, 7, -1])
def test_a_tampered_signature_gets_the_platforms_invalid_signature_error(platform, position):
    params = signed_params(platform)
    sign = list(params["sign"])
    sign[position] = "0" if sign[position] != "0" else "1"
    params["sign"] = "".join(sign)
    assert error_code(platform.channel, raw_call(platform, params)) == REAL_ERRORS["bad_signature"][platform.channel]


def test_a_tampered_parameter_or_a_wrong_secret_is_an_invalid_signature(platform):
    params = signed_params(platform)
    key = "access_token" if platform.channel != "taobao" else "session"
    params[key] = params[key] + "x"
    assert error_code(platform.channel, raw_call(platform, params)) == REAL_ERRORS["bad_signature"][platform.channel]
    with pytest.raises(PullError, match=REAL_ERRORS["bad_signature"][platform.channel]):
        client_for(platform, secret=SECRET + "x").fetch_page(shop(platform), NOW - timedelta(minutes=20),
                                                             NOW - timedelta(minutes=10), 1)


def test_an_unknown_shop_token_gets_the_platforms_invalid_token_error(platform):
    reply = raw_call(platform, signed_params(platform, session="someone-elses-token"))
    assert error_code(platform.channel, reply) == REAL_ERRORS["bad_token"][platform.channel]


def test_a_stale_timestamp_is_refused(platform):
    tolerance = timedelta(seconds=platform.timestamp_tolerance_s)
    ok = raw_call(platform, signed_params(platform, skew=-tolerance + timedelta(seconds=5)))
    assert "error_response" not in ok
    reply = raw_call(platform, signed_params(platform, skew=-tolerance - timedelta(seconds=5)))
    assert error_code(platform.channel, reply) == REAL_ERRORS["stale_timestamp"][platform.channel]


def test_a_window_over_the_platforms_limit_is_refused_by_the_platform(platform):
    # The hub's clients never ask for this (they refuse before calling): a hand-made, validly signed call.
    end = NOW - timedelta(minutes=10)
    params = client_for(platform).request_params(shop(platform), end - timedelta(minutes=10), end, 1)
    too_long = {"taobao": timedelta(days=1, seconds=1), "jd": timedelta(days=32), "pdd": timedelta(minutes=31)}
    start = (end - too_long[platform.channel]).astimezone(CST)
    if platform.channel == "taobao":
        params["start_modified"] = start.strftime("%Y-%m-%d %H:%M:%S")
        params["sign"] = taobao_client.sign(params, SECRET, params["sign_method"])
    elif platform.channel == "jd":
        business = json.loads(params["360buy_param_json"])
        business["start_date"] = start.strftime("%Y-%m-%d %H:%M:%S")
        params["360buy_param_json"] = json.dumps(business)
        params["sign"] = jd_client.sign(params, SECRET)
    else:
        params["start_updated_at"] = str(int(start.timestamp()))
        params["sign"] = pdd_client.sign(params, SECRET)
    reply = raw_call(platform, params)
    if platform.channel == "jd":
        result = reply["jingdong_pop_order_enSearch_responce"]["searchorderinfo_result"]
        assert result["apiResult"]["success"] is False
    else:
        assert "error_response" in reply


def test_more_calls_per_second_than_allowed_get_the_platforms_rate_limit_error():
    for channel in CHANNELS:
        with fake_for(channel, APP_KEY, SECRET, clock=clock, rate_limit_per_s=2) as fake:
            client = client_for(fake)
            start, end = NOW - timedelta(minutes=20), NOW - timedelta(minutes=10)
            client.fetch_page(shop(fake), start, end, 1)
            client.fetch_page(shop(fake), start, end, 1)
            with pytest.raises(RateLimited, match=REAL_ERRORS["rate_limited"][channel]):
                client.fetch_page(shop(fake), start, end, 1)


def test_a_failing_window_fails_its_calls_until_healed_and_others_keep_working(platform):
    platform.load(generate_orders(platform.channel, 50, DAY, seed=5))
    client = client_for(platform)
    bad = (DAY + timedelta(hours=3), DAY + timedelta(hours=3, minutes=30))
    platform.fail_window(*bad)
    with pytest.raises(PullError, match="HTTP 503"):
        client.fetch_page(shop(platform), *bad, 1)
    client.fetch_page(shop(platform), DAY + timedelta(hours=5), DAY + timedelta(hours=5, minutes=30), 1)
    platform.heal()
    client.fetch_page(shop(platform), *bad, 1)
    assert platform.replies.count(503) == 1


def test_a_window_can_fail_a_set_number_of_times_then_recover(platform):
    client = client_for(platform)
    bad = (DAY + timedelta(hours=1), DAY + timedelta(hours=1, minutes=30))
    platform.fail_window(*bad, times=2)
    for _ in range(2):
        with pytest.raises(PullError):
            client.fetch_page(shop(platform), *bad, 1)
    client.fetch_page(shop(platform), *bad, 1)


def test_taobao_returns_only_the_fields_asked_for_so_no_receiver_name_or_phone_leaves_top():
    with fake_for("taobao", APP_KEY, SECRET, clock=clock) as fake:
        fake.load(generate_orders("taobao", 30, DAY, seed=2))
        client = client_for(fake)
        orders = [json.loads(o) for s, e in windows(timedelta(days=1)) for o in read_window(client, fake, s, e)]
    assert orders and all("receiver_name" not in o and "receiver_mobile" not in o for o in orders)
    assert all("receiver_state" in o for o in orders)


def test_an_unknown_path_is_404_and_a_non_json_pdd_body_is_a_parameter_error():
    with fake_for("pdd", APP_KEY, SECRET, clock=clock) as fake:
        status, _ = http_post(fake.url.replace("/api/router", "/nope"), b"{}", {"Content-Type": "application/json"})
        assert status == 404
        status, body = http_post(fake.url, b"[1]", {"Content-Type": "application/json"})
        assert status == 200 and json.loads(body)["error_response"]["error_code"] == 10000
