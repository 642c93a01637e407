"""S3 event notifications read from SQS (dagfactory_s3.serve.events): what a message names, what is
dropped and why, and how a batch's messages are deleted.

``parse`` is fed message bodies shaped as S3 and SNS send them (the AWS notification structure, keys
URL-encoded as S3 encodes them); the queue tests send real notifications through the moto server.
"""

from __future__ import annotations

import json
from urllib.parse import quote_plus

import boto3
import pytest

from dagfactory_s3.errors import StorageError
from dagfactory_s3.serve.events import MAX_BODY_BYTES, POLICY, Queue, parse

BUCKET = "etl-airflow-dags-test"
ENV = "dev"


def record(key: str, *, bucket: str = BUCKET, name: str = "ObjectCreated:Put", encode: bool = True) -> dict:
    """One S3 event record as S3 writes it: the key URL-encoded (``quote_plus``: a space is ``+``)."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-12-01T12:00:00.000Z",
        "eventName": name,
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "dags",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": quote_plus(key, safe="/") if encode else key, "size": 2, "eTag": "x"},
        },
    }


def body(*records: dict) -> str:
    return json.dumps({"Records": list(records)})


def sns(message: str) -> str:
    """An SNS envelope (a subscription without raw message delivery)."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "6cc6ff74-a054-430c-b4f7-1165a757cfca",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:dags",
            "Subject": "Amazon S3 Notification",
            "Message": message,
            "Timestamp": "2026-12-01T12:00:00.000Z",
            "SignatureVersion": "1",
        }
    )


