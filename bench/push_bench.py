"""Push delivery against polling (``make bench-push``): publish -> visible at production intervals.

Side by side in one run, real processes on this machine: a moto server on 127.0.0.1 (S3, SNS and SQS:
the bucket's real event notifications go to an SNS topic and from it to one SQS queue per consumer),
the real ``airflow dag-processor`` on SQLite, and either the real ``airflow-dag-sync`` sidecar or the
versioned bundle (``S3ReleaseDagBundle`` inside the dag-processor). Four stacks, run two at a time
(the sidecar pair, then the bundle pair), each with its own S3 server:

* ``sidecar, polling``: DAG_SYNC_INTERVAL 30 s, ``refresh_interval`` 30 s (docs/deploy.md until push);
* ``sidecar, push``: DAG_SYNC_QUEUE_URL (full reconcile every 300 s), ``refresh_interval`` 5 s;
* ``bundle, polling``: the bundle's ``refresh_interval`` 30 s;
* ``bundle, push``: the bundle's ``queue_url``, its ``refresh_interval`` 5 s.

Every stack: ``min_file_process_interval`` 600 s, ``modified_time`` order, 2 parsing processes, and an
environment of ``--packages`` seeded packages of ``--dags`` DAGs (bench/scale_bench.py) plus the package
the trials publish. A trial is timed from the start of ``airflow-dag-publisher publish`` (a subprocess,
as CI runs it) until Airflow's metadata database serves exactly the published manifest (its sha256 is
in the DAG's provenance) or, for a delete, marks the DAG stale. Trials run back to back, ``--trials`` of
each kind (change, new DAG, delete). Then each stack idles ``--idle`` seconds: the dag-processor's CPU
seconds per minute (manager and children), the sidecar's, and the S3 and SQS requests sent.

    .venv/bin/python -m bench.push_bench [--trials 10] [--idle 120] [--packages 4] [--dags 25]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import scale_bench
from bench.bundle_bench import BUCKET, ENV
from bench.processor_scale import Sampled
from bench.task_start_bench import publish_policy
from demo.stack import Settings, Stack, StackError, aws_env, percentile, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from s3server import Proxy

__all__ = ["main"]

PACKAGE = "pkg000"
MODES = ("sidecar, polling", "sidecar, push", "bundle, polling", "bundle, push")


@dataclass
class Live:
    """One stack: the demo's processes, S3 through a counting proxy, optionally a queue per consumer."""

    mode: str
    work: Path
    stack: Stack | None = None
    proxy: Proxy | None = None
    queue_url: str | None = None
    trials: list[dict] = field(default_factory=list)
    idle: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def push(self) -> bool:
        return self.mode.endswith("push")

    @property
    def bundle(self) -> bool:
        return self.mode.startswith("bundle")

    def start(self, packages: int, dags: int, seed: int) -> None:
        refresh = 5 if self.push else 30
        settings = Settings(
            sync_interval=30, refresh_interval=refresh, min_file_process_interval=600,
            min_serialized_dag_update_interval=0,
        )  # fmt: skip
        self.stack = stack = Stack(self.work, settings=settings, bucket=BUCKET, environment=ENV)
        stack.start_s3()
        self.proxy = Proxy(stack.s3_url)
        client = stack.s3_client()
        scale_bench.seed_packages(client, packages + 1, dags, seed)  # pkg001.. (pkg000 is published below)
        publish_policy(client)
        if self.push:
            self.queue_url = subscribe(stack, client)
        scale_bench.write_package(stack.package_dir(PACKAGE), PACKAGE, dags, seed)
        stack.publish(PACKAGE)
        proxied = aws_env(self.proxy.url)  # what the consumers send is counted
        if self.bundle:
            kwargs: dict[str, Any] = {"bucket": BUCKET, "environment": ENV, "refresh_interval": refresh}
            if self.push:
                kwargs["queue_url"] = self.queue_url
            config = [
                {"name": "etl", "classpath": "dagfactory_s3.bundle.S3ReleaseDagBundle", "kwargs": kwargs}
            ]
            extra = {
                "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(config),
                "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(self.work / "bundles"),
                **proxied,
            }
            base = stack.airflow_env
            stack.airflow_env = lambda: {**base(), **extra}  # type: ignore[method-assign]
        else:
            base_aws = stack.aws_env
            stack.aws_env = lambda: proxied  # type: ignore[method-assign]
            stack.start_sync(timeout=300, queue_url=self.queue_url)
            stack.aws_env = base_aws  # type: ignore[method-assign]  # the publisher is not counted
        stack.wait_migrate(stack.start_migrate())
        stack.start_dag_processor()
        expected = (packages + 1) * dags
        wait_for(
            f"{self.mode}: {expected} DAGs served",
            lambda: stack.check_alive() or len(stack.db.active()) >= expected,
            timeout=900,
            poll=1,
        )

    def trial(self, kind: str, i: int, rng: random.Random) -> None:
        folder = self.stack.package_dir(PACKAGE)
        if kind == "change":
            dag_id = f"{PACKAGE}_job000"
            path = folder / f"{dag_id}.json"
            doc = json.loads(path.read_bytes())
            doc["description"] = f"changed {i}"
            path.write_bytes(scale_bench.encode(doc))
        elif kind == "new":
            doc = scale_bench.manifest(PACKAGE, 500 + i, rng)
            dag_id = doc["dag_id"]
            (folder / f"{dag_id}.json").write_bytes(scale_bench.encode(doc))
            (folder / f"{dag_id}.py").write_bytes(scale_bench.stub.render(f"{dag_id}.json"))
        else:
            dag_id = f"{PACKAGE}_job{500 + i:03d}"  # the one the new trial of this round added
            (folder / f"{dag_id}.json").unlink()
            (folder / f"{dag_id}.py").unlink()
        start = time.monotonic()
        published = self.stack.publish(PACKAGE)
        t_published = time.monotonic() - start
        if not published.changed:
            raise StackError(f"{self.mode}: publishing {PACKAGE} changed nothing ({kind} {dag_id})")
        want = self.stack.published_sha256(PACKAGE, dag_id) if kind != "delete" else None

        def visible() -> bool:
            self.stack.check_alive()
            info = self.stack.db.dags(dag_id).get(dag_id)
            if kind == "delete":
                return info is None or info.stale
            return info is not None and not info.stale and info.manifest_sha256 == want

        wait_for(f"{self.mode}: {kind} {dag_id} visible", visible, timeout=600, poll=0.1)
        self.trials.append(
            {"kind": kind, "dag_id": dag_id, "published": t_published, "visible": time.monotonic() - start}
        )

    def run(self, args: argparse.Namespace) -> None:
        try:
            self.start(args.packages, args.dags, args.seed)
            rng = random.Random(args.seed)
            for i in range(args.trials):
                for kind in ("change", "new", "delete"):
                    self.trial(kind, i, rng)
            self.measure_idle(args.idle)
        except StackError as exc:
            tail = exc.proc.tail(30) if exc.proc else ""
            self.error = f"{exc}\n{tail}"
            if self.stack and args.keep_logs:
                shutil.copytree(self.stack.logs, args.keep_logs / self.work.name, dirs_exist_ok=True)
        finally:
            if self.stack:
                self.stack.stop()
            if self.proxy:
                self.proxy.close()

    def measure_idle(self, seconds: float) -> None:
        """CPU per minute of the dag-processor (and sidecar) and requests sent, with nothing published."""
        time.sleep(15)  # let the last trial's parse and reconcile settle
        processor = Sampled(self.stack.procs["airflow-dag-processor"].pid)
        sync = Sampled(self.stack.procs["sync"].pid) if "sync" in self.stack.procs else None
        assert self.proxy is not None
        self.proxy.clear()
        cpu0, sync0, t0 = processor.cpu(), sync.cpu() if sync else 0.0, time.monotonic()
        time.sleep(seconds)
        minutes = (time.monotonic() - t0) / 60
        requests = list(self.proxy.requests)
        self.idle = {
            "seconds": round(minutes * 60),
            "processor_cpu_s_per_min": round((processor.cpu() - cpu0) / minutes, 2),
            "sidecar_cpu_s_per_min": round((sync.cpu() - sync0) / minutes, 2) if sync else None,
            "s3_requests": sum(1 for r in requests if r.s3),
            "sqs_receives": sum(1 for r in requests if r.kind == "sqs:ReceiveMessage"),
        }


