"""Versioned bundle benchmark: what a task start costs to materialize its version, at 1,000 and 5,000 DAGs.

One moto server on 127.0.0.1 behind the test suite's counting proxy, so request counts are what each
side actually sends::

    .venv/bin/python -m bench.bundle_bench [--dags 1000 5000] [--per-package 50] [--write-doc]

Per size: packages of ``--per-package`` DAGs are laid out as the publisher does (content objects,
history record, ``metadata.json``, readable ``dags/`` copies of manifests and stubs). The dag-processor
side refreshes (version v1), one package publishes one changed manifest, the dag-processor refreshes
again (v2). Then task starts on a worker, each ``S3ReleaseDagBundle(version=...).initialize()`` in
this process on a worker disk of its own:

* *cold*: a fresh machine (a new pod) at v1, rebuilding the version from S3 history alone;
* *next version*: the same machine at v2 (the content cache already holds v1's objects);
* *again*: the same machine at v2 once more (another task of the same run).

Side by side: ``apache-airflow-providers-amazon`` (upstream ``S3DagBundle``) is not installed in this
project's environment, so its column is the work it does on each start of an unversioned S3 bundle on
a fresh disk -- list the prefix and GET every DAG file under it -- done with boto3 and the same 16
parallel connections. It is labelled as that, not as the provider's code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from dagfactory_s3 import stub  # noqa: E402
from dagfactory_s3.naming import history_name, object_name  # noqa: E402
from dagfactory_s3.release import CONTENT_OBJECTS, FileEntry, Release  # noqa: E402

from s3server import MotoServer, Proxy, aws_env  # noqa: E402

BUCKET = "bench-bundle-dags"
ENV = "dev"
HEADING = "## Versioned bundle (task start)"


def manifest(package: str, i: int, tag: str = "v1") -> bytes:
    doc = {
        "schema_version": 1,
        "package": package,
        "dag_id": f"{package}_job{i:03d}",
        "schedule": "0 3 * * *",
        "start_date": "2024-01-01",
        "job": {"name": "run", "image": f"registry.example.com/{package}:{tag}.{i % 7}", "command": ["run"]},
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def release_objects(package: str, release_id: str, manifests: dict[str, bytes]) -> list[tuple[str, bytes]]:
    """The publisher's layout of one release: content objects, readable copies, history, then the pointer."""
    files = dict(manifests)
    files |= {name[:-5] + ".py": stub.stub_for(name.rpartition("/")[2][:-5] + ".py") for name in manifests}
    record = Release(
        package,
        ENV,
        release_id,
        "2026-01-01T00:00:00Z",
        "bench",
        files={k: FileEntry(hashlib.sha256(v).hexdigest(), len(v)) for k, v in files.items()},
        content=CONTENT_OBJECTS,
    ).to_json()
    prefix = f"{ENV}/{package}/"
    out = [(prefix + object_name(hashlib.sha256(v).hexdigest()), v) for v in manifests.values()]
    out += [(prefix + k, v) for k, v in files.items()]
    out += [(prefix + history_name(release_id), record)]
    return [*out, (prefix + "metadata.json", record)]


def put_all(client, objects: list[tuple[str, bytes]]) -> None:
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda kv: client.put_object(Bucket=BUCKET, Key=kv[0], Body=kv[1]), objects))


def seed(client, dags: int, per_package: int) -> int:
    objects: list[tuple[str, bytes]] = []
    for p in range(dags // per_package):
        package = f"pkg{p:03d}"
        manifests = {f"dags/{package}_job{i:03d}.json": manifest(package, i) for i in range(per_package)}
        objects += release_objects(package, f"20260101T000000.{p % 1000:03d}Z-{p:06x}", manifests)
    put_all(client, objects)
    return len(objects)


def bundle(storage: Path, version: str | None = None):
    os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH"] = str(storage)
    from dagfactory_s3.bundle import S3ReleaseDagBundle

    return S3ReleaseDagBundle(name="bench", bucket=BUCKET, environment=ENV, version=version)


def measure(proxy: Proxy, action) -> dict:
    proxy.clear()
    start = time.perf_counter()
    files = action()
    return {
        "seconds": round(time.perf_counter() - start, 2),
        "requests": proxy.count(),
        "GET": proxy.count("GET"),
        "LIST": proxy.count("LIST"),
        "files": files,
    }


def count(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file() and p.suffix in (".json", ".py"))


def whole_prefix(client, dest: Path) -> int:
    """List the prefix and GET every DAG file under it (an unversioned S3 bundle on a fresh disk)."""
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{ENV}/"):
        keys += [o["Key"] for o in page.get("Contents", []) if "/dags/" in o["Key"]]

    def one(key: str) -> None:
        path = dest / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, keys))
    return count(dest)