TEST_EVENT = json.dumps(
    {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-12-01T12:00:00.000Z", "Bucket": BUCKET}
)


class TestCommitPoints:
    def test_a_release_record_names_its_package(self):
        """Writing <env>/<package>/metadata.json (publish, promote, rollback, retire) names the package."""
        batch = parse(body(record(f"{ENV}/reporting_seeder/metadata.json")), BUCKET, ENV)
        assert batch.packages == {"reporting_seeder"} and not batch.policy
        assert batch.ignored == 0 and not batch.dropped

    @pytest.mark.parametrize("name", ["ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated"])
    def test_a_removed_record_names_its_package(self, name):
        """Deleting a release record is a change of what is served too: the package is named."""
        batch = parse(body(record(f"{ENV}/etl/metadata.json", name=name)), BUCKET, ENV)
        assert batch.packages == {"etl"}

    def test_the_policy_pointer_names_the_policy(self):
        """<env>/_platform/policy.json names the policy, and no package."""
        batch = parse(body(record(f"{ENV}/_platform/policy.json")), BUCKET, ENV)
        assert batch.policy and batch.packages == set()

    @pytest.mark.parametrize(
        "key",
        [
            f"{ENV}/etl/dags/etl_load.json",
            f"{ENV}/etl/dags/etl_load.py",
            f"{ENV}/etl/_releases/objects/{'a' * 64}",
            f"{ENV}/etl/_releases/20260101T120000.000Z-1a2b3c.json",
            f"{ENV}/_platform/objects/{'b' * 64}.json",
            f"{ENV}/_platform/policy.id",
            f"{ENV}/etl/metadata.json.tmp",
        ],
    )
    def test_other_keys_of_the_environment_are_ignored(self, key):
        """Content objects, history records and DAG files are written before their commit point: ignored
        (counted), neither named nor dropped, so one publish of many files is one event that matters."""
        batch = parse(body(record(key)), BUCKET, ENV)
        assert (batch.packages, batch.policy, batch.ignored, batch.dropped) == (set(), False, 1, {})

    def test_unreleased_dags_keys_name_their_package_only_when_mirrored(self):
        """With --mirror-unreleased a package without a record is served from its dags/ keys, so those
        name it; otherwise they are ignored."""
        message = body(record(f"{ENV}/legacy/dags/legacy_a.json"))
        assert parse(message, BUCKET, ENV, unreleased=True).packages == {"legacy"}
        assert parse(message, BUCKET, ENV).packages == set()
        other = body(record(f"{ENV}/legacy/_releases/objects/{'c' * 64}"))
        assert parse(other, BUCKET, ENV, unreleased=True).ignored == 1

    def test_events_that_change_nothing_served_are_ignored(self):
        """A restore or replication event on a record is not a write of it: ignored."""
        batch = parse(body(record(f"{ENV}/etl/metadata.json", name="ObjectRestore:Completed")), BUCKET, ENV)
        assert batch.packages == set() and batch.ignored == 1


class TestEncodingAndShapes:
    def test_url_encoded_keys_are_decoded(self):
        """S3 URL-encodes keys in events: %xx escapes are decoded before the key is read."""
        encoded = "dev%2Fetl%2Fmetadata%2Ejson"
        batch = parse(body(record(encoded, encode=False)), BUCKET, ENV)
        assert batch.packages == {"etl"}

    def test_a_plus_is_a_space_and_an_encoded_plus_is_a_plus(self):
        """``+`` in an event key is a space (S3's encoding); a real ``+`` arrives as %2B. Neither makes a
        valid package name, so such a key names nothing (dropped as malformed), whichever it is."""
        spaced = parse(body(record(f"{ENV}/etl load/metadata.json")), BUCKET, ENV)
        plus = parse(body(record(f"{ENV}/etl+load/metadata.json")), BUCKET, ENV)
        for batch in (spaced, plus):
            assert batch.packages == set() and batch.dropped == {"malformed": 1}
        # and a space in a DAG file name of a mirrored package still names the (valid) package
        mirrored = parse(body(record(f"{ENV}/etl/dags/etl load.json")), BUCKET, ENV, unreleased=True)
        assert mirrored.packages == {"etl"}

    def test_an_sns_envelope_is_unwrapped(self):
        """Without raw message delivery SNS wraps the S3 event in an envelope: read the same."""
        batch = parse(sns(body(record(f"{ENV}/etl/metadata.json"))), BUCKET, ENV)
        assert batch.packages == {"etl"}
        assert parse(sns(TEST_EVENT), BUCKET, ENV).dropped == {"test": 1}
        assert parse(sns("not json"), BUCKET, ENV).dropped == {"malformed": 1}

    def test_several_records_and_duplicates_make_one_answer(self):
        """A message with several records names each package once; duplicates, reordering and the
        ignored keys around them change nothing but the counts."""
        batch = parse(
            body(
                record(f"{ENV}/b_pkg/metadata.json"),
                record(f"{ENV}/a_pkg/_releases/objects/{'d' * 64}"),
                record(f"{ENV}/a_pkg/metadata.json"),
                record(f"{ENV}/b_pkg/metadata.json", name="ObjectRemoved:Delete"),
                record(f"{ENV}/_platform/policy.json"),
                record(f"{ENV}/a_pkg/metadata.json"),
            ),
            BUCKET,
            ENV,
        )
        assert batch.packages == {"a_pkg", "b_pkg"} and batch.policy and batch.ignored == 1
        assert not batch.dropped

    def test_a_message_with_a_foreign_record_and_a_relevant_one_is_acted_on(self):
        """A message counts once: relevant when any record names something, else by its main reason."""
        mixed = parse(body(record("prod/etl/metadata.json"), record(f"{ENV}/etl/metadata.json")), BUCKET, ENV)
        assert mixed.packages == {"etl"} and not mixed.dropped
        foreign = parse(
            body(
                record("prod/etl/metadata.json"), record("prod/x/metadata.json"), record("junk", bucket="o")
            ),
            BUCKET,
            ENV,
        )
        assert foreign.dropped == {"foreign": 1}


class TestDropped:
    @pytest.mark.parametrize(
        "message",
        [
            body(record(f"{ENV}/etl/metadata.json", bucket="someone-elses-bucket")),
            body(record("prod/etl/metadata.json")),
            body(record(f"{ENV}2/etl/metadata.json")),
            body(record(ENV)),
            body(record(f"{ENV}x/_platform/policy.json")),
        ],
        ids=["other-bucket", "other-environment", "environment-lookalike", "no-prefix", "other-policy"],
    )
    def test_other_buckets_and_prefixes_are_foreign(self, message):
        """Events of another bucket or environment are dropped as foreign, whatever their key says."""
        batch = parse(message, BUCKET, ENV)
        assert (batch.packages, batch.policy, batch.dropped) == (set(), False, {"foreign": 1})

    @pytest.mark.parametrize(
        "message",
        [
            "not json",
            "",
            "[1, 2]",
            '"a string"',
            "42",
            "null",
            "{}",
            '{"Records": []}',
            '{"Records": {"a": 1}}',
            '{"Records": ["x"]}',
            '{"Records": [{"eventSource": "aws:s3"}]}',
            body({**record(f"{ENV}/etl/metadata.json"), "eventSource": "aws:sqs"}),
            body({**record(f"{ENV}/etl/metadata.json"), "s3": "x"}),
            body({**record(f"{ENV}/etl/metadata.json"), "eventName": 7}),
            json.dumps(
                {"Records": [{**record("x"), "s3": {"bucket": {"name": BUCKET}, "object": {"key": 1}}}]}
            ),
            body(record(f"{ENV}/Etl/metadata.json")),
            body(record(f"{ENV}/etl")),
            sns("[]"),
            json.dumps({"Type": "Notification", "Message": {"Records": []}}),
            json.dumps({"Type": "SubscriptionConfirmation", "SubscribeURL": "https://sns.example/"}),
            body(record(f"{ENV}/etl/metadata.json")) + " " * MAX_BODY_BYTES,
        ],
        ids=lambda m: m[:40] if len(m) < 1000 else "huge",
    )
    def test_malformed_messages_are_dropped_never_raised(self, message):
        """Not JSON, not an S3 event, fields missing or of the wrong type, a key that is no package, a
        body over SQS's size: dropped as malformed, one count, no exception."""
        batch = parse(message, BUCKET, ENV)
        assert (batch.packages, batch.policy, batch.dropped) == (set(), False, {"malformed": 1})

    def test_the_test_event_is_dropped_as_test(self):
        """The s3:TestEvent S3 sends when the notification is set up is counted as test."""
        assert parse(TEST_EVENT, BUCKET, ENV).dropped == {"test": 1}


# -- the queue, against the moto server ------------------------------------------------------------


@pytest.fixture
def queue_url(s3, bucket) -> str:
    """A queue receiving the bucket's notifications under dev/ (set up directly on moto)."""
    sqs = boto3.client("sqs", endpoint_url=s3.upstream)
    url = sqs.create_queue(QueueName="dags-dev", Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("s3", endpoint_url=s3.upstream).put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": f"{ENV}/"}]}},
                }
            ]
        },
    )
    return url


