"""``make bench-scale``: the S3 side of the platform at 5,000 DAGs (50 packages x 100), one run, side by side.

One moto server on 127.0.0.1 behind the test suite's counting proxy. The environment is built
deterministically (seeded): 49 packages laid out as the publisher lays them out (bench/bundle_bench.py),
each DAG with 1-5 tasks and a mix of the manifest's features, a platform policy, and one package of
100 DAGs published by the real ``airflow-dag-publisher``. Measured, each a fresh process where a
process is what runs in production (wall time includes interpreter start):

* **publish** one package of 100 DAGs: cold (its first release), one manifest changed, nothing changed;
* **sidecar** (``airflow-dag-sync --once`` on a persistent dags folder and state, as after a restart):
  cold sync, a no-op cycle, a cycle after one package changed; requests and peak RSS (``/usr/bin/time``);
* **worker pod** start (``--once --dag-id``) on an empty folder;
* **versioned bundle** (``ReleaseVersions``, in this process): first refresh, refresh with nothing
  changed, refresh after one package changed (each new version writes its index), a task start
  (the version's tree, then the one manifest the task's stub parses) on a fresh and on a warm disk,
  and on a fresh disk without the version index (the version rebuilt from every package's history).

Against the targets of docs/benchmarks.md ("5,000 DAGs"): a no-op sidecar cycle makes at most
ceil(objects/1000) LISTs and 0 GETs; the sidecar's peak RSS stays under 150 MiB; a bundle refresh with
nothing changed makes at most ceil(objects/1000) + 1 requests; a bundle task start on a fresh disk
makes at most 3. The dag-processor at the same size is ``bench/processor_scale.py`` (the second half
of ``make bench-scale``).

    .venv/bin/python -m bench.scale_bench [--packages 50] [--dags 100] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

from bench import bundle_bench
from bench.bundle_bench import BUCKET, ENV, ROOT, put_all, release_objects
from bench.task_start_bench import publish_policy

sys.path.insert(0, str(ROOT / "tests"))
from dagfactory_s3 import pending, stub
from dagfactory_s3.serve.versions import ReleaseVersions

from s3server import MotoServer, Proxy, aws_env

BIN = Path(sys.executable).parent
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


def manifest(package: str, i: int, rng: random.Random, tag: str = "1.0.0") -> dict:
    """One DAG of 1-5 tasks with a seeded mix of features (graphs, env, resources, params, schedules)."""
    n = rng.randint(1, 5)
    tasks = []
    for t in range(n):
        task: dict = {"task_id": f"step{t}", "command": ["python", "-m", f"{package}.step{t}"]}
        if t:
            task["depends_on"] = [f"step{rng.randrange(t)}"]
        if rng.random() < 0.5:
            task["env"] = {"LOG_LEVEL": "INFO", "RUN_DATE": "{{ ds }}"}
        if rng.random() < 0.4:
            task["resources"] = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}
        tasks.append(task)
    doc: dict = {
        "schema_version": 1,
        "package": package,
        "dag_id": f"{package}_job{i:03d}",
        "description": f"scale bench DAG {i} of {package}",
        "schedule": rng.choice(["0 3 * * *", "@daily", "*/30 * * * *", None]),
        "start_date": "2024-01-01",
        "catchup": False,
        "tags": [package, "bench"],
        "task_defaults": {"image": f"{IMAGE}/{package}:{tag}", "retries": rng.randint(0, 3)},
        "tasks": tasks,
    }
    if rng.random() < 0.3:
        doc["params"] = {"day": {"type": "string", "default": "2024-01-01"}}
    return doc


def package_docs(package: str, dags: int, seed: int, tag: str = "1.0.0") -> dict[str, dict]:
    rng = random.Random(f"{seed}-{package}")
    return {f"dags/{package}_job{i:03d}.json": manifest(package, i, rng, tag) for i in range(dags)}


def encode(doc: dict) -> bytes:
    return (json.dumps(doc, indent=2) + "\n").encode()


def seed_packages(client, packages: int, dags: int, seed: int) -> list[tuple[str, bytes]]:
    objects: list[tuple[str, bytes]] = []
    for p in range(1, packages):  # pkg000 is published by the real publisher
        package = f"pkg{p:03d}"
        docs = package_docs(package, dags, seed)
        release_id = f"20260101T000000.{p % 1000:03d}Z-{p:06x}"
        objects += release_objects(package, release_id, {k: encode(v) for k, v in docs.items()})
    put_all(client, objects)
    return objects


def write_package(folder: Path, package: str, dags: int, seed: int, tag: str = "1.0.0") -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for rest, doc in package_docs(package, dags, seed, tag).items():
        name = rest.rpartition("/")[2]
        (folder / name).write_bytes(encode(doc))
        (folder / name.replace(".json", ".py")).write_bytes(stub.render(name))


def run(proxy: Proxy, argv: list[str], env: dict[str, str]) -> dict:
    """One process under /usr/bin/time: wall seconds, requests by kind, peak RSS (MiB)."""
    proxy.clear()
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(
            f"scale_bench: {' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    rss = int(done.stderr.strip().splitlines()[-1]) / 1024
    return {
        "seconds": round(seconds, 2),
        "requests": proxy.count(),
        "LIST": proxy.count("LIST"),
        "GET": proxy.count("GET"),
        "PUT": proxy.count("PUT"),
        "rss_mib": round(rss, 1),
    }


def in_process(proxy: Proxy, action) -> dict:
    """``action`` in this process (the bundle): bundle_bench's measure, no RSS of its own."""
    return {**bundle_bench.measure(proxy, action), "rss_mib": None}


