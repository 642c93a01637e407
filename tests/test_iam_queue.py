"""`iam-policy --queue-arn`: Airflow's role may receive and delete the messages of its push-delivery
queues, exactly what the event queue sends and nothing else; package CI roles get nothing new."""

from __future__ import annotations

import json

import boto3
import pytest
from test_publish import _allowed, main

from dagfactory_s3.serve.events import Queue

ENV = "prod"
PACKAGE = "reporting_seeder"
QUEUE = "arn:aws:sqs:us-east-1:123456789012:airflow-dag-bucket-DagProcessorSyncQueue-1A2B3C"
OTHER = "arn:aws:sqs:us-east-1:123456789012:airflow-dag-bucket-TriggererSyncQueue-4D5E6F"
# The IAM action that authorizes each SQS API call (a batch call is authorized by its single action).
SQS_ACTIONS = {"ReceiveMessage": "sqs:ReceiveMessage", "DeleteMessageBatch": "sqs:DeleteMessage"}


def _policies(capsys, bucket: str, *queue_arns: str) -> dict:
    extra = [a for arn in queue_arns for a in ("--queue-arn", arn)]
    code, out, err = main(
        capsys, "iam-policy", "--bucket", bucket, "--environment", ENV, "--package-name", PACKAGE, *extra
    )
    assert code == 0, err
    return json.loads(out)


def test_queue_arn_allows_receive_and_delete_on_those_queues_and_nothing_else(capsys):
    """Each --queue-arn gets sqs:ReceiveMessage and sqs:DeleteMessage; other queues and other SQS actions stay denied."""
    airflow = _policies(capsys, "dags", QUEUE, OTHER, QUEUE)["airflow_read_only_role"]
    [statement] = [s for s in airflow["Statement"] if any(a.startswith("sqs:") for a in s["Action"])]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == ["sqs:ReceiveMessage", "sqs:DeleteMessage"]
    assert statement["Resource"] == sorted({QUEUE, OTHER})  # repeated ARNs once, in a stable order
    for arn in (QUEUE, OTHER):
        assert _allowed(airflow, "sqs:ReceiveMessage", arn)
        assert _allowed(airflow, "sqs:DeleteMessage", arn)
        for action in ("sqs:SendMessage", "sqs:PurgeQueue", "sqs:DeleteQueue", "sqs:SetQueueAttributes"):
            assert not _allowed(airflow, action, arn), action
    assert not _allowed(airflow, "sqs:ReceiveMessage", QUEUE.replace("1A2B3C", "7G8H9I"))
    assert _allowed(airflow, "s3:GetObject", f"arn:aws:s3:::dags/{ENV}/{PACKAGE}/metadata.json")


def test_without_queue_arn_airflow_gets_nothing_on_sqs_and_ci_roles_never_do(capsys):
    """No --queue-arn: no SQS statement at all; the package CI role is the same with or without queues."""
    plain = _policies(capsys, "dags")
    assert not [s for s in plain["airflow_read_only_role"]["Statement"] if "sqs" in json.dumps(s)]
    with_queues = _policies(capsys, "dags", QUEUE)
    assert with_queues["package_ci_role"] == plain["package_ci_role"]
    assert "sqs" not in json.dumps(with_queues["package_ci_role"])


@pytest.mark.parametrize(
    ("arn", "reason"),
    [
        ("https://sqs.us-east-1.amazonaws.com/123456789012/dag-events", "that is a queue URL"),
        ("arn:aws:sqs:us-east-1:123456789012:dag-events.fifo", "of a standard queue"),
        ("arn:aws:sqs:us-east-1:123456789012:*", "of a standard queue"),
        ("arn:aws:sqs:*:123456789012:dag-events", "of a standard queue"),
        ("arn:aws:sns:us-east-1:123456789012:dag-events", "of a standard queue"),
        ("arn:aws:sqs:us-east-1:1234:dag-events", "12-digit account"),
        ("dag-events", "of a standard queue"),
    ],
)
def test_a_malformed_queue_arn_is_a_usage_error(capsys, arn: str, reason: str):
    """An ARN that is not a standard queue's is refused with exit 2, naming the value and the expected shape."""
    code, out, err = main(
        capsys,
        "iam-policy",
        "--bucket",
        "dags",
        "--environment",
        ENV,
        "--package-name",
        PACKAGE,
        "--queue-arn",
        arn,
    )
    assert code == 2 and out == ""
    assert f"--queue-arn {arn!r} is not an SQS queue ARN" in err and reason in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:dag-events",
        "arn:aws-cn:sqs:cn-north-1:123456789012:dag_events-1",
    ],
)
def test_queue_arns_of_other_partitions_are_accepted(capsys, arn: str):
    """GovCloud and China partitions name their queues arn:aws-us-gov / arn:aws-cn."""
    airflow = _policies(capsys, "dags", arn)["airflow_read_only_role"]
    assert _allowed(airflow, "sqs:ReceiveMessage", arn)


def test_queue_arn_is_refused_for_the_platform_role(capsys):
    """The platform role reads no queue: --queue-arn with --platform is a usage error."""
    code, _, err = main(
        capsys, "iam-policy", "--bucket", "dags", "--environment", ENV, "--platform", "--queue-arn", QUEUE
    )
    assert code == 2 and "--queue-arn is for Airflow's role, not --platform" in err


def test_every_request_of_the_event_queue_is_allowed_by_airflows_policy(s3, bucket, capsys):
    """A real S3 -> SQS notification on the moto server, received and deleted by the event queue: every SQS
    call it sends is allowed by the policy `--queue-arn` prints for that queue."""
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="dag-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    rules = [{"Name": "prefix", "Value": f"{ENV}/"}]
    boto3.client("s3").put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": arn, "Events": events, "Filter": {"Key": {"FilterRules": rules}}}
            ]
        },
    )
    boto3.client("s3").put_object(Bucket=bucket, Key=f"{ENV}/{PACKAGE}/metadata.json", Body=b"{}")

    calls: list[str] = []
    client = boto3.client("sqs")
    client.meta.events.register("before-call.sqs", lambda model, **_: calls.append(model.name))
    queue = Queue(url, bucket, ENV, client=client)
    batch = queue.receive(wait_seconds=1)
    assert batch.packages == {PACKAGE}
    queue.delete(batch)
    assert queue.receive(wait_seconds=0).receipts == []  # deleted, not merely hidden

    airflow = _policies(capsys, bucket, arn)["airflow_read_only_role"]
    assert set(calls) == set(SQS_ACTIONS), calls
    for call in calls:
        assert _allowed(airflow, SQS_ACTIONS[call], arn), call