def run_size(server: MotoServer, proxy: Proxy, dags: int, per_package: int, tmp: Path) -> dict:
    server.reset()
    direct = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1")
    direct.create_bucket(Bucket=BUCKET)
    t0 = time.perf_counter()
    objects = seed(direct, dags, per_package)
    print(
        f"[bench] {dags} DAGs: seeded {objects} objects in {time.perf_counter() - t0:.1f}s", file=sys.stderr
    )
    via_proxy = boto3.client(
        "s3", endpoint_url=proxy.url, region_name="us-east-1", config=Config(max_pool_connections=16)
    )
    processor = bundle(tmp / f"processor-{dags}")
    rows = {}
    rows["processor_first"] = measure(proxy, lambda: (processor.initialize(), count(processor.path))[1])
    v1 = processor.get_current_version().version
    manifests = {
        f"dags/pkg000_job{i:03d}.json": manifest("pkg000", i, "v2" if i == 0 else "v1")
        for i in range(per_package)
    }
    put_all(direct, release_objects("pkg000", "20260102T000000.000Z-0a0a0a", manifests))
    rows["processor_publish"] = measure(proxy, lambda: (processor.refresh(), count(processor.path))[1])
    v2 = processor.get_current_version().version
    assert v2 != v1
    worker = tmp / f"worker-{dags}"
    rows["task_cold"] = measure(proxy, lambda: (w := bundle(worker, v1), w.initialize(), count(w.path))[2])
    rows["task_next"] = measure(proxy, lambda: (w := bundle(worker, v2), w.initialize(), count(w.path))[2])
    rows["task_again"] = measure(proxy, lambda: (w := bundle(worker, v2), w.initialize(), count(w.path))[2])
    rows["whole_prefix"] = measure(proxy, lambda: whole_prefix(via_proxy, tmp / f"prefix-{dags}"))
    return {"dags": dags, "packages": dags // per_package, "objects": objects, "rows": rows}


LABELS = {
    "processor_first": "dag-processor: first refresh (v1)",
    "processor_publish": "dag-processor: refresh after one package published (v2)",
    "task_cold": "task start, fresh worker disk, at v1 (rebuilt from S3 history)",
    "task_next": "task start, same worker, at v2 (cache holds v1)",
    "task_again": "task start, same worker, at v2 again",
    "whole_prefix": "whole-prefix download per start (list + GET every dags/ file; what an unversioned S3 bundle does on a fresh disk)",
}


def table(results: list[dict]) -> str:
    lines = [
        "| DAGs (packages) | step | seconds | requests | GET | LIST | files on disk | seconds vs whole-prefix |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        base = res["rows"]["whole_prefix"]["seconds"] or 1
        for key, label in LABELS.items():
            r = res["rows"][key]
            ratio = f"{r['seconds'] / base:.2f}x" if key.startswith("task") or key == "whole_prefix" else "–"
            lines.append(
                f"| {res['dags']:,} ({res['packages']}) | {label} | {r['seconds']} | {r['requests']} | "
                f"{r['GET']} | {r['LIST']} | {r['files']:,} | {ratio} |"
            )
    return "\n".join(lines)


DOC_NOTE = """One moto server on 127.0.0.1 behind the test suite's counting proxy (request counts are what each
side sent). Per size, packages of 50 DAGs laid out as the publisher does (content objects, history,
`metadata.json`, readable `dags/` copies of manifests and stubs). The dag-processor refreshes (v1),
one package publishes one changed manifest, the dag-processor refreshes again (v2); then task starts
on a worker disk of its own (`S3ReleaseDagBundle(version=...).initialize()`, in process): at v1 on a
fresh disk (rebuilt from S3 history alone), at v2 on the same disk, at v2 again.

`apache-airflow-providers-amazon` (upstream `S3DagBundle`) is not installed in this project's
environment (not in `constraints.txt`), so the last row of each size is **not the provider's code**:
it is the work an unversioned S3 bundle does on a fresh disk at every start -- list the prefix, GET
every DAG file -- done with boto3 and the same 16 parallel connections. The machine was shared with
other sessions (load average about 19 on 2 cores): compare rows of one run, not absolute seconds.

Reading it: a task on a machine that already has the version costs no request; a new version on a
machine that has an earlier one costs one LIST per package (to rebuild the version from history) plus
the changed objects -- 23 requests instead of 2,004 at 1,000 DAGs, 103 instead of 10,016 at 5,000;
a fresh disk still costs one GET per manifest of the version (half the whole-prefix requests: stubs
are written, not downloaded), which is why docs/deploy.md asks for the bundle storage on a volume
the node's pods share. Fetching only the one DAG a task runs would need Airflow to tell the bundle
which file it is about to parse (Airflow 3.3's `initialize()` does not)."""


def write_doc(text: str, argv: list[str]) -> None:
    doc = ROOT / "docs" / "benchmarks.md"
    body = doc.read_text(encoding="utf-8")
    section = (
        f"{HEADING}\n\n"
        f"Command: `.venv/bin/python -m bench.bundle_bench {' '.join(argv)}` (`make bench-bundle`).\n\n{DOC_NOTE}\n\n"
        f"{text}\n"
    )
    if HEADING in body:
        start = body.index(HEADING)
        nxt = body.find("\n## ", start + len(HEADING))
        body = body[:start] + section + (body[nxt:] if nxt >= 0 else "")
    else:
        body = body.rstrip("\n") + "\n\n" + section
    doc.write_text(body, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dags", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--per-package", type=int, default=50)
    parser.add_argument(
        "--write-doc", action="store_true", help=f"write the '{HEADING}' section of docs/benchmarks.md"
    )
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite the report from bench/out/bundle.json"
    )
    args = parser.parse_args()
    out = ROOT / "bench" / "out"
    if args.render_only:
        results = json.loads((out / "bundle.json").read_text())
        print(table(results))
        if args.write_doc:
            write_doc(table(results), [f"--dags {' '.join(str(r['dags']) for r in results)}", "--write-doc"])
        return
    os.environ.update(aws_env("http://unused"))
    server = MotoServer()
    server.start()
    proxy = Proxy(server.url)
    os.environ["AWS_ENDPOINT_URL"] = proxy.url
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results = [run_size(server, proxy, n, args.per_package, Path(tmp)) for n in args.dags]
    finally:
        proxy.close()
        server.stop()
    text = table(results)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bundle.json").write_text(json.dumps(results, indent=2))
    if args.write_doc:
        write_doc(text, sys.argv[1:])


if __name__ == "__main__":
    main()