def measure(packages: int, dags: int, seed: int, tmp: Path) -> dict:
    os.environ.update(aws_env("http://unused"))
    server = MotoServer()
    server.start()
    proxy = Proxy(server.url)
    rows: dict[str, dict] = {}
    try:
        direct = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1")
        direct.create_bucket(Bucket=BUCKET)
        seed_packages(direct, packages, dags, seed)
        publish_policy(direct)
        env = {**aws_env(proxy.url), "DAG_BUCKET": BUCKET, "ENVIRONMENT": ENV}
        src = tmp / "pkg000"
        publisher = [
            str(BIN / "airflow-dag-publisher"),
            "publish",
            "--package-name",
            "pkg000",
            "--dag-path",
            str(src),
        ]
        write_package(src, "pkg000", dags, seed)
        rows[f"publish of one package ({dags} DAGs): cold, its first release"] = run(proxy, publisher, env)
        write_package(src, "pkg000", dags, seed)
        doc = json.loads((src / "pkg000_job000.json").read_bytes())
        doc["description"] = "changed"
        (src / "pkg000_job000.json").write_bytes(encode(doc))
        rows["publish of one package: one DAG changed"] = run(proxy, publisher, env)
        rows["publish of one package: nothing changed"] = run(proxy, publisher, env)

        pages = direct.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{ENV}/")
        objects = sum(page.get("KeyCount", 0) for page in pages)  # what the LIST of <env>/ returns
        dags_folder = tmp / "dags"
        dags_folder.mkdir()
        sync = [str(BIN / "airflow-dag-sync"), "--once"]
        sync_env = {**env, "DAGS_FOLDER": str(dags_folder)}
        rows["sidecar cold sync"] = run(proxy, sync, sync_env)
        rows["sidecar no-op cycle"] = run(proxy, sync, sync_env)
        doc["description"] = "changed again"
        (src / "pkg000_job000.json").write_bytes(encode(doc))
        run(proxy, publisher, env)
        rows["sidecar after one package changed"] = run(proxy, sync, sync_env)
        worker = tmp / "worker"
        worker.mkdir()
        rows["worker pod start (--dag-id)"] = run(
            proxy,
            [*sync, "--dag-id", f"pkg{packages // 2:03d}_job{dags // 2:03d}"],
            {**env, "DAGS_FOLDER": str(worker)},
        )

        def versions(root: Path, index: bool = True) -> ReleaseVersions:
            return ReleaseVersions(
                name="bench",
                bucket=BUCKET,
                environment=ENV,
                base_dir=root,
                versions_dir=root / "v",
                version_index=index,
            )

        def task_start(root: Path, index: bool = True) -> None:
            """What a task start asks of S3: the version's tree, then the one manifest its stub parses."""
            package, dag_id = f"pkg{packages // 2:03d}", f"pkg{packages // 2:03d}_job{dags // 2:03d}"
            tree = versions(root, index).materialize(version)
            pending.fetch(str(tree / package / "dags" / f"{dag_id}.json"))

        os.environ.update(aws_env(proxy.url))  # the bundle, in this process, talks through the proxy
        processor = versions(tmp / "processor")
        rows["bundle first refresh"] = in_process(proxy, processor.refresh)
        rows["bundle refresh, nothing changed"] = in_process(proxy, processor.refresh)
        doc["description"] = "changed a third time"
        (src / "pkg000_job000.json").write_bytes(encode(doc))
        run(proxy, publisher, env)
        rows["bundle refresh, one package changed"] = in_process(proxy, processor.refresh)
        version = processor.current_version()
        assert version is not None
        rows["bundle task start, fresh disk"] = in_process(proxy, lambda: task_start(tmp / "w1"))
        rows["bundle task start, warm disk"] = in_process(proxy, lambda: task_start(tmp / "w1"))
        rows["bundle task start, fresh disk, no version index"] = in_process(
            proxy, lambda: task_start(tmp / "w2", index=False)
        )
    finally:
        proxy.close()
        server.stop()
    return {"packages": packages, "dags": packages * dags, "objects": objects, "rows": rows}