def subscribe(stack: Stack, client: Any) -> str:
    """The deploy kit's wiring on the moto server: bucket -> SNS topic -> this consumer's queue (raw)."""
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="demo", aws_secret_access_key="demo", region_name="us-east-1"
    )
    sns = session.client("sns", endpoint_url=stack.s3_url)
    sqs = session.client("sqs", endpoint_url=stack.s3_url)
    topic = sns.create_topic(Name="dag-events")["TopicArn"]
    url = sqs.create_queue(QueueName="consumer", Attributes={"VisibilityTimeout": "120"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    client.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "TopicConfigurations": [
                {
                    "TopicArn": topic,
                    "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": f"{ENV}/"}]}},
                }
            ]
        },
    )
    return url  # the test event S3 sends when the notification is set: the consumer drops it


def report(lives: list[Live], args: argparse.Namespace) -> str:
    lines = [
        f"{(args.packages + 1) * args.dags} DAGs ({args.packages + 1} packages), {args.trials} trials of each kind per stack.",
        "",
        "| stack | kind | n | p50 s | p95 s | max s | p50 publish s |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for live in lives:
        if live.error:
            lines.append(f"| {live.mode} | failed: {live.error.splitlines()[0]} | | | | | |")
            continue
        for kind in ("change", "new", "delete"):
            rows = [t for t in live.trials if t["kind"] == kind]
            if not rows:
                continue
            vis = [t["visible"] for t in rows]
            lines.append(
                f"| {live.mode} | {kind} | {len(rows)} | {percentile(vis, 50):.1f} | {percentile(vis, 95):.1f} "
                f"| {max(vis):.1f} | {statistics.median(t['published'] for t in rows):.1f} |"
            )
    lines += [
        "",
        "| stack, idle | seconds | dag-processor CPU s/min | sidecar CPU s/min | S3 requests | SQS receives |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for live in lives:
        i = live.idle
        if i:
            side = "–" if i["sidecar_cpu_s_per_min"] is None else i["sidecar_cpu_s_per_min"]
            lines.append(
                f"| {live.mode} | {i['seconds']} | {i['processor_cpu_s_per_min']} | {side} | {i['s3_requests']} | {i['sqs_receives']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="trials of each kind per stack")
    parser.add_argument("--idle", type=float, default=120, help="seconds of idle measured per stack")
    parser.add_argument("--packages", type=int, default=4, help="seeded packages besides the published one")
    parser.add_argument("--dags", type=int, default=25, help="DAGs per package")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--json", type=Path, help="also write the trials as JSON here")
    parser.add_argument("--keep-logs", type=Path, help="copy a failed stack's process logs here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="push-bench-") as tmp:
        lives = [Live(mode, Path(tmp) / mode.replace(", ", "-")) for mode in args.modes]
        for pair in (lives[i : i + 2] for i in range(0, len(lives), 2)):
            threads = [threading.Thread(target=live.run, args=(args,)) for live in pair]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    if args.json:
        args.json.write_text(
            json.dumps(
                [{"mode": x.mode, "trials": x.trials, "idle": x.idle, "error": x.error} for x in lives],
                indent=2,
            )
        )
    print(report(lives, args))
    return 1 if any(live.error for live in lives) else 0


if __name__ == "__main__":
    raise SystemExit(main())