def test_a_burst_is_one_batch_and_failed_packages_stay_queued(s3, bucket, queue_url):
    """Real notifications: a burst of 25 writes is received as one batch (drained past SQS's 10 per
    receive); deleting it with a failed package keeps exactly that package's messages, which come back
    after the visibility timeout; the rest (the test event, ignored keys) are gone."""
    client = boto3.client("s3", endpoint_url=s3.upstream)
    for i in range(10):
        client.put_object(Bucket=bucket, Key=f"{ENV}/etl/dags/etl_{i}.json", Body=b"{}")
    for name in ("etl", "sales", "etl", "hr"):
        client.put_object(Bucket=bucket, Key=f"{ENV}/{name}/metadata.json", Body=b"{}")
    for i in range(11):
        client.put_object(Bucket=bucket, Key=f"{ENV}/sales/_releases/objects/{i:064x}", Body=b"{}")
    queue = Queue(queue_url, bucket, ENV)
    batch = queue.receive(1)
    assert batch.messages == 26 and batch.packages == {"etl", "sales", "hr"}
    assert batch.dropped == {"test": 1} and batch.ignored == 21 and batch.acted == 4
    s3.clear()
    queue.delete(batch, failed={"etl"})
    assert s3.count("sqs:DeleteMessageBatch") == 3
    again = queue.receive(3)  # after the 1 s visibility timeout
    assert again.messages == 2 and again.packages == {"etl"}
    queue.delete(again)
    assert queue.receive(0).messages == 0


def test_the_policy_message_stays_when_the_policy_failed(s3, bucket, queue_url):
    """A message naming the policy pointer is kept when the policy was not served (POLICY in failed)."""
    boto3.client("s3", endpoint_url=s3.upstream).put_object(
        Bucket=bucket, Key=f"{ENV}/_platform/policy.json", Body=b"{}"
    )
    queue = Queue(queue_url, bucket, ENV)
    batch = queue.receive(1)
    assert batch.policy and batch.messages == 2
    assert len(batch.settled({POLICY})) == 1  # the test event goes, the pointer's message stays
    queue.delete(batch, failed={POLICY})
    assert queue.receive(3).policy


def test_a_queue_that_cannot_be_read_raises_storage_error(s3, bucket, queue_url):
    """A queue that does not exist (or no longer does) is a StorageError naming it, for receive and
    delete alike: the caller falls back to polling."""
    queue = Queue(queue_url, bucket, ENV)
    batch = queue.receive(1)
    boto3.client("sqs", endpoint_url=s3.upstream).delete_queue(QueueUrl=queue_url)
    with pytest.raises(StorageError, match="cannot receive from the queue"):
        queue.receive(0)
    with pytest.raises(StorageError, match=queue_url):
        queue.delete(batch)
