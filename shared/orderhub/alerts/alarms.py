"""The stack's CloudWatch alarms, told by the notifier like any other alert.

CloudWatch publishes each alarm to the alarm topic itself (SNS), and EventBridge puts its "CloudWatch
Alarm State Change" event for this stage's alarms on the alerts queue (infra/cdk/constructs/monitoring.py).
The notifier turns such an event into one `Alert` for the robots only: the topic already has it.

An alarm going off is critical; an alarm clearing is told once (it follows ALARM); other transitions
(a new alarm's INSUFFICIENT_DATA -> OK on deploy) are not news. The alert id is the EventBridge event's,
so a redelivered message reaches no robot twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from orderhub.alerts import Alert, Severity
from orderhub.clock import utc_iso

ALARM_SOURCE = "aws.cloudwatch"
ALARM_DETAIL_TYPE = "CloudWatch Alarm State Change"
# Descriptions and reasons are CloudWatch's and ours (no personal data); a chat message stays short.
TEXT_MAX_CHARS = 600


def is_alarm_event(document: Any) -> bool:
    return (isinstance(document, Mapping) and document.get("source") == ALARM_SOURCE
            and document.get("detail-type") == ALARM_DETAIL_TYPE)


def _utc_iso(text: str) -> str:
    try:
        at = datetime.fromisoformat(text)  # "2026-11-11T00:03:00.123+0000" and "...Z" both parse
    except (TypeError, ValueError):
        return ""
    return utc_iso(at) if at.tzinfo else ""


def _short(text: Any) -> str:
    text = str(text or "").strip()
    return text if len(text) <= TEXT_MAX_CHARS else text[:TEXT_MAX_CHARS - 1] + "…"


def alert_from_alarm_event(event: Mapping[str, Any]) -> Alert | None:
    """The alert an alarm's state change tells, or None when the change is not news.

    Raises KeyError / TypeError / ValueError for an event without an alarm name or state (unreadable).
    """
    detail = event["detail"]
    name = str(detail["alarmName"])
    state = detail["state"]
    value = str(state["value"])
    previous = str((detail.get("previousState") or {}).get("value", ""))
    if not name:
        raise ValueError("an alarm state change without an alarm name")
    severity: Severity
    if value == "ALARM":
        key, severity, title = f"alarm:{name}", "critical", f"Alarm {name}"
    elif value == "OK" and previous == "ALARM":
        key, severity, title = f"alarm-cleared:{name}", "info", f"Alarm {name} cleared"
    else:
        return None
    description = _short((detail.get("configuration") or {}).get("description"))
    lines = [description] if description else []
    lines += [f"CloudWatch: {_short(state.get('reason'))}", f"Alarm `{name}` in {event.get('region', '?')}: "
              f"{previous or '?'} → {value}."]
    at = _utc_iso(str(state.get("timestamp", ""))) or _utc_iso(str(event.get("time", "")))
    return Alert(key=key, title=title, text="\n\n".join(lines), severity=severity, at=at,
                 id=f"alarm-event:{event['id']}" if event.get("id") else "", to_alarm_topic=False)
