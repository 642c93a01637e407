"""Push delivery in the sidecar: S3 event notifications through a real SQS queue (and an SNS topic)
on the moto server, the real ``airflow-dag-sync`` process where the loop is the point, the reconciler
in-process where one scoped cycle is.

What is held: a publish is served within one long poll, not at the full reconcile's interval; a scoped
cycle lists and touches only the packages named; hostile messages are counted and deleted; a queue
that does not answer falls back to polling (``/readyz`` stays ready); a message stays in the queue
until the reconcile it triggered succeeded; at idle, no S3 request and one receive per 20 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import boto3
import pytest
import test_sync as shared
from test_policy_serve import FIRST, policy_doc, publish_policy, served_id
from test_sync import ENV, Sidecar, manifest, publish_dir, write_package
from test_sync_process import SYNC, events, http_get, served, sync_env, wait_for

from dagfactory_s3.publisher import cli
from dagfactory_s3.serve.events import Queue
from dagfactory_s3.sync.observe import Log, Metrics
from dagfactory_s3.sync.push import Push, scope_of, unserved
from dagfactory_s3.sync.reconcile import Scope

from s3server import free_port

QUEUE = "dags-dev-sidecar"
ACCOUNT = "123456789012"  # moto's


@pytest.fixture
def world(s3, bucket) -> shared.World:
    return shared.World(s3, bucket)


@pytest.fixture
def dags(tmp_path, world) -> Iterator[Path]:
    """The dags folder, watched for the whole test (see test_sync.Watcher)."""
    with shared.watching(tmp_path / "dags", world) as watch:
        yield watch.root


def queue_url(s3) -> str:
    return f"{s3.upstream}/{ACCOUNT}/{QUEUE}"


def make_queue(s3, *, visibility: int = 30) -> str:
    """The sidecar's own queue (created on moto directly, not through the counting proxy)."""
    sqs = boto3.client("sqs", endpoint_url=s3.upstream)
    url = sqs.create_queue(QueueName=QUEUE, Attributes={"VisibilityTimeout": str(visibility)})["QueueUrl"]
    assert url == queue_url(s3)
    return url


def make_topic(s3) -> str:
    """An SNS topic the queue subscribes to without raw message delivery (the deploy kit's fan-out;
    the sidecar reads the SNS envelope)."""
    sqs = boto3.client("sqs", endpoint_url=s3.upstream)
    arn = sqs.get_queue_attributes(QueueUrl=queue_url(s3), AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns = boto3.client("sns", endpoint_url=s3.upstream)
    topic = sns.create_topic(Name="dags-dev")["TopicArn"]
    sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)["SubscriptionArn"]
    assert (
        sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"].get("RawMessageDelivery") != "true"
    )
    return topic


