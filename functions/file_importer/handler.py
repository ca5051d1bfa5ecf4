"""S3 drop -> CSV import (ING-6): each file under `imports/` is validated and enqueued, all or nothing.

S3 announces every `.csv` object created under `imports/` on the `imports` queue (at least
once; the first message after the notification is configured is an `s3:TestEvent`, skipped).
Object keys name the target channel, and optionally the default shop:

    imports/<channel>/<file>.csv            e.g. imports/store-sh-01/2026-11-19.csv
    imports/<channel>/<shop>/<file>.csv     e.g. imports/mall/SH01/2026-11-19.csv

The file goes through `orderhub.imports.run_import`, the code `orderhub import` runs, and
the report is written next to it as JSON: `reports/imports/<same path>.json` (outside the
notified prefix and suffix, so it announces nothing). A rejected file is done with (its
report lists every row problem; fix the file and drop it again). A file whose sending stopped
midway fails its SQS message, so it is retried (3 receives, then the imports DLQ): re-sending
is safe because event ids derive from the file's hash and row numbers.
"""

# ruff: noqa: I001 - order matters: Powertools' batch module builds its pydantic parser models
# (~0.4 s of cold start) only when pydantic is already imported, so it is imported first.
from __future__ import annotations

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

import json
from typing import Any
from urllib.parse import unquote_plus

from orderhub import settings
from orderhub.channels.file_import import RowProblem
from orderhub.clock import SystemClock, utc_iso
from orderhub.imports import INCOMPLETE, MAX_FILE_BYTES, ImportReport, run_import
from orderhub.intake_batch import IntakeBatchSender
from orderhub.observability import lambda_entry, logger, metrics

IMPORTS_PREFIX = "imports/"
REPORTS_PREFIX = "reports/imports/"

processor = BatchProcessor(event_type=EventType.SQS)
_clock = SystemClock()


class ImportIncomplete(RuntimeError):
    """Sending stopped midway: fail the SQS message so the file is imported again."""


def _client(service: str) -> Any:
    from orderhub.aws import client  # boto3 loads on first use, not at import (cold start)

    return client(service)


def report_key(key: str) -> str:
    return REPORTS_PREFIX + key.removeprefix(IMPORTS_PREFIX).removesuffix(".csv") + ".json"


def _target(key: str) -> tuple[str, str, str] | None:
    """(channel, default shop, file name) from the object key, or None if it does not follow the layout."""
    parts = key.removeprefix(IMPORTS_PREFIX).split("/")
    if len(parts) == 2 and all(parts):
        return parts[0], "", parts[1]
    if len(parts) == 3 and all(parts):
        return parts[0], parts[1], parts[2]
    return None


def import_object(bucket: str, key: str, version_id: str | None, source_ip: str, request_id: str) -> ImportReport:
    s3 = _client("s3")
    target = _target(key)
    channel, shop, name = target or ("", "", key.rsplit("/", 1)[-1])
    report = ImportReport(file=name, channel=channel)
    if target is None:
        report.errors.append(RowProblem(0, "", "the object key must be imports/<channel>/<file>.csv or "
                                               "imports/<channel>/<shop>/<file>.csv"))
    else:
        kwargs = {"Bucket": bucket, "Key": key, **({"VersionId": version_id} if version_id else {})}
        try:
            obj = s3.get_object(**kwargs)
        except s3.exceptions.NoSuchKey:
            # Deleted before it was read (notifications can come late): nothing to import, nor to retry.
            report.errors.append(RowProblem(0, "", "the file was deleted before it could be read"))
            return report
        if int(obj.get("ContentLength", 0)) > MAX_FILE_BYTES:
            obj["Body"].close()
            report.errors.append(RowProblem(0, "", f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} "
                                                   "MiB: split it"))
        else:
            data = obj["Body"].read()
            report = run_import(data, file_name=name, channel=channel, shop_id=shop,
                                business_tz=settings.business_tz(), now=_clock.now(),
                                sender=IntakeBatchSender(settings.env("INTAKE_QUEUE_URL"), _client("sqs")),
                                request_id=request_id, source_ip=source_ip)
    document = {**report.as_dict(), "source": f"s3://{bucket}/{key}", "version_id": version_id,
                "imported_at": utc_iso(_clock.now())}
    s3.put_object(Bucket=bucket, Key=report_key(key), ContentType="application/json",
                  Body=json.dumps(document, ensure_ascii=False, indent=2).encode())
    return report


def record_handler(record: Any) -> None:
    notification = json.loads(record.body)
    if notification.get("Event") == "s3:TestEvent":
        logger.info("S3 test event skipped", extra={"bucket": notification.get("Bucket")})
        return
    drops = settings.env("DROPS_BUCKET")
    for s3_record in notification.get("Records", []):
        if not str(s3_record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        bucket = s3_record["s3"]["bucket"]["name"]
        # Keys arrive URL-encoded as in an HTML form (a space is "+").
        key = unquote_plus(s3_record["s3"]["object"]["key"])
        if bucket != drops or not key.startswith(IMPORTS_PREFIX) or not key.endswith(".csv"):
            logger.warning("notification for an object outside imports/ skipped", extra={"bucket": bucket, "key": key})
            continue
        report = import_object(bucket, key, s3_record["s3"]["object"].get("versionId"),
                               s3_record.get("requestParameters", {}).get("sourceIPAddress", ""),
                               s3_record.get("responseElements", {}).get("x-amz-request-id", "") or record.message_id)
        summary = {"key": key, "status": report.status, "rows": report.rows, "events": report.events,
                   "enqueued": report.enqueued, "errors": len(report.errors), "report": report_key(key)}
        metrics.add_metric(name=f"ImportFiles_{report.status}", unit="Count", value=1)
        if report.status == INCOMPLETE:
            logger.error("import stopped midway; the message is retried", extra={**summary,
                                                                                  "failure": report.failure})
            raise ImportIncomplete(f"{key}: {report.enqueued} of {report.events} events enqueued")
        (logger.info if report.status != "rejected" else logger.warning)("file imported", extra=summary)


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
