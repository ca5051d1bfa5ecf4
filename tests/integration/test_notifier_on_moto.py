"""The notifier on moto: the real handler against the provisioned alerts queue, table and alarm topic,
telling the robot stand-in over HTTP. Storms become one message with the count, failed sends come back
until told, the alarm topic gets its copy, and hub_health's dead-letter alerts go the same way."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws
from unit.alert_interleavings import told_in
from unit.test_alerts_throttle import INTERLEAVINGS, play_interleaving

from infra.standins.robots import robots_for
from infra.topology import build_topology
from orderhub.alerts import Alert, send_alerts
from orderhub.store.alerts import CLAIM_LEASE_S, Due, DynamoAlertStore, Occurrence

REGION = "ap-southeast-1"


@pytest.fixture
def alerting(hub):
    """The hub with its robots on the stand-in, and an SQS queue subscribed to the alarm topic."""
    from aws_lambda_powertools.utilities import parameters

    server, config = robots_for(hub.config)
    params, secrets = config.parameter_documents()
    name = f"{config.secrets_prefix}/alerts/robots"
    hub.client("secretsmanager").put_secret_value(SecretId=name, SecretString=secrets[name])
    parameters.clear_caches()
    hub.config = config

    sqs, sns = hub.client("sqs"), hub.client("sns")
    inbox = sqs.create_queue(QueueName="alarm-inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=hub.res.topics["alarms"], Protocol="sqs", Endpoint=inbox_arn)
    hub.alarm_inbox = inbox
    with server:
        hub.robots = server
        yield hub


def queue_alerts(hub, alerts: list[Alert]) -> None:
    """Each alert as its own message, as separate producer invocations would send them."""
    for alert in alerts:
        send_alerts([alert], queue_url=hub.queue_url("alerts"), client=hub.client("sqs"))


def drain_to_notifier(hub) -> list[str]:
    """Hand every visible alert message to the notifier, 10 at a time, as Lambda's event source mapping
    does: records that succeeded are deleted, failed ones stay invisible. Their receipt handles return."""
    sqs, failed_handles = hub.client("sqs"), []
    while messages := hub.receive("alerts", 10):
        reply = hub.invoke("notifier", hub.sqs_event("alerts", messages))
        failed = {f["itemIdentifier"] for f in reply["batchItemFailures"]}
        failed_handles += [m["ReceiptHandle"] for m in messages if m["MessageId"] in failed]
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            sqs.delete_message_batch(QueueUrl=hub.queue_url("alerts"), Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
    return failed_handles


def redeliver(hub, handles: list[str]) -> None:
    """SQS hands a failed record out again once its visibility timeout (180 s) passes; here, at once."""
    for handle in handles:
        hub.client("sqs").change_message_visibility(QueueUrl=hub.queue_url("alerts"), ReceiptHandle=handle,
                                                    VisibilityTimeout=0)


def alarm_messages(hub) -> list[dict]:
    sqs, seen = hub.client("sqs"), []
    while got := sqs.receive_message(QueueUrl=hub.alarm_inbox, MaxNumberOfMessages=10).get("Messages", []):
        seen += [json.loads(m["Body"]) for m in got]
        sqs.delete_message_batch(QueueUrl=hub.alarm_inbox, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
    return seen


def digest_at(hub, at: datetime) -> dict:
    return hub.invoke("notifier", {"schedule": "alert-digest", "scheduled_time": at.strftime("%Y-%m-%dT%H:%M:%SZ")})


def wms_failing(n: int = 1) -> Alert:
    return Alert(key="delivery-failing:wms", title="Deliveries to wms are failing",
                 text="Last answer: HTTP 503 (attempt 2 of 5).", severity="warning", count=n,
                 at=datetime.now(UTC).isoformat(timespec="milliseconds"))


def test_a_storm_of_alerts_for_one_problem_is_one_robot_message_with_the_count(alerting):
    hub = alerting
    # Given 120 producer invocations each reporting 5 failures of the same subscriber
    queue_alerts(hub, [wms_failing(5) for _ in range(120)])
    # When the notifier works through the alerts queue
    assert drain_to_notifier(hub) == []
    # Then the ops robot got one message, the alarm topic one copy
    (first,) = hub.robots.messages("ops-wecom")
    assert told_in(first.content) == ("delivery-failing:wms", 5)
    assert "Deliveries to wms are failing" in first.content and "Last answer: HTTP 503" in first.content
    (published,) = alarm_messages(hub)
    assert published["Subject"] == "[WARNING] Deliveries to wms are failing"
    assert told_in(published["Message"]) == ("delivery-failing:wms", 5)

    # And once the window closed, the digest told the rest in one message each
    summary = digest_at(hub, datetime.now(UTC) + timedelta(seconds=hub.config.alerts.window_s + 60))
    assert summary["told"] == {"delivery-failing:wms#robot:ops-wecom": 595, "delivery-failing:wms#sns": 595}
    assert [told_in(m.content) for m in hub.robots.messages("ops-wecom")][1:] == [("delivery-failing:wms", 595)]
    assert "595 more since the last alert" in hub.robots.messages("ops-wecom")[1].content
    assert [told_in(m["Message"]) for m in alarm_messages(hub)] == [("delivery-failing:wms", 595)]


def test_a_rate_limited_robot_gets_the_alert_on_the_retry_and_the_topic_gets_it_once(alerting):
    hub = alerting
    hub.robots.fail("ops-wecom", 1, errcode=45009)  # api freq out of limit
    queue_alerts(hub, [wms_failing(2)])

    failed = drain_to_notifier(hub)
    assert len(failed) == 1 and hub.robots.messages("ops-wecom") == []
    assert len(alarm_messages(hub)) == 1

    redeliver(hub, failed)
    assert drain_to_notifier(hub) == []
    assert [told_in(m.content) for m in hub.robots.messages("ops-wecom")] == [("delivery-failing:wms", 2)]
    assert alarm_messages(hub) == []  # reached on the first attempt: not told (or counted) again


def test_a_robot_that_stays_down_parks_the_alert_in_the_alerts_dlq(alerting):
    hub = alerting
    hub.robots.fail("ops-wecom", 100, status=503)
    queue_alerts(hub, [wms_failing()])
    max_receives = hub.topology.queue("alerts").max_receive_count
    for _ in range(max_receives):
        failed = drain_to_notifier(hub)
        assert len(failed) == 1
        redeliver(hub, failed)
    assert hub.receive("alerts") == []  # past maxReceiveCount SQS moved it to the DLQ
    (parked,) = hub.receive("alerts-dlq")
    assert Alert.from_body(parked["Body"]).key == "delivery-failing:wms"
    assert hub.robots.robot("ops-wecom").attempts == max_receives  # one try per receive, no storm of retries


def test_hub_health_alerts_on_a_dead_letter_queue_and_the_robot_hears_of_it(alerting):
    hub = alerting
    sqs = hub.client("sqs")
    for i in range(3):
        sqs.send_message(QueueUrl=hub.queue_url("sub-wms-dlq"), MessageBody=json.dumps({"n": i}))

    summary = hub.invoke("hub_health", {"schedule": "hub-health", "scheduled_time": "2026-11-22T01:00:00Z"})
    assert summary["dead_letters"] == {"sub-wms-dlq": 3} and summary["alerts_queued"] == 1
    (queued,) = hub.receive("alerts")
    alert = Alert.from_body(queued["Body"])
    # A subscriber's DLQ is part of that subscriber's delivery problem: one alert per subscriber.
    assert (alert.key, alert.severity, alert.route) == ("delivery:wms", "critical", "")
    assert "orderhub dlq show sub-wms-dlq" in alert.text and "orderhub dlq redrive sub-wms-dlq" in alert.text
    sqs.change_message_visibility(QueueUrl=hub.queue_url("alerts"), ReceiptHandle=queued["ReceiptHandle"],
                                  VisibilityTimeout=0)

    assert drain_to_notifier(hub) == []
    (message,) = hub.robots.messages("ops-wecom")
    assert message.content.startswith("### 🔴 CRITICAL · Dead letters in sub-wms-dlq")
    assert "holds **3** message(s)" in message.content
    (published,) = alarm_messages(hub)
    assert published["Subject"] == "[CRITICAL] Dead letters in sub-wms-dlq"


def test_hub_health_sends_no_alert_when_no_dead_letter_queue_holds_anything(alerting):
    summary = alerting.invoke("hub_health", {"schedule": "hub-health", "scheduled_time": "2026-11-22T01:00:00Z"})
    assert summary["dead_letters"] == {} and "alerts_queued" not in summary
    assert alerting.receive("alerts") == []


def test_a_dingtalk_route_is_signed_and_accepted_by_the_stand_in(alerting):
    hub = alerting
    queue_alerts(hub, [Alert(key="exception-breach:payment", title="Payment exceptions past their SLA",
                             text="2 payment exceptions open for more than 120 min.", route="supervisors",
                             severity="critical", at=datetime.now(UTC).isoformat())])
    assert drain_to_notifier(hub) == []
    (message,) = hub.robots.messages("leads-dingtalk")
    assert message.title == "[CRITICAL] Payment exceptions past their SLA"
    assert hub.robots.robot("leads-dingtalk").refused == {}


@settings(INTERLEAVINGS, max_examples=12)
@given(data=st.data())
def test_concurrent_notifiers_on_dynamodb_tell_once_per_window_and_lose_nothing(data):
    # The unit tier's interleavings, with every conditional write evaluated by DynamoDB (moto): one
    # notifier thread runs at a time, so moto sees the calls in exactly the drawn order.
    declared = next(t for t in build_topology().tables if t.name == "alerts")
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(TableName="alerts", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": declared.partition_key, "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": declared.partition_key, "AttributeType": "S"}])
        play_interleaving(data, DynamoAlertStore(client=ddb, table="alerts"), max_occurrences=8)


def test_the_alerts_table_enforces_one_claim_per_window_and_keeps_pending_counts(hub):
    store = DynamoAlertStore(client=hub.client("dynamodb"), table=hub.res.tables["alerts"])
    t0, w = 1_795_226_400.0, 300
    occurrence = Occurrence(count=2, first_at="2026-11-21T02:00:00.000+00:00", last_at="2026-11-21T02:00:00.000+00:00",
                            title="wms failing", text="HTTP 503", route="ops", severity="warning")
    # No window yet: nothing is counted, the first claim wins, a concurrent second one loses
    assert store.count("p", "sns", occurrence, t0) is False
    first = store.claim("p", "sns", occurrence, t0, w, "A")
    assert first is not None and first.pending == 0
    assert store.claim("p", "sns", occurrence, t0, w, "B") is None
    # While the window is open occurrences are counted; it stays closed to claims until it ends
    assert store.count("p", "sns", occurrence, t0 + 10) and store.count("p", "sns", occurrence, t0 + w - 1)
    assert store.claim("p", "sns", occurrence, t0 + w - 1, w, "B") is None
    store.confirm("p", "sns", first, 2, "2026-11-21T02:00:00.000+00:00")
    assert store.due(t0 + w - 1) == []
    assert store.due(t0 + w) == [Due("p", "sns")]
    # After it: the next claim takes the 4 counted (pending_first is theirs) ...
    second = store.claim("p", "sns", occurrence, t0 + w, w, "C")
    assert (second.pending, second.last_told_at) == (4, "2026-11-21T02:00:00.000+00:00")
    # ... a failed send gives them back, window and all, so the next claim tells them
    store.release("p", "sns", second)
    third = store.claim("p", "sns", None, t0 + w + 1, w, "D")
    assert third is not None and (third.pending, third.pending_first) == (4, second.pending_first)
    # A digest claim needs something pending
    store.confirm("p", "sns", third, 4, "2026-11-21T02:05:01.000+00:00")
    assert store.claim("p", "sns", None, t0 + 10 * w, w, "F") is None
    # A claim in flight keeps its lease past a short window: nobody tells the same count meanwhile
    assert store.claim("q", "sns", occurrence, t0, 60, "G") is not None
    assert store.claim("q", "sns", occurrence, t0 + 61, 60, "H") is None  # the window ended, the lease did not
    assert store.claim("q", "sns", occurrence, t0 + CLAIM_LEASE_S, 60, "H") is not None
    # Which destinations a retried alert already reached
    store.remember("alert-1", ["sns"], t0)
    store.remember("alert-1", ["robot:ops-wecom"], t0)
    assert store.recall(["alert-1", "alert-2"]) == {"alert-1": frozenset({"sns", "robot:ops-wecom"})}
