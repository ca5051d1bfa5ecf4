"""One Logger, one Metrics, a lazily created Tracer and the one decorator stack every handler uses.

Tracing is off unless ORDERHUB_TRACING=1: importing the X-Ray SDK costs more than the rest of a
handler's imports together, and a cold start pays it whether or not anyone looks at the traces.
Events are never logged whole (`log_event` stays False): they carry personal data.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Any

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "orderhub"))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "OrderHub"))

# A handler that had nothing to count must not warn on every invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish")


def tracing_enabled() -> bool:
    return os.environ.get("ORDERHUB_TRACING") == "1"


@lru_cache(maxsize=1)
def tracer():  # -> aws_lambda_powertools.Tracer, imported only when tracing is on
    from aws_lambda_powertools import Tracer

    return Tracer()


def http_request_id(event: dict[str, Any]) -> str | None:
    """The API Gateway request id: the correlation id of an HTTP invocation."""
    return event.get("requestContext", {}).get("requestId")


def lambda_entry(
    correlation_id: Callable[[dict[str, Any]], str | None] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Logger context (with correlation id), metrics flush and, when enabled, tracing.

    The correlation id is read by a plain function rather than Powertools' jmespath path:
    compiling and walking a jmespath expression per invocation costs more than the rest of the
    logger's work on the ingest hot path.
    """

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(handler)
        def correlated(event: dict[str, Any], context: Any) -> Any:
            if correlation_id is not None:
                logger.set_correlation_id(correlation_id(event))
            return handler(event, context)

        wrapped = metrics.log_metrics(correlated)
        if tracing_enabled():
            wrapped = tracer().capture_lambda_handler(wrapped, capture_response=False)
        return logger.inject_lambda_context(wrapped, clear_state=True)

    return decorate