def report(result: dict) -> str:
    lines = [
        f"| {result['dags']:,} DAGs ({result['packages']} packages) | seconds | requests | LIST | GET | PUT | peak RSS |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in result["rows"].items():
        rss = f"{r['rss_mib']} MiB" if r["rss_mib"] is not None else "–"
        lines.append(
            f"| {name} | {r['seconds']} | {r['requests']:,} | {r['LIST']} | {r['GET']:,} | {r['PUT']:,} | {rss} |"
        )
    pages = math.ceil(result["objects"] / 1000)
    noop, refresh = result["rows"]["sidecar no-op cycle"], result["rows"]["bundle refresh, nothing changed"]
    start = result["rows"]["bundle task start, fresh disk"]
    side_rss = max(r["rss_mib"] for k, r in result["rows"].items() if k.startswith("sidecar"))
    lines += [
        "",
        f"Targets ({result['objects']:,} objects under {ENV}/ at the no-op cycle, so {pages} LIST pages): no-op sidecar cycle "
        f"{noop['LIST']} LISTs / {noop['GET']} GETs (target ≤ {pages} / 0): "
        f"{'met' if noop['LIST'] <= pages and noop['GET'] == 0 else 'MISSED'}; sidecar peak RSS {side_rss} MiB "
        f"(target ≤ 150): {'met' if side_rss <= 150 else 'MISSED'}; bundle refresh with nothing changed "
        f"{refresh['requests']} requests (target ≤ {pages + 1}): {'met' if refresh['requests'] <= pages + 1 else 'MISSED'}; "
        f"bundle task start on a fresh disk {start['requests']} requests (target ≤ 3): "
        f"{'met' if start['requests'] <= 3 else 'MISSED'}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=50)
    parser.add_argument("--dags", type=int, default=100, help="DAGs per package")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args.packages, args.dags, args.seed, Path(tmp))
    print(report(result))


if __name__ == "__main__":
    main()
