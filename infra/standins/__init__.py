"""Stand-ins for everything outside the hub, for the demo, the tests and the benchmarks. Never shipped to Lambda.

- `platforms` / `platform_orders`: the Taobao (TOP), JD (JOS) and Pinduoduo order APIs the hub pulls
  from, checking signatures, tokens and timestamps as the platforms do, and the orders they serve;
- `embedded`: those platforms started beside `orderhub run` / `orderhub demo`;
- `downstream`: the merchant's WMS / ERP / CRM receiving the hub's signed pushes;
- `robots`: the WeCom and DingTalk group robots.
"""
