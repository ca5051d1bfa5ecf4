"""Scheduled every 5 minutes: pull the orders each Taobao/JD/PDD shop changed since its watermark.

Each shop's run is `orderhub.pull.poller`: settled windows from the persisted watermark, every
order enqueued on the intake queue (the mapper takes it from there, as for a webhook), the
watermark moved only past windows that are wholly in SQS. A platform that fails or rate-limits
leaves the watermark where it was, so the next run (or a retry) catches up; nothing is skipped.

A platform outage is not a hub fault, so a failed shop does not fail the invocation (that would
only re-run the shops that worked). It is counted instead: `PullLagSeconds` per channel (how far
behind the clock its slowest shop's watermark is) carries an alarm, and `PullShopFailures` says
why. The run leaves `MARGIN_S` of the Lambda timeout for the last writes and the metrics flush.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from orderhub import settings
from orderhub.clock import SystemClock
from orderhub.observability import lambda_entry, logger

MARGIN_S = 20.0
_FAILED = ("failed", "rate_limited", "enqueue_failed", "skipped")
_clock = SystemClock()


def _jobs() -> tuple[list[Any], list[dict[str, str]]]:
    from orderhub.pull import shop_jobs

    jobs: list[Any] = []
    unconfigured: list[dict[str, str]] = []
    for channel in filter(None, settings.env("PULL_CHANNELS").split(",")):
        try:
            found = shop_jobs(channel, settings.channel_config(channel))
        except Exception as exc:  # not configured in this stage, or a broken document: say which
            unconfigured.append({"channel": channel, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
            continue
        jobs += found
    return jobs, unconfigured


def _count(channel: str, name: str, value: float, unit: MetricUnit) -> None:
    with single_metric(name=name, unit=unit, value=value, namespace="OrderHub") as metric:
        metric.add_dimension(name="channel", value=channel)


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from orderhub.pull.poller import poll_shops
    from orderhub.pull.sink import IntakeBatcher
    from orderhub.store.watermarks import DynamoWatermarkStore

    jobs, unconfigured = _jobs()
    sink = IntakeBatcher(settings.env("INTAKE_QUEUE_URL"))
    try:
        results = poll_shops(jobs, DynamoWatermarkStore(), sink, _clock,
                             time_left=lambda: context.get_remaining_time_in_millis() / 1000 - MARGIN_S)
    finally:
        sink.close()
    by_channel: dict[str, list[Any]] = {}
    for result in results:
        by_channel.setdefault(result.channel, []).append(result)
        (logger.warning if result.outcome in _FAILED else logger.info)("shop polled", extra=result.as_log())
    for channel, shops in by_channel.items():
        _count(channel, "OrdersPulled", sum(r.orders for r in shops), MetricUnit.Count)
        _count(channel, "PullLagSeconds", max(r.lag_s for r in shops), MetricUnit.Seconds)
        _count(channel, "PullShopFailures", sum(r.outcome in _FAILED for r in shops), MetricUnit.Count)
    for missing in unconfigured:
        logger.warning("pulled channel not configured", extra=missing)
    return {"shops": [r.as_log() for r in results], "unconfigured": unconfigured}
