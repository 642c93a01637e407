"""``policy plan`` benchmark: how long checking a new platform policy against every served DAG takes.

Builds ``--packages`` x ``--dags`` served manifests in a moto server on 127.0.0.1 (each package
published by the real publisher, in this process), publishes a first policy, then runs
``airflow-dag-publisher policy plan`` as a subprocess through the counting proxy of the test suite::

    .venv/bin/python -m bench.policy_plan_bench [--packages 50 --dags 100] [--parallelism 8 32]

One DAG in 100 pulls its image from a legacy registry that the new policy drops, so the plan reads
every manifest and reports those. Times include interpreter start-up; moto is slower than S3 per
request and shares the machine with this process: read the request counts, and the seconds as an
upper bound.
"""

from __future__ import annotations

import argparse
import contextlib
import io
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
from dagfactory_s3.publisher import cli  # noqa: E402

from s3server import MotoServer, Proxy, aws_env  # noqa: E402

BUCKET = "bench-policy-dags"
ENV = "dev"
KINDS = ("GET", "LIST", "PUT")
CURRENT = {"image_registries": ["registry.example.com", "legacy.example.com"]}
NEW = {"image_registries": ["registry.example.com"]}


def write_package(folder: Path, package: str, dags: int) -> None:
    folder.mkdir(parents=True)
    for i in range(dags):
        dag_id = f"{package}_job{i:03d}"
        registry = "legacy.example.com" if i % 100 == 7 else "registry.example.com"
        doc = {
            "schema_version": 1,
            "package": package,
            "dag_id": dag_id,
            "schedule": "0 3 * * *",
            "start_date": "2024-01-01",
            "job": {"name": "run", "image": f"{registry}/{package}:v1.{i % 7}", "command": ["bench", str(i)]},
        }
        (folder / f"{dag_id}.json").write_text(json.dumps(doc, indent=2) + "\n")
        (folder / f"{dag_id}.py").write_bytes(stub.render(f"{dag_id}.json"))


def run(*argv: str) -> int:
    """The publisher's CLI in this process, its output kept out of the report."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        code = cli.main(list(argv))
    if code not in (0, 2):
        raise SystemExit(f"{argv[:2]} failed ({code}): {err.getvalue()}")
    return code


def build(tmp: Path, packages: int, dags: int) -> float:
    """Publish every package (the real publisher, one release each) and the current policy."""
    start = time.perf_counter()
    target = ("--bucket", BUCKET, "--environment", ENV)
    for p in range(packages):
        package = f"bench_p{p:03d}"
        write_package(tmp / package, package, dags)
        run(
            "publish",
            *target,
            "--package-name",
            package,
            "--dag-path",
            str(tmp / package),
            "--parallelism",
            "32",
        )
    (tmp / "current.json").write_text(json.dumps(CURRENT))
    (tmp / "new.json").write_text(json.dumps(NEW))
    run("policy", "publish", *target, "--file", str(tmp / "current.json"))
    return time.perf_counter() - start


def measure(proxy: Proxy, tmp: Path, parallelism: int) -> dict[str, float | int]:
    proxy.clear()
    command = [
        *(sys.executable, "-m", "dagfactory_s3.publisher.cli", "policy", "plan"),
        *("--bucket", BUCKET, "--environment", ENV, "--file", str(tmp / "new.json")),
        *("--parallelism", str(parallelism), "--output", "json"),
    ]
    start = time.perf_counter()
    result = subprocess.run(command, env=aws_env(proxy.url), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 2:
        raise SystemExit(f"policy plan exited {result.returncode}: {result.stderr}")
    data = json.loads(result.stdout)
    return {
        "parallelism": parallelism,
        "seconds": round(seconds, 2),
        "dags_checked": data["dags_checked"],
        "refused": len(data["refused"]),
        "requests": proxy.count(),
        **{k: proxy.count(k) for k in KINDS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=50)
    parser.add_argument("--dags", type=int, default=100, help="DAGs per package")
    parser.add_argument("--parallelism", type=int, nargs="+", default=[8, 32])
    args = parser.parse_args()

    server = MotoServer()
    server.start()
    proxy = Proxy(server.url)
    saved = dict(os.environ)
    try:
        os.environ.update(aws_env(server.url))  # the build goes straight to moto, uncounted
        boto3.client("s3", endpoint_url=server.url).create_bucket(Bucket=BUCKET)
        with tempfile.TemporaryDirectory() as name:
            tmp = Path(name)
            built = build(tmp, args.packages, args.dags)
            rows = [measure(proxy, tmp, n) for n in args.parallelism]
    finally:
        os.environ.clear()
        os.environ.update(saved)
        proxy.close()
        server.stop()

    served = args.packages * args.dags
    print(f"built {served} served DAGs ({args.packages} packages x {args.dags}) in {built:.0f} s")
    print("| --parallelism | seconds | DAGs checked | refused | requests | GET | LIST | PUT |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['parallelism']} | {r['seconds']} | {r['dags_checked']} | {r['refused']} | {r['requests']} "
            f"| {r['GET']} | {r['LIST']} | {r['PUT']} |"
        )
    print(
        json.dumps(
            {"packages": args.packages, "dags": args.dags, "build_seconds": round(built, 1), "runs": rows}
        )
    )


if __name__ == "__main__":
    main()
