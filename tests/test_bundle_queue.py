"""Push delivery in the versioned DAG bundle: the S3 event notifications of an SQS queue tell a refresh
which packages to read (``queue_url``; dagfactory_s3.serve.versions). Against the moto server over HTTP,
with a real bucket notification to a real queue; requests counted at the proxy (S3's by kind, SQS's by
operation). Packages are published with the real publisher.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

pytest.importorskip("airflow", reason="needs the [airflow] extra")

from test_bundle import ENV, IMAGE, SEEDER, current, image_of, package_dir, publish

from dagfactory_s3.bundle import S3ReleaseDagBundle
from dagfactory_s3.errors import ConfigError, StorageError
from dagfactory_s3.publisher import cli

from conftest import ROOT
from s3server import Proxy, Request

pytestmark = [pytest.mark.airflow]

PP = "pipeline_processing"
POLICY = ROOT / "deploy" / "airflow" / "dagfactory-policy.json"


def s3_reads(proxy: Proxy) -> list[Request]:
    """What was asked of S3 (the bundle only reads: GET and LIST)."""
    with proxy._lock:
        return [r for r in proxy.requests if r.s3]


def listed_prefixes(proxy: Proxy) -> list[str]:
    """The prefix of every LIST request, decoded."""
    from urllib.parse import parse_qs

    return [parse_qs(r.query).get("prefix", [""])[0] for r in s3_reads(proxy) if r.kind == "LIST"]


def notify(s3: Proxy, bucket: str, *, prefix: str | None = f"{ENV}/", visibility: int = 30) -> str:
    """A queue receiving the bucket's ObjectCreated/ObjectRemoved events under ``prefix`` (every key when
    None) through a real bucket notification; its URL. S3 sends it an ``s3:TestEvent`` at once."""
    sqs = boto3.client("sqs", endpoint_url=s3.upstream)
    url = sqs.create_queue(QueueName="etl-bundle", Attributes={"VisibilityTimeout": str(visibility)})[
        "QueueUrl"
    ]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    config: dict = {"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}
    if prefix:
        config["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}
    boto3.client("s3", endpoint_url=s3.upstream).put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [config]}
    )
    return url


def queued(s3: Proxy, url: str) -> tuple[int, int]:
    """Messages not deleted yet: (waiting, received and not deleted)."""
    attrs = boto3.client("sqs", endpoint_url=s3.upstream).get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def in_queue(s3: Proxy, url: str) -> int:
    return sum(queued(s3, url))


def until(check: Callable[[], object], seconds: float = 10, every: float = 0.1) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)


def refresh_until(b: S3ReleaseDagBundle, check: Callable[[], object], seconds: float = 10) -> None:
    """Airflow's periodic refresh, every 0.1 s, until ``check`` holds (an event takes a moment to arrive)."""

    def step() -> object:
        b.refresh()
        return check()

    until(step, seconds)


def refresh_until_changed(b: S3ReleaseDagBundle, seconds: float = 10) -> str:
    before = current(b).version
    refresh_until(b, lambda: current(b).version != before, seconds)
    return current(b).version


def drained(s3: Proxy, b: S3ReleaseDagBundle, url: str) -> None:
    """Refresh until every message is deleted (the notification's s3:TestEvent, events of setup)."""
    refresh_until(b, lambda: in_queue(s3, url) == 0)


def digest(version: str) -> str:
    return version.partition("-")[2]


@pytest.fixture
def bundles(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., S3ReleaseDagBundle]]:
    """Make bundles whose Airflow storage is a given folder, with a 1 s long poll unless ``wait`` says;
    their pollers are stopped at the end."""
    made: list[S3ReleaseDagBundle] = []

    def make(storage: Path, bucket: str, *, wait: int = 1, **kwargs: object) -> S3ReleaseDagBundle:
        monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH", str(storage))
        b = S3ReleaseDagBundle(name="etl", bucket=bucket, environment=ENV, **kwargs)
        b.versions.wait_seconds = wait
        b.versions.retry_seconds = 0.2
        made.append(b)
        return b

    yield make
    for b in made:
        b.versions.close()


def full_version(bundles: Callable[..., S3ReleaseDagBundle], storage: Path, bucket: str) -> str:
    """What a full listing computes now: a fresh bundle without a queue, on a disk of its own."""
    b = bundles(storage, bucket)
    b.initialize()
    return current(b).version


# -- at idle, nothing is asked of S3 -----------------------------------------------------------------


