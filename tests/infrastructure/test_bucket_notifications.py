"""S3 event notifications of the template match the topology, and S3 may deliver them to the encrypted queue."""

from __future__ import annotations

from infrastructure.synthesis import Synth, arn, as_list, literal


def _notified(synth: Synth) -> list[tuple[object, object]]:
    pairs = [(b, n) for b in synth.topology.buckets for n in b.notifications]
    assert pairs, "the topology should announce dropped import files"
    return pairs


def _filter_rules(configuration: dict) -> dict[str, str]:
    return {r["Name"]: r["Value"] for r in configuration["Filter"]["S3Key"]["Rules"]}


def test_each_declared_notification_announces_created_objects_under_its_prefix_on_its_queue(synth: Synth) -> None:
    for bucket, notification in _notified(synth):
        bucket_id = synth.bucket(bucket.name)
        configurations = synth.props(bucket_id)["NotificationConfiguration"]["QueueConfigurations"]
        matches = [c for c in configurations if c["Queue"] == arn(synth.queue(notification.queue))]
        assert len(matches) == 1, f"{bucket.name}: expected one configuration for queue {notification.queue}"
        (configuration,) = matches
        assert configuration["Event"] == "s3:ObjectCreated:*"
        expected = {"prefix": notification.prefix} | ({"suffix": notification.suffix} if notification.suffix else {})
        assert _filter_rules(configuration) == expected


def test_only_the_bucket_of_this_account_may_send_to_the_queue(synth: Synth) -> None:
    for bucket, notification in _notified(synth):
        queue_id = synth.queue(notification.queue)
        statements = [
            s for p in synth.of_type("AWS::SQS::QueuePolicy").values() if {"Ref": queue_id} in p["Properties"]["Queues"]
            for s in p["Properties"]["PolicyDocument"]["Statement"]
            if s["Effect"] == "Allow" and s["Principal"] == {"Service": "s3.amazonaws.com"}
        ]
        (statement,) = statements
        assert as_list(statement["Action"]) == ["sqs:SendMessage"]
        assert statement["Resource"] == arn(queue_id)
        source = statement["Condition"]["ArnLike"]["aws:SourceArn"]
        assert literal(source).endswith(f":s3:::{synth.settings.name(bucket.name)}-")  # + the account id
        assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_the_bucket_is_configured_after_the_queue_policy_that_lets_s3_send(synth: Synth) -> None:
    # S3 checks the destination's permission when the configuration is set.
    for bucket, notification in _notified(synth):
        queue_id = synth.queue(notification.queue)
        (policy_id,) = [pid for pid, p in synth.of_type("AWS::SQS::QueuePolicy").items()
                        if {"Ref": queue_id} in p["Properties"]["Queues"]]
        assert policy_id in as_list(synth.resources[synth.bucket(bucket.name)].get("DependsOn", []))


def test_s3_may_use_the_stack_key_to_write_into_the_encrypted_queue(synth: Synth) -> None:
    (key,) = synth.of_type("AWS::KMS::Key").values()
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    allowed = {a for s in statements if s["Effect"] == "Allow" and s["Principal"] == {"Service": "s3.amazonaws.com"}
               for a in as_list(s["Action"])}
    assert {"kms:GenerateDataKey", "kms:Decrypt"} <= allowed


def test_no_custom_resource_is_needed_for_notifications(synth: Synth) -> None:
    assert not synth.of_type("Custom::S3BucketNotifications")


def test_the_importer_may_read_the_exact_version_it_was_told_about(synth: Synth) -> None:
    # The drops bucket is versioned, so each notification names the object's version.
    for function in synth.topology.functions:
        if not any(a.kind == "bucket:read" for a in function.access):
            continue
        statements = synth.role_statements(function.name)
        for action in ("s3:GetObject", "s3:GetObjectVersion"):
            assert any(action in as_list(s["Action"]) for s in statements if s["Effect"] == "Allow"), \
                (function.name, action)
