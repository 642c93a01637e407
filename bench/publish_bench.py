"""Publisher benchmark: 500 DAGs cold, then one changed, then none, vs ``aws s3 sync`` in the same run.

Both tools run as real subprocesses against a moto S3 server on 127.0.0.1, through the counting proxy
of the test suite, so request counts are what each tool actually sends. Run::

    .venv/bin/python -m bench.publish_bench [--dags 500]

Times include process start-up (the way CI runs either tool). moto is slower than S3 per request and
runs on the same machine, so compare the two columns, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from dagfactory_s3 import stub  # noqa: E402

from s3server import MotoServer, Proxy, aws_env  # noqa: E402

PACKAGE = "bench_pkg"
BUCKET = "bench-dags"
KINDS = ("PUT", "GET", "LIST", "HEAD", "DELETE", "POST")


def write_dags(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        dag_id = f"{PACKAGE}_job{i:05d}"
        doc = {
            "schema_version": 1,
            "package": PACKAGE,
            "dag_id": dag_id,
            "schedule": "0 3 * * *" if i % 2 else None,
            "start_date": "2024-01-01",
            "job": {
                "name": "run",
                "image": f"registry.example.com/bench:v1.{i % 7}",
                "command": ["bench", "run", str(i)],
            },
        }
        (folder / f"{dag_id}.json").write_text(json.dumps(doc, indent=2) + "\n")
        (folder / f"{dag_id}.py").write_bytes(stub.render(f"{dag_id}.json"))


def change_one(folder: Path, i: int, text: str) -> None:
    path = folder / f"{PACKAGE}_job{i:05d}.json"
    doc = json.loads(path.read_text())
    doc["description"] = text
    path.write_text(json.dumps(doc, indent=2) + "\n")


def measure(proxy: Proxy, command: list[str]) -> dict[str, float | int]:
    proxy.clear()
    start = time.perf_counter()
    result = subprocess.run(command, env=aws_env(proxy.url), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{command[:3]} failed: {result.stderr}")
    return {"seconds": round(seconds, 2), "requests": proxy.count(), **{k: proxy.count(k) for k in KINDS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dags", type=int, default=500)
    parser.add_argument("--write-doc", action="store_true", help="append the results to docs/benchmarks.md")
    args = parser.parse_args()

    server = MotoServer()
    server.start()
    proxy = Proxy(server.url)
    try:
        boto3.client(
            "s3",
            endpoint_url=server.url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        ).create_bucket(Bucket=BUCKET)
        with tempfile.TemporaryDirectory() as tmp:
            ours, theirs = Path(tmp) / "ours", Path(tmp) / "theirs"
            write_dags(ours, args.dags)
            write_dags(theirs, args.dags)
            publish = [
                sys.executable,
                "-m",
                "dagfactory_s3.publisher.cli",
                "publish",
                "--bucket",
                BUCKET,
                "--environment",
                "dev",
                "--package-name",
                PACKAGE,
                "--dag-path",
                str(ours),
                "--parallelism",
                "16",
            ]
            sync = [
                str(Path(sys.executable).parent / "aws"),
                "s3",
                "sync",
                str(theirs),
                f"s3://{BUCKET}/synced/{PACKAGE}/dags/",
                "--delete",
                "--only-show-errors",
            ]
            rows = []
            for step in ("cold", "one changed", "unchanged"):
                if step == "one changed":
                    change_one(ours, 7, "changed")
                    change_one(theirs, 7, "changed")
                    os.utime(theirs / f"{PACKAGE}_job00007.json")
                rows.append((step, measure(proxy, publish), measure(proxy, sync)))
    finally:
        proxy.close()
        server.stop()

    lines = [
        f"{args.dags} DAGs (manifest + stub each: {2 * args.dags} files), one package, moto server over HTTP on 127.0.0.1.",
        "",
        "| step | tool | seconds | requests | PUT | GET | LIST | DELETE |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for step, a, b in rows:
        for tool, m in (("airflow-dag-publisher publish", a), ("aws s3 sync --delete", b)):
            lines.append(
                f"| {step} | {tool} | {m['seconds']} | {m['requests']} | {m['PUT']} | {m['GET']} | {m['LIST']} | {m['DELETE']} |"
            )
    table = "\n".join(lines)
    print(table)
    print(json.dumps([{"step": s, "publish": a, "aws_s3_sync": b} for s, a, b in rows]))
    if args.write_doc:
        doc = ROOT / "docs" / "benchmarks.md"
        section = (
            "\n## Publisher\n\n"
            "Command: `.venv/bin/python -m bench.publish_bench --dags 500` (both tools as subprocesses, same run, "
            "requests counted by the test proxy; times include interpreter start-up).\n\n" + table + "\n"
        )
        with doc.open("a", encoding="utf-8") as handle:
            if doc.stat().st_size == 0:
                handle.write("# Benchmarks\n")
            handle.write(section)


if __name__ == "__main__":
    main()
