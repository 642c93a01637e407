"""Sidecar mode, task start: a worker pod's init container, full sync vs its one DAG, at 1,000 and 5,000 DAGs.

With the KubernetesExecutor every task is a fresh pod whose init container fills an empty dags folder.
Side by side in one run, against one moto server on 127.0.0.1 behind the test suite's counting proxy:

* *full*: ``airflow-dag-sync --once`` (every DAG of the environment: what the init container did before);
* *one DAG*: ``airflow-dag-sync --once --dag-id <dag_id>`` (the DAG the pod's task runs, and the policy).

Each row is a fresh process on an empty folder (what a new pod pays): wall seconds of the whole command,
interpreter start included, and the requests the proxy saw; the one-DAG row is the median of
``--rounds`` runs, and its ``fetch`` column is the command's own timing of the fetch (the `dag` event).
The environment is laid out as the publisher lays it out (bench/bundle_bench.py's ``seed``), with a
platform policy published::

    .venv/bin/python -m bench.task_start_bench [--dags 1000 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

from bench.bundle_bench import BUCKET, ENV, ROOT, seed
from dagfactory_s3.serve import policy as policies

sys.path.insert(0, str(ROOT / "tests"))
from s3server import MotoServer, Proxy, aws_env

SYNC = str(Path(sys.executable).parent / "airflow-dag-sync")
PER_PACKAGE = 100


def publish_policy(client) -> None:
    raw = (ROOT / "deploy" / "airflow" / "dagfactory-policy.json").read_bytes()
    entry = policies.PolicyEntry("20260101T000000.000Z-0b0b0b", hashlib.sha256(raw).hexdigest(), len(raw))
    client.put_object(Bucket=BUCKET, Key=policies.object_key(ENV, entry.sha256), Body=raw)
    pointer = policies.PolicyRecord(ENV, entry).with_content(raw)
    client.put_object(Bucket=BUCKET, Key=policies.pointer_key(ENV), Body=pointer.to_json())


def run(proxy: Proxy, folder: Path, *args: str) -> dict:
    folder.mkdir(parents=True)
    env = {**aws_env(proxy.url), "DAG_BUCKET": BUCKET, "ENVIRONMENT": ENV, "DAGS_FOLDER": str(folder)}
    proxy.clear()
    start = time.perf_counter()
    done = subprocess.run([SYNC, "--once", *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"task_start_bench: airflow-dag-sync {' '.join(args)} failed:\n{done.stdout[-2000:]}")
    events = [json.loads(line) for line in done.stdout.splitlines()]
    fetch = next((e["seconds"] for e in events if e["event"] == "dag"), None)
    files = sum(1 for p in folder.rglob("*.json") if "/." not in str(p.relative_to(folder)))
    return {
        "seconds": seconds,
        "fetch": fetch,
        "requests": proxy.count(),
        "LIST": proxy.count("LIST"),
        "GET": proxy.count("GET"),
        "files": files,
    }


def measure(dags: int, rounds: int, server: MotoServer, proxy: Proxy, tmp: Path) -> dict:
    server.reset()
    direct = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1")
    direct.create_bucket(Bucket=BUCKET)
    seed(direct, dags, PER_PACKAGE)
    publish_policy(direct)
    dag_id = f"pkg{dags // PER_PACKAGE // 2:03d}_job042"
    full = run(proxy, tmp / f"full-{dags}")
    ones = [run(proxy, tmp / f"one-{dags}-{i}", "--dag-id", dag_id) for i in range(rounds)]
    one = {k: statistics.median(r[k] for r in ones) for k in ("seconds", "fetch", "requests", "LIST", "GET")}
    one["files"] = ones[0]["files"]
    return {"dags": dags, "full": full, "one": one}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dags", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.update(aws_env("http://unused"))  # credentials for the seeding client (it names the endpoint)
    server = MotoServer()
    server.start()
    proxy = Proxy(server.url)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rows = [measure(n, args.rounds, server, proxy, Path(tmp)) for n in args.dags]
    finally:
        proxy.close()
        server.stop()
    print("| DAGs | init container | requests (LIST + GET) | files | wall (process) | fetch |")
    print("|---:|---|---:|---:|---:|---:|")
    for row in rows:
        full, one = row["full"], row["one"]
        print(
            f"| {row['dags']:,} | full sync (`--once`) | {full['requests']:,} ({full['LIST']} + {full['GET']:,}) "
            f"| {full['files']:,} | {full['seconds']:.2f} s | – |"
        )
        print(
            f"| {row['dags']:,} | one DAG (`--once --dag-id`) | {one['requests']:.0f} ({one['LIST']:.0f} + "
            f"{one['GET']:.0f}) | {one['files']} | {one['seconds']:.2f} s | {one['fetch']:.3f} s |"
        )
    for row in rows:
        print(
            f"{row['dags']:,} DAGs: one DAG is {row['full']['seconds'] / row['one']['seconds']:.1f}x faster, "
            f"{row['full']['requests'] / row['one']['requests']:.0f}x fewer requests"
        )


if __name__ == "__main__":
    main()