def notify(s3, bucket: str, *, topic: str | None = None, prefix: str = f"{ENV}/") -> None:
    """The bucket's ObjectCreated/ObjectRemoved notifications (under ``prefix``; "" for all) to the topic,
    else straight to the queue. S3 sends an s3:TestEvent when this is set up."""
    events_ = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    rules = {"Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}} if prefix else {}
    if topic:
        config = {"TopicConfigurations": [{"TopicArn": topic, "Events": events_, **rules}]}
    else:
        sqs = boto3.client("sqs", endpoint_url=s3.upstream)
        arn = sqs.get_queue_attributes(QueueUrl=queue_url(s3), AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        config = {"QueueConfigurations": [{"QueueArn": arn, "Events": events_, **rules}]}
    boto3.client("s3", endpoint_url=s3.upstream).put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration=config
    )


def queue_for(s3, bucket: str, *, visibility: int = 30) -> str:
    """A queue the bucket notifies about the environment, emptied of the setup's test event."""
    url = make_queue(s3, visibility=visibility)
    notify(s3, bucket)
    sqs = boto3.client("sqs", endpoint_url=s3.upstream)
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return url


def queue_depth(s3) -> int:
    """Messages in the queue, visible or in flight."""
    attrs = boto3.client("sqs", endpoint_url=s3.upstream).get_queue_attributes(
        QueueUrl=queue_url(s3),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


class Daemon:
    """The real sidecar as a process, with its metrics port; stopped (SIGTERM) when the test ends."""

    def __init__(self, s3, world: shared.World, dags: Path, **env: str) -> None:
        self.port = free_port()
        environ = sync_env(
            s3,
            DAG_BUCKET=world.bucket,
            ENVIRONMENT=ENV,
            DAGS_FOLDER=str(dags),
            DAG_SYNC_METRICS_ADDR=f"127.0.0.1:{self.port}",
            DAG_SYNC_MIRROR_UNRELEASED="false",  # packages are served from their release records only
            **env,
        )
        self.proc = subprocess.Popen(
            [SYNC], env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.out = ""

    def ready(self) -> None:
        wait_for(lambda: http_get(self.port, "/readyz")[0] == 200, what="/readyz")

    def metrics(self) -> str:
        return http_get(self.port, "/metrics")[1]

    def metric(self, line_start: str) -> float:
        """The value of the first sample whose line starts with ``line_start``, else 0."""
        for line in self.metrics().splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self) -> float:
        """SIGTERM; the seconds until the process exited (0 expected)."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(10) == 0
        took = time.monotonic() - start
        self.out, err = self.proc.communicate()
        assert err == ""
        return took

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.out, _ = self.proc.communicate()

    def events(self, name: str) -> list[dict]:
        return [e for e in events(self.out) if e["event"] == name]


@pytest.fixture
def daemon(s3, world, dags) -> Iterator:
    """Starts the sidecar with the given environment; killed if the test did not stop it."""
    started: list[Daemon] = []

    def start(**env: str) -> Daemon:
        started.append(Daemon(s3, world, dags, **env))
        return started[-1]

    yield start
    for d in started:
        d.kill()


def full_and_scoped(lines: list[dict]) -> tuple[list[dict], list[dict]]:
    return [c for c in lines if "scope" not in c], [c for c in lines if c.get("scope") == "packages"]


# -- the process -------------------------------------------------------------------------------------


def test_a_publish_is_served_within_one_long_poll_and_a_retire_removes_it(s3, world, dags, tmp_path, daemon):
    """With a queue and the default 300 s interval: the real publisher's publish lands in the dags folder
    in about a second (one long poll), a second release and a retire too, each by a scoped cycle of
    that package alone; SIGTERM during a long poll stops the sidecar at once."""
    world.examples()
    url = queue_for(s3, world.bucket)
    sidecar = daemon(DAG_SYNC_QUEUE_URL=url)
    sidecar.ready()
    time.sleep(1)  # the long poll is waiting
    src = tmp_path / "src"
    write_package(src, "demo", "ab")
    start = time.monotonic()
    assert publish_dir(world, src, "demo") == 0
    wait_for(lambda: {"demo/dags/demo_a.py", "demo/dags/demo_b.py"} <= set(served(dags)), what="the publish")
    took = time.monotonic() - start
    print(f"publish -> served: {took:.2f} s (the publisher's own requests included)")
    assert took < 15, f"served after {took:.1f} s: not within one long poll"
    write_package(src, "demo", "a", description="v2")
    (src / "demo_b.json").unlink()
    assert publish_dir(world, src, "demo") == 0
    wait_for(lambda: b'"v2"' in served(dags).get("demo/dags/demo_a.json", b""), what="the second release")
    assert "demo/dags/demo_b.json" not in served(dags)
    argv = ["retire", "--bucket", world.bucket, "--environment", ENV, "--package-name", "demo", "--yes"]
    assert cli.main(argv) == 0
    wait_for(lambda: not (dags / "demo").exists(), what="the retire")
    assert sidecar.metric("dagsync_queue_up") == 1.0
    assert sidecar.metric('dagsync_queue_messages_total{result="acted"}') >= 3
    assert sidecar.stop() < 3
    start_line = sidecar.events("start")[0]
    assert start_line["interval"] == 300.0 and start_line["queue_url"] == url
    full, scoped = full_and_scoped(sidecar.events("cycle"))
    assert len(full) == 1  # the start; everything after came from the queue
    assert scoped and all(c["packages"] == ["demo"] and c["why"] == "queue" for c in scoped)
    assert {e["path"] for e in sidecar.events("delete")} >= {"demo/dags/demo_a.json", "demo/dags/demo_b.json"}
    assert not sidecar.events("error")


def test_hostile_messages_are_counted_and_deleted_through_sns(s3, world, dags, daemon):
    """Through an SNS topic without raw delivery (the envelope, end to end), with the bucket's
    notifications unfiltered and another bucket on the same topic: foreign buckets and environments,
    garbage, a body at SQS's size limit, the test events and keys that are no package name are counted
    by reason and deleted, never an error; a publish among them is served."""
    world.release("good", {"good_a.json": manifest("good", "a")})
    other = "someone-elses-dags"
    client = boto3.client("s3", endpoint_url=s3.upstream)
    client.create_bucket(Bucket=other)
    url = make_queue(s3)
    topic = make_topic(s3)
    notify(s3, world.bucket, topic=topic, prefix="")  # every key of the bucket, other environments too
    notify(s3, other, topic=topic)  # another bucket on the same topic (and so a second test event)
    sidecar = daemon(DAG_SYNC_QUEUE_URL=url)
    sidecar.ready()
    sqs = boto3.client("sqs", endpoint_url=s3.upstream)
    for garbage in ("not json", '{"Records": "x"}', "x" * (256 * 1024)):
        sqs.send_message(QueueUrl=url, MessageBody=garbage)
    world.put("prod/good/metadata.json", b"{}")  # another environment of the same bucket
    client.put_object(Bucket=other, Key=f"{ENV}/good/metadata.json", Body=b"{}")  # another bucket
    world.put(f"{ENV}/bad pkg/metadata.json", b"{}")  # "bad+pkg" in the event: no package name
    world.put(f"{ENV}/bad+pkg/metadata.json", b"{}")  # "bad%2Bpkg"
    world.put(f"{ENV}/good/dags/good a.json", b"{}")  # not a commit point: ignored
    world.release("fresh", {"fresh_a.json": manifest("fresh", "a")})
    wait_for(lambda: "fresh/dags/fresh_a.py" in served(dags), timeout=15, what="the publish among them")
    wait_for(lambda: queue_depth(s3) == 0, timeout=15, what="every message deleted")

    def dropped(reason: str) -> float:
        return sidecar.metric(f'dagsync_queue_messages_total{{result="dropped_{reason}"}}')

    assert (dropped("foreign"), dropped("malformed"), dropped("test")) == (2, 5, 2)
    assert sidecar.metric('dagsync_queue_messages_total{result="ignored"}') >= 1
    assert http_get(sidecar.port, "/readyz")[0] == 200
    assert {"good/dags/good_a.json", "fresh/dags/fresh_a.json"} <= set(served(dags))
    sidecar.stop()
    assert not sidecar.events("error") and not sidecar.events("queue_unreachable")


def test_a_queue_that_does_not_answer_falls_back_to_polling(s3, world, dags, daemon):
    """A queue that does not exist: one queue_unreachable line, dagsync_queue_up 0, /readyz ready, and
    polling at the interval still serves a publish; once the queue exists it is read again
    (queue_recovered, a scoped cycle); deleted mid-run, it is unreachable again and polling goes on."""
    world.release("good", {"good_a.json": manifest("good", "a")})
    sidecar = daemon(DAG_SYNC_QUEUE_URL=queue_url(s3), DAG_SYNC_INTERVAL="2")
    sidecar.ready()
    wait_for(lambda: "dagsync_queue_up 0.0" in sidecar.metrics(), what="the queue down")
    world.release("polled", {"polled_a.json": manifest("polled", "a")})
    wait_for(lambda: "polled/dags/polled_a.py" in served(dags), timeout=10, what="polling")
    make_queue(s3)
    notify(s3, world.bucket)
    wait_for(lambda: "dagsync_queue_up 1.0" in sidecar.metrics(), timeout=10, what="the queue back")
    world.release("pushed", {"pushed_a.json": manifest("pushed", "a")})
    wait_for(lambda: "pushed/dags/pushed_a.py" in served(dags), timeout=10, what="push")
    boto3.client("sqs", endpoint_url=s3.upstream).delete_queue(QueueUrl=queue_url(s3))
    wait_for(lambda: "dagsync_queue_up 0.0" in sidecar.metrics(), timeout=10, what="the queue gone")
    world.release("late", {"late_a.json": manifest("late", "a")})
    wait_for(lambda: "late/dags/late_a.py" in served(dags), timeout=10, what="polling again")
    assert http_get(sidecar.port, "/readyz")[0] == 200
    sidecar.stop()
    unreachable = sidecar.events("queue_unreachable")
    assert len(unreachable) == 2 and all(queue_url(s3) in e["error"] for e in unreachable)
    assert len(sidecar.events("queue_recovered")) == 1
    assert any(c.get("packages") == ["pushed"] for c in sidecar.events("cycle"))
    assert not sidecar.events("error")


@pytest.mark.parametrize("args", [("--once",), ("--once", "--dag-id", "good_a")])
def test_once_ignores_the_queue(s3, world, dags, args):
    """--once and --once --dag-id never read the queue: no SQS request, exit 0, the start line says so."""
    world.release("good", {"good_a.json": manifest("good", "a")})
    url = queue_for(s3, world.bucket)
    s3.clear()
    result = subprocess.run(
        [SYNC, *args, "--bucket", world.bucket, "--environment", ENV, "--dags-folder", str(dags)],
        env=sync_env(s3, DAG_SYNC_QUEUE_URL=url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "good/dags/good_a.py" in served(dags)
    assert not [r for r in s3.requests if not r.s3]
    (start,) = [e for e in events(result.stdout) if e["event"] == "start"]
    assert start["queue_url"] == "ignored: --once"


def test_idle_costs_no_s3_request_and_one_receive_per_long_poll(s3, world, dags, daemon):
    """Nothing happening, a queue and the default interval: no S3 request at all between full
    reconciles, and SQS receives no more often than one per 20 s long poll. QUEUE_IDLE_SECONDS
    measures longer (docs/sidecar.md quotes a 60 s run)."""
    seconds = float(os.environ.get("QUEUE_IDLE_SECONDS", "10"))
    world.examples()
    sidecar = daemon(DAG_SYNC_QUEUE_URL=queue_for(s3, world.bucket))
    sidecar.ready()
    wait_for(lambda: s3.count("sqs:ReceiveMessage") >= 1, what="the first long poll")
    s3.clear()
    time.sleep(seconds)
    s3_requests = sum(1 for r in s3.requests if r.s3)
    receives = s3.count("sqs:ReceiveMessage")
    print(
        f"idle {seconds:g} s: {s3_requests} S3 requests, {receives} SQS receives, {len(s3.requests)} in all"
    )
    assert s3_requests == 0
    assert receives <= seconds // 20 + 1
    assert len(s3.requests) == receives
    sidecar.stop()


# -- one scoped cycle, in-process --------------------------------------------------------------------


@pytest.fixture
def sidecar(world, dags) -> Iterator[Sidecar]:
    side = Sidecar(world, dags)
    yield side
    side.reconciler.close()


def snapshot(dags: Path, package: str) -> dict[str, tuple[bytes, int]]:
    files = sorted(p for p in (dags / package).rglob("*") if p.is_file())
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in files}


def test_a_scoped_cycle_lists_and_touches_only_the_named_package(s3, world, sidecar, dags):
    """Both packages changed in S3, the event named one: one LIST of that package's prefix, GETs of its
    objects only; the other keeps its files (bytes and mtimes) and its state until a full cycle."""
    world.release("alpha", {"alpha_a.json": manifest("alpha", "a"), "alpha_b.json": manifest("alpha", "b")})
    world.release("beta", {"beta_a.json": manifest("beta", "a")})
    assert sidecar.cycle().complete
    beta = snapshot(dags, "beta")
    world.release("alpha", {"alpha_a.json": manifest("alpha", "a", description="v2")})
    world.release("beta", {"beta_a.json": manifest("beta", "a", description="v2")})
    s3.clear()
    report = sidecar.reconciler.cycle(Scope(frozenset({"alpha"})))
    assert report.complete and report.failed == [] and report.deleted == 2
    lists = [parse_qs(r.query)["prefix"] for r in s3.requests if r.kind == "LIST"]
    assert lists == [[f"{ENV}/alpha/"]]
    assert all(f"/{ENV}/alpha/" in r.path for r in s3.requests if r.kind == "GET")
    assert set(sidecar.served()) == {
        "alpha/dags/alpha_a.json",
        "alpha/dags/alpha_a.py",
        "beta/dags/beta_a.json",
        "beta/dags/beta_a.py",
    }
    assert b'"v2"' in sidecar.served()["alpha/dags/alpha_a.json"]
    assert snapshot(dags, "beta") == beta
    assert sidecar.metric("dagsync_release_info", package="beta", release_id="r2") == 1  # still r2
    (line,) = [c for c in sidecar.events("cycle") if c.get("scope")]
    assert (line["scope"], line["why"], line["packages"], line["policy"]) == (
        "packages",
        "queue",
        ["alpha"],
        False,
    )
    assert sidecar.cycle().complete
    assert b'"v2"' in sidecar.served()["beta/dags/beta_a.json"]


def test_a_scoped_cycle_removes_a_retired_or_deleted_package(s3, world, sidecar, dags):
    """A tombstone named by an event removes its package at once; a package whose objects are all gone
    too, within the mass-delete guard, which a scoped cycle keeps: vetoed, the package is named as
    failed (its message stays), and served until a tombstone."""
    world.release("small", {"small_a.json": manifest("small", "a")})
    world.release("big", {f"big_{n}.json": manifest("big", n) for n in "abc"})
    world.release("other", {"other_a.json": manifest("other", "a")})
    assert sidecar.cycle().complete
    world.release("small", {}, tombstone=True)
    report = sidecar.reconciler.cycle(Scope(frozenset({"small"})))
    assert report.failed == [] and not (dags / "small").exists()
    for key in world.all_keys():
        if key.startswith(f"{ENV}/big/"):
            world.delete(key)
    report = sidecar.reconciler.cycle(Scope(frozenset({"big"})))
    assert report.complete and report.failed == ["big"] and len(sidecar.events("error")) == 1
    assert "big/dags/big_a.json" in sidecar.served()
    world.release("big", {}, tombstone=True)
    assert sidecar.reconciler.cycle(Scope(frozenset({"big"}))).failed == []
    assert sorted(sidecar.served()) == ["other/dags/other_a.json", "other/dags/other_a.py"]


def test_a_scoped_cycle_hands_a_dag_id_to_its_longer_owner(s3, world, sidecar, dags):
    """``etl`` serves ``etl_sales_load`` until package ``etl_sales`` publishes it: the event names only
    ``etl_sales``, and the scoped cycle takes ``etl`` in, so the DAG id is served once, by its owner."""
    world.release(
        "etl", {"etl_sales_load.json": manifest("etl", "sales_load"), "etl_x.json": manifest("etl", "x")}
    )
    assert sidecar.cycle().complete
    world.release("etl_sales", {"etl_sales_load.json": manifest("etl_sales", "load")})
    report = sidecar.reconciler.cycle(Scope(frozenset({"etl_sales"})))
    assert report.scope is not None and report.scope.packages == {"etl", "etl_sales"}
    assert sorted(p for p in sidecar.served() if p.endswith(".json")) == [
        "etl/dags/etl_x.json",
        "etl_sales/dags/etl_sales_load.json",
    ]


def test_a_scoped_cycle_serves_a_new_policy(s3, world, sidecar, dags):
    """An event on the policy pointer: only the pointer is listed, the policy served as a full cycle
    serves it; a scoped cycle without the policy leaves it alone."""
    world.release("good", {"good_a.json": manifest("good", "a")})
    assert sidecar.cycle().complete
    publish_policy(world, policy_doc("team-page"), FIRST)
    assert sidecar.reconciler.cycle(Scope(frozenset({"good"}))).complete
    assert not (dags / "_platform").exists()
    s3.clear()
    report = sidecar.reconciler.cycle(Scope(policy=True))
    assert report.complete and report.failed == []
    assert [parse_qs(r.query)["prefix"] for r in s3.requests if r.kind == "LIST"] == [
        [f"{ENV}/_platform/policy.json"]
    ]
    assert served_id(dags).startswith(FIRST)


def test_a_message_stays_until_its_reconcile_succeeded(s3, world, sidecar, dags):
    """At least once: an event whose record does not verify is not deleted and comes back after the
    visibility timeout; once the package is published properly its messages go. Duplicate events cost
    one more scoped cycle that writes nothing."""
    world.release("good", {"good_a.json": manifest("good", "a")})
    assert sidecar.cycle().complete
    url = queue_for(s3, world.bucket, visibility=1)
    push = Push(Queue(url, world.bucket, ENV), Log(sidecar.out), Metrics(queue=True))
    stop = threading.Event()

    def serve() -> tuple[set[str], list[str]] | None:
        """What the sidecar's loop does with one batch: a scoped cycle, then delete what it served."""
        batch = push.receive(time.monotonic() + 5, stop)
        assert batch is not None
        if not batch.relevant:
            push.done(batch)
            return None
        report = sidecar.reconciler.cycle(scope_of(batch))
        push.done(batch, unserved(batch, report))
        return batch.packages, report.failed

    def serve_until_empty() -> list[tuple[set[str], list[str]]]:
        results = []
        deadline = time.monotonic() + 15
        while queue_depth(s3) and time.monotonic() < deadline:
            if (result := serve()) is not None:
                results.append(result)
        assert queue_depth(s3) == 0
        return results

    world.put(f"{ENV}/demo/metadata.json", b'{"format": "not a release record"}')
    assert serve() == ({"demo"}, ["demo"])
    assert queue_depth(s3) == 1
    assert serve() == ({"demo"}, ["demo"])  # received again after the visibility timeout
    record = world.release("demo", {"demo_a.json": manifest("demo", "a")})
    results = serve_until_empty()
    assert results and all(r == ({"demo"}, []) for r in results)
    assert "demo/dags/demo_a.py" in sidecar.served()
    added = len(sidecar.events("add"))
    for _ in range(2):
        world.put(f"{ENV}/demo/metadata.json", record.to_json())
    assert all(r == ({"demo"}, []) for r in serve_until_empty())
    assert len(sidecar.events("add")) == added


# -- configuration -----------------------------------------------------------------------------------


def test_a_queue_makes_the_full_interval_300_s_unless_one_is_given(tmp_path, capsys):
    """DAG_SYNC_QUEUE_URL alone: a full reconcile every 300 s; an interval given by flag or variable
    wins; without a queue it stays 30 s. --help shows the setting and that --once ignores it."""
    from dagfactory_s3.sync.main import main, resolve

    base = ["--bucket", "etl-airflow-dags-test", "--environment", ENV, "--dags-folder", str(tmp_path)]
    url = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/{QUEUE}"
    assert resolve(base, {"DAG_SYNC_QUEUE_URL": url}).interval == 300.0
    assert resolve([*base, "--queue-url", url], {}).interval == 300.0
    assert resolve([*base, "--queue-url", url, "--interval", "60"], {}).interval == 60.0
    assert resolve(base, {"DAG_SYNC_QUEUE_URL": url, "DAG_SYNC_INTERVAL": "45"}).interval == 45.0
    assert resolve(base, {}).interval == 30.0 and resolve(base, {}).queue_url is None
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--queue-url DAG_SYNC_QUEUE_URL" in text and "ignored with --once" in text
    assert "default: 30.0; 300.0 with --queue-url" in text
