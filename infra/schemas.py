"""Writes events/schemas/: one JSON Schema per domain event type, from the models that emit them.

Run `python -m infra.schemas` after changing orderhub.bus.domain_events; a unit test fails while
the committed schemas and the models disagree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

from infra.config import REPO_ROOT
from orderhub.bus.domain_events import (
    EVENT_SOURCE,
    MONEY_DETAIL_TYPES,
    PAYMENTS_SOURCE,
    SCHEMA_VERSION,
    DetailType,
    MoneyDetailType,
    MoneyMovement,
    OrderChange,
)

SCHEMA_DIR = REPO_ROOT / "events" / "schemas"

_DESCRIPTIONS = {
    "OrderCreated": "The hub saw an order for the first time.",
    "OrderStatusChanged": "An order's canonical status changed (also sent with the first status).",
    "OrderUpdated": "An order changed without a status change (payment, shipment, refund, details).",
    "PaymentConfirmed": "A payment in the payment voucher ledger is confirmed (a provider's callback, a platform's "
                        "payment, or finance confirming a transfer).",
    "PaymentReversed": "A movement of the payment voucher ledger is reversed (a refund closed, finance correcting "
                       "an entry): its money no longer counts.",
    "RefundBooked": "A refund is in the payment voucher ledger (pending while the provider reports it abnormal, "
                    "then confirmed).",
}


def detail_types() -> tuple[str, ...]:
    return (*get_args(DetailType), *get_args(MoneyDetailType))


def schema_for(detail_type: str) -> dict:
    money = detail_type in MONEY_DETAIL_TYPES
    source = PAYMENTS_SOURCE if money else EVENT_SOURCE
    detail = (MoneyMovement if money else OrderChange).model_json_schema()
    definitions = detail.pop("$defs", {})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://orderhub.dev/schemas/{source}/{detail_type}/v{SCHEMA_VERSION}.json",
        "title": detail_type,
        "description": _DESCRIPTIONS[detail_type] + " Delivered as an EventBridge event; subscribers receive "
                       "{id, type, source, time, data} with data = detail.",
        "type": "object",
        "required": ["source", "detail-type", "detail"],
        "properties": {
            "source": {"const": source},
            "detail-type": {"const": detail_type},
            "detail": detail,
        },
        "x-schema-version": SCHEMA_VERSION,
        "$defs": definitions,
    }


def render(detail_type: str) -> str:
    return json.dumps(schema_for(detail_type), indent=2, ensure_ascii=False) + "\n"


def schema_path(detail_type: str) -> Path:
    return SCHEMA_DIR / f"{detail_type}.v{SCHEMA_VERSION}.json"


def main() -> None:
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    for detail_type in detail_types():
        schema_path(detail_type).write_text(render(detail_type), encoding="utf-8")
        print(f"wrote {schema_path(detail_type).relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
