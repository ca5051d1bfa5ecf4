"""Fakes of the platforms the hub pulls orders from (Taobao TOP, JD JOS, Pinduoduo), for tests,
the demo and the poller benchmark. Not shipped to Lambda."""

from infra.fakes.orders import generate_orders
from infra.fakes.platforms import DEFAULT_SESSION, DEFAULT_SHOP, FakeJd, FakePdd, FakePlatform, FakeTaobao, fake_for

__all__ = ["DEFAULT_SESSION", "DEFAULT_SHOP", "FakeJd", "FakePdd", "FakePlatform", "FakeTaobao", "fake_for",
           "generate_orders"]