def test_with_nothing_published_a_refresh_asks_s3_nothing(s3, bucket, tmp_path, bundles):
    """After the first (full) refresh, refreshes while nothing is published make no S3 request and keep
    the version; the poller holds one 20 s long poll open (at most one receive in 3 s)."""
    publish(bucket, package_dir(tmp_path, SEEDER), SEEDER)
    url = notify(s3, bucket)
    processor = bundles(tmp_path / "processor", bucket, queue_url=url, wait=20)
    processor.initialize()
    processor.refresh()  # the first in the process: a full listing, and the poller starts
    version = current(processor).version
    drained(s3, processor, url)  # the s3:TestEvent: received, dropped, deleted (no S3 request)

    s3.clear()
    for _ in range(30):
        processor.refresh()
        time.sleep(0.1)
    assert current(processor).version == version
    assert s3_reads(s3) == []
    assert s3.count("sqs:ReceiveMessage") <= 1

    processor.versions.close()
    boto3.client("sqs", endpoint_url=s3.upstream).send_message(QueueUrl=url, MessageBody="wake up")
    until(lambda: not [t for t in threading.enumerate() if t.name.startswith("dagfactory-s3-events")])


# -- a publish refreshes only its package ------------------------------------------------------------


def test_a_publish_refreshes_only_its_package(s3, bucket, tmp_path, bundles):
    """A publish of reporting_seeder: the next refresh after its event lists only that package's prefix
    and gives a new version naming the new release; pipeline_processing's line is unchanged, and the
    version's digest is what a full listing computes at that moment."""
    publish(bucket, package_dir(tmp_path, SEEDER), SEEDER)
    publish(bucket, package_dir(tmp_path, PP), PP)
    url = notify(s3, bucket)
    processor = bundles(tmp_path / "processor", bucket, queue_url=url)
    processor.initialize()
    processor.refresh()
    drained(s3, processor, url)
    v1 = current(processor)

    publish(bucket, package_dir(tmp_path, SEEDER, "2.4.2"), SEEDER)
    s3.clear()
    refresh_until_changed(processor)
    v2 = current(processor)
    assert set(listed_prefixes(s3)) == {f"{ENV}/{SEEDER}/"}
    assert v2.data["releases"][SEEDER] != v1.data["releases"][SEEDER]
    assert v2.data["releases"][PP] == v1.data["releases"][PP]
    assert v2.data["contents"][PP] == v1.data["contents"][PP]
    assert image_of(processor.path, "reporting_seeder_refresh_all") == IMAGE + "2.4.2"
    assert digest(v2.version) == digest(full_version(bundles, tmp_path / "full", bucket))
    until(lambda: in_queue(s3, url) == 0)  # deleted once the refresh served it


def test_retire_a_deleted_record_and_a_policy_arrive_as_events(s3, bucket, tmp_path, bundles):
    """A policy publish lists only the policy's folder; a retire (tombstone) and a release record deleted
    outright each list only their package; each version is what a full listing computes."""
    publish(bucket, package_dir(tmp_path, SEEDER), SEEDER)
    publish(bucket, package_dir(tmp_path, PP), PP)
    url = notify(s3, bucket)
    # every DAG of a package may go at once here: the mass-delete guard is not what is tested
    processor = bundles(tmp_path / "processor", bucket, queue_url=url, max_delete_fraction=1.0)
    processor.initialize()
    processor.refresh()
    drained(s3, processor, url)
    full = iter(tmp_path / f"full-{i}" for i in range(3))

    argv = ["--bucket", bucket, "--environment", ENV]
    assert cli.main(["policy", "publish", *argv, "--file", str(POLICY)]) == 0
    s3.clear()
    version = refresh_until_changed(processor)
    assert set(listed_prefixes(s3)) == {f"{ENV}/_platform/"}
    assert "_platform" in current(processor).data["releases"]
    assert (processor.path / "_platform" / "policy.json").read_bytes() == POLICY.read_bytes()
    assert digest(version) == digest(full_version(bundles, next(full), bucket))

    assert cli.main(["retire", *argv, "--package-name", PP, "--yes"]) == 0
    s3.clear()
    version = refresh_until_changed(processor)
    assert set(listed_prefixes(s3)) == {f"{ENV}/{PP}/"}
    assert not (processor.path / PP).exists()
    assert digest(version) == digest(full_version(bundles, next(full), bucket))

    boto3.client("s3", endpoint_url=s3.upstream).delete_object(
        Bucket=bucket, Key=f"{ENV}/{SEEDER}/metadata.json"
    )
    s3.clear()
    version = refresh_until_changed(processor)
    assert set(listed_prefixes(s3)) == {f"{ENV}/{SEEDER}/"}
    assert SEEDER not in current(processor).data["releases"]
    assert digest(version) == digest(full_version(bundles, next(full), bucket))
    until(lambda: in_queue(s3, url) == 0)


