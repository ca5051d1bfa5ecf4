"""The ANCHORS: the hub's ingest and status mapping built "the common way" with a typical Powertools stack.

They do the same domain work as the hub's handlers, on the same payloads, with the same domain
code (the mall channel's pydantic model and normaliser, the convergent state machine, the same
event-log entry), so what differs is the stack and the storage design:

ingest    APIGatewayHttpResolver route -> config via Powertools parameters (same cached providers)
          -> HMAC check -> Powertools parser `parse(model=MallWebhook)` -> SQS SendMessage
          (json.dumps of the request) -> Logger.inject_lambda_context + Metrics.log_metrics.
mapping   BatchProcessor(model=SqsRecordModel with body: Json[IntakeMessage]) -> channel parse ->
          Powertools idempotency (`idempotent_function`, DynamoDBPersistenceLayer: a conditional PutItem
          and an UpdateItem per new key, a failed PutItem for a duplicate) -> GetItem of the order
          (boto3 TypeDeserializer) -> merge -> TransactWriteItems of the order (version condition) +
          the event-log/outbox item (boto3 TypeSerializer) -> [PutEvents of the domain events from
          the handler, when `publish` is on: the cost anchor] -> Logger + Metrics per record.

No part of the hub imports this module.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any


class AnchorIngest:
    """POST /webhooks/<channel> the common way. `sqs` is a boto3-like client (a fake here)."""

    def __init__(self, sqs: Any, queue_url: str, config_prefix: str, secrets_prefix: str) -> None:
        from aws_lambda_powertools import Logger, Metrics
        from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
        from aws_lambda_powertools.logging import correlation_paths
        from aws_lambda_powertools.utilities import parameters
        from aws_lambda_powertools.utilities.parser import ValidationError, parse

        from orderhub.channels.mall import MallWebhook

        app = APIGatewayHttpResolver()
        logger = Logger(service="anchor-ingest")
        metrics = Metrics(namespace="AnchorHub")

        def reply(status: int, body: dict) -> Response:
            return Response(status_code=status, content_type="application/json", body=json.dumps(body))

        @app.post("/webhooks/<channel>")
        def webhook(channel: str) -> Response:
            event = app.current_event
            settings = parameters.get_parameter(f"{config_prefix}/channels/{channel}", transform="json",
                                                max_age=60)
            secrets = json.loads(parameters.get_secret(f"{secrets_prefix}/channels/{channel}", max_age=60))
            body = event.body or ""
            timestamp = event.headers.get("x-mall-timestamp", "")
            signature = event.headers.get("x-mall-signature", "")
            if not timestamp.isdigit() or abs(int(timestamp) - time.time()) > settings["timestamp_tolerance_s"]:
                return reply(401, {"code": "REJECTED", "message": "bad timestamp"})
            expected = ["sha256=" + hmac.new(s.encode(), timestamp.encode() + b"." + body.encode(),
                                             hashlib.sha256).hexdigest() for s in secrets["secrets"]]
            if not any(hmac.compare_digest(e, signature) for e in expected):
                return reply(401, {"code": "REJECTED", "message": "signature does not match"})
            try:
                hook = parse(event=body, model=MallWebhook)
            except ValidationError as exc:
                return reply(400, {"code": "REJECTED", "message": str(exc)[:200]})
            sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({
                "channel": channel, "received_at": datetime.now(UTC).isoformat(),
                "request_id": event.request_context.request_id, "headers": {
                    "x-mall-timestamp": timestamp, "x-mall-signature": signature}, "body": body}),
                MessageAttributes={"channel": {"DataType": "String", "StringValue": channel}})
            metrics.add_metric(name="WebhookAccepted", unit="Count", value=1)
            logger.debug("accepted", extra={"event_id": hook.event_id})
            return reply(200, {"code": "SUCCESS"})

        @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
        @metrics.log_metrics
        def handler(event: dict, context: Any) -> dict:
            return app.resolve(event, context)

        self.lambda_handler = handler


class AnchorMapper:
    """The status mapper the common way. `dynamodb` (and `events` when publishing) are boto3-like clients."""

    def __init__(self, dynamodb: Any, orders_table: str, events_table: str, idempotency_table: str,
                 events: Any = None, bus_name: str = "orderhub", publish: bool = False) -> None:
        from aws_lambda_powertools import Logger, Metrics
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )
        from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
        from aws_lambda_powertools.utilities.parser.types import Json
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        from orderhub.bus.domain_events import events_for_change
        from orderhub.channels import get_channel
        from orderhub.clock import utc_iso
        from orderhub.lifecycle.machine import apply_event, hub_order_id
        from orderhub.mapping import _entry
        from orderhub.models.envelope import IntakeMessage
        from orderhub.models.order import Order
        from orderhub.store.orders import entry_to_item

        class IntakeRecord(SqsRecordModel):
            body: Json[IntakeMessage]  # type: ignore[assignment]

        class _Clock:
            def now(self) -> datetime:
                return datetime.now(UTC)

        clock = _Clock()
        serializer, deserializer = TypeSerializer(), TypeDeserializer()
        logger = Logger(service="anchor-mapper")
        metrics = Metrics(namespace="AnchorHub")
        persistence = DynamoDBPersistenceLayer(table_name=idempotency_table, boto3_client=dynamodb)
        config = IdempotencyConfig(event_key_jmespath="event_id", expires_after_seconds=3600)
        processor = BatchProcessor(event_type=EventType.SQS, model=IntakeRecord)
        self.published = 0

        def to_item(values: dict) -> dict:
            return {k: serializer.serialize(v) for k, v in values.items() if v is not None}

        @idempotent_function(data_keyword_argument="event", config=config, persistence_store=persistence)
        def apply_change(event: Any, message: Any) -> dict:
            order_id = hub_order_id(event.channel, event.channel_order_id)
            reply = dynamodb.get_item(TableName=orders_table, Key={"order_id": {"S": order_id}},
                                      ConsistentRead=True)
            item = reply.get("Item")
            current = Order.model_validate({k: deserializer.deserialize(v) for k, v in item.items()}) \
                if item else None
            before = current.status.value if current else None
            merged, transition = apply_event(current, event)
            changed = current is None or merged != current
            log_item = entry_to_item(_entry(order_id, event, message, clock, "applied" if changed else "no_change",
                                            before, transition.after.value, ""))
            log_put = {"Put": {"TableName": events_table, "Item": log_item,
                               "ConditionExpression": "attribute_not_exists(event_key)"}}
            if not changed:
                dynamodb.transact_write_items(TransactItems=[log_put])
                return {"order_id": order_id, "outcome": "no_change"}
            now = utc_iso(clock.now())
            version = current.version if current else 0
            stored = merged.model_copy(update={"version": version + 1, "updated_in_hub_at": now,
                                               "created_in_hub_at": current.created_in_hub_at if current else now})
            condition = ({"ConditionExpression": "attribute_not_exists(order_id)"} if not version else
                         {"ConditionExpression": "version = :v", "ExpressionAttributeValues": {
                             ":v": {"N": str(version)}}})
            dynamodb.transact_write_items(TransactItems=[
                {"Put": {"TableName": orders_table, "Item": to_item(stored.model_dump(mode="json")), **condition}},
                log_put])
            if publish:
                entries = events_for_change(current, stored)
                if entries:
                    events.put_events(Entries=[e.to_put_events_entry(bus_name) for e in entries])
                    self.published += len(entries)
            return {"order_id": order_id, "outcome": "applied", "status": stored.status.value}

        def record_handler(record: IntakeRecord) -> None:
            message = record.body
            for event in get_channel(message.channel).parse(message.body, message.headers):
                result = apply_change(event=event, message=message)
                metrics.add_metric(name="EventsMapped", unit="Count", value=1)
                logger.info("event mapped", extra={"channel": message.channel, **result})

        @logger.inject_lambda_context
        @metrics.log_metrics
        def handler(event: dict, context: Any) -> dict:
            config.register_lambda_context(context)
            return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                            context=context)

        self.lambda_handler = handler