# -- messages that name nothing ------------------------------------------------------------------------


def test_foreign_and_malformed_messages_are_dropped_and_deleted(s3, bucket, tmp_path, bundles):
    """Events of another environment, of another bucket, of an object that is not a commit point, and
    messages that are not S3 events: no S3 request, the same version, every message deleted."""
    publish(bucket, package_dir(tmp_path, SEEDER), SEEDER)
    url = notify(s3, bucket, prefix=None)  # every key of the bucket: other environments' events too
    processor = bundles(tmp_path / "processor", bucket, queue_url=url)
    processor.initialize()
    processor.refresh()
    drained(s3, processor, url)
    version = current(processor).version

    upstream = boto3.client("s3", endpoint_url=s3.upstream)
    upstream.put_object(Bucket=bucket, Key=f"prod/{SEEDER}/metadata.json", Body=b"{}")  # another env
    upstream.put_object(Bucket=bucket, Key=f"{ENV}/{SEEDER}/dags/planted.json", Body=b"{}")  # not a commit
    other_bucket = json.dumps(
        {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "bucket": {"name": "someone-else"},
                        "object": {"key": f"{ENV}/{SEEDER}/metadata.json"},
                    },
                }
            ]
        }
    )
    sqs = boto3.client("sqs", endpoint_url=s3.upstream)
    for body in [
        "not json",
        "[]",
        '{"Records": "x"}',
        '{"Type": "Notification", "Message": "{"}',
        other_bucket,
    ]:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    s3.clear()
    drained(s3, processor, url)
    assert s3_reads(s3) == []
    assert current(processor).version == version


# -- the queue down, a refresh failing ------------------------------------------------------------------


def test_with_the_queue_down_refreshes_fall_back_to_full_listings(
    s3, bucket, tmp_path, bundles, caplog, monkeypatch
):
    """The queue cannot be read: one error line, every refresh lists the environment, and a publish is
    served by the next one; when the queue answers again, refreshes ask S3 nothing at idle."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # each failure at once, not after botocore's retries
    caplog.set_level(logging.INFO, logger="dagfactory_s3.bundle")
    publish(bucket, package_dir(tmp_path, SEEDER), SEEDER)
    url = notify(s3, bucket)
    processor = bundles(tmp_path / "processor", bucket, queue_url=url)
    processor.initialize()
    processor.refresh()
    drained(s3, processor, url)

    def down(r: Request, i: int) -> str | None:
        return None if r.s3 else "500"

    s3.fault = down
    until(lambda: "event queue not read" in caplog.text)
    publish(bucket, package_dir(tmp_path, SEEDER, "2.4.2"), SEEDER)
    s3.clear()
    s3.fault = down
    processor.refresh()  # at once, not after full_refresh_interval
    assert image_of(processor.path, "reporting_seeder_refresh_all") == IMAGE + "2.4.2"
    assert listed_prefixes(s3) == [f"{ENV}/"]
    time.sleep(1)  # the poller retries every 0.2 s here: still one line
    assert caplog.text.count("event queue not read") == 1

    s3.fault = None
    until(lambda: "answers again" in caplog.text)
    drained(s3, processor, url)  # the publish's events, read late: its package listed once more
    s3.clear()
    for _ in range(10):
        processor.refresh()
        time.sleep(0.1)
    assert s3_reads(s3) == []


def test_messages_stay_in_the_queue_when_the_refresh_that_used_them_failed(
    s3, bucket, tmp_path, bundles, monkeypatch
):
    """A refresh that fails (its LIST) or cannot serve the package an event named (its record's GET)
    deletes no message; once S3 answers, the message comes back and its refresh serves the release."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # each failure at once, not after botocore's retries
    publish(bucket, package_dir(tmp_path, SEEDER), SEEDER)
    url = notify(s3, bucket, visibility=1)
    processor = bundles(tmp_path / "processor", bucket, queue_url=url)
    processor.initialize()
    processor.refresh()
    drained(s3, processor, url)
    version = current(processor).version

    publish(bucket, package_dir(tmp_path, SEEDER, "2.4.2"), SEEDER)
    record = f"/{bucket}/{ENV}/{SEEDER}/metadata.json"

    for kind in ("LIST", "GET"):
        s3.clear()
        s3.fault = lambda r, i, kind=kind: "500" if r.kind == kind else None
        failed = 0
        deadline = time.monotonic() + 10
        while not any(r.kind == kind and r.path in (f"/{bucket}", record) for r in s3_reads(s3)):
            assert time.monotonic() < deadline, "no refresh read the event's package"
            try:
                processor.refresh()
            except StorageError:
                failed += 1
            time.sleep(0.1)
        assert bool(failed) == (kind == "LIST"), (
            "a failed LIST fails the refresh; a failed record, its package"
        )
        assert current(processor).version == version
        assert in_queue(s3, url) >= 1, "not deleted"

    s3.fault = None
    refresh_until_changed(processor)  # the message is back after its visibility timeout (1 s here)
    assert image_of(processor.path, "reporting_seeder_refresh_all") == IMAGE + "2.4.2"
    drained(s3, processor, url)


# -- one poller, in the process that refreshes -------------------------------------------------------


def test_a_forked_child_neither_polls_nor_deletes(s3, bucket, tmp_path, bundles):
    """A child forked while the parent's poller runs and holds a received event (what the dag-processor's
    parsing processes are): its refresh is a full listing, it starts no poller and deletes nothing; the
    parent's next refresh serves the event and deletes it."""
    publish(bucket, package_dir(tmp_path, SEEDER), SEEDER)
    url = notify(s3, bucket)
    processor = bundles(tmp_path / "processor", bucket, queue_url=url)
    processor.initialize()
    processor.refresh()
    drained(s3, processor, url)
    publish(bucket, package_dir(tmp_path, SEEDER, "2.4.2"), SEEDER)
    until(lambda: queued(s3, url)[0] == 0 and queued(s3, url)[1] > 0)  # the parent's poller holds them

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, and never return into pytest
        code = 1
        try:
            processor.refresh()
            report = {
                "threads": sorted(t.name for t in threading.enumerate()),
                "lists": processor.requests["LIST"],
                "image": image_of(processor.path, "reporting_seeder_refresh_all"),
            }
            os.write(write, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    deadline = time.monotonic() + 30
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            pytest.fail("the child's refresh hung")
        time.sleep(0.05)
    report = json.loads(os.read(read, 65536) or b"{}")
    os.close(read)
    assert [t for t in report["threads"] if t.startswith("dagfactory-s3-events")] == []
    assert report["image"] == IMAGE + "2.4.2", "the child refreshed from a full listing"
    assert in_queue(s3, url) >= 1, "the child deleted nothing"
    processor.refresh()
    until(lambda: in_queue(s3, url) == 0)


# -- configuration ---------------------------------------------------------------------------------------


def test_the_documented_config_makes_a_bundle_with_a_queue(s3, bucket, monkeypatch):
    """docs/bundle.md's dag_bundle_config_list, read by Airflow's own bundle manager, gives a bundle with
    its queue and full-refresh interval; bad values are clear errors."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    doc = (ROOT / "docs" / "bundle.md").read_text()
    example = re.search(r"dag_bundle_config_list = (\[.*?\}\}\])", doc, re.S)
    assert example, "docs/bundle.md has the example config"
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", example.group(1))
    [made] = DagBundlesManager().get_all_dag_bundles()
    assert isinstance(made, S3ReleaseDagBundle)
    kwargs = json.loads(example.group(1))[0]["kwargs"]
    assert made.versions.queue_url == kwargs["queue_url"]
    assert made.versions.full_refresh_interval == kwargs.get("full_refresh_interval", 300)
    assert made.refresh_interval == kwargs["refresh_interval"]

    base = {"name": "etl", "bucket": bucket, "environment": ENV}
    with pytest.raises(ConfigError, match="full_refresh_interval needs queue_url"):
        S3ReleaseDagBundle(**base, full_refresh_interval=60)
    with pytest.raises(ConfigError, match="full_refresh_interval must be a number of seconds > 0, got 0"):
        S3ReleaseDagBundle(**base, queue_url="https://sqs/q", full_refresh_interval=0)
    with pytest.raises(ConfigError, match="queue_url must be the URL of an SQS queue"):
        S3ReleaseDagBundle(**base, queue_url="")
