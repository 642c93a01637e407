"""Chaos: kill the publisher, or take S3 away, at every k-th request; readers see one whole release.

For a first publish and for an update of a ``CHAOS_DAGS``-DAG package (default 50), the real
publisher process (forked from tests/forkserver.py) is stopped at the k-th S3 request -- SIGKILL
(after S3 received that request), SIGTERM, SIGINT, or every request from the k-th on refused (S3
gone) -- and then:

* the sidecar syncs into a fresh folder and into a folder holding the previous release: each serves
  exactly the old release or exactly the new one, never a mix, never an empty package on update;
* a rerun of the same publish exits 0 without uploading content already in S3, and both folders
  then serve the new release.

Which k are tried: the whole publish's requests fall into four kinds of kill point -- before the
first content upload, mid upload, after the last upload up to and including the commit (the record's
conditional PUT), and after the commit (the ``dags/`` copies and clean-up). ``make test`` tries a
deterministic sample (``CHAOS_SAMPLE``, default 1): the first and last k of every kind, plus
``CHAOS_SAMPLE`` k per kind and way of stopping drawn with ``CHAOS_SEED`` (default 20261207, printed
on failure), so every kind is stopped every way in both scenarios. ``CHAOS_SAMPLE=0`` (``make
test-all``) tries the whole grid: every ``CHAOS_STRIDE``-th k (default 4) per way of stopping, each on
a different residue, so every k once across the four ways; ``CHAOS_STRIDE=1`` all four at every k.
"""

from __future__ import annotations

import bisect
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import boto3
import pytest

from dagfactory_s3 import s3 as s3support
from dagfactory_s3 import stub
from dagfactory_s3.publisher import cli
from dagfactory_s3.sync.observe import Log, Metrics
from dagfactory_s3.sync.reconcile import Reconciler

import timing
from conftest import EXAMPLES, unstamped
from s3server import Request, aws_env

ENV = "dev"
PKG = "chaos"
N_DAGS = int(os.environ.get("CHAOS_DAGS", "50"))
STRIDE = int(os.environ.get("CHAOS_STRIDE", "4"))
SAMPLE = int(os.environ.get("CHAOS_SAMPLE", "1"))
SEED = int(os.environ.get("CHAOS_SEED", "20261207"))
MODES = ("SIGKILL", "SIGTERM", "SIGINT", "outage")
PHASES = ("before upload", "mid upload", "after upload, to the commit", "after commit")
TESTS_DIR = Path(__file__).resolve().parent

pytestmark = pytest.mark.slow


def write_sources(root: Path, version: int) -> dict[str, bytes]:
    """A package of N_DAGS manifests; each version changes every description and renames one DAG."""
    base = json.loads(
        (EXAMPLES / "pipeline_processing/airflow_dags/pipeline_processing_example_job.json").read_bytes()
    )
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    out = {}
    for i in range(version, N_DAGS + version):  # version 2 drops dag 1 and adds dag N+1
        doc = dict(base, package=PKG, dag_id=f"{PKG}_job_{i:03d}", description=f"v{version}", tags=[PKG])
        raw = json.dumps(doc, indent=2).encode()
        (root / f"{doc['dag_id']}.json").write_bytes(raw)
        out[f"{doc['dag_id']}.json"] = raw
    return out


class ForkServer:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(TESTS_DIR / "forkserver.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=TESTS_DIR.parent,
        )

    def run(
        self, argv: list[str], env: dict[str, str], log: Path, started: threading.Event, pid: list[int]
    ) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"argv": argv, "env": env, "log": str(log)}) + "\n")
        self.proc.stdin.flush()
        pid.append(json.loads(self.proc.stdout.readline())["pid"])
        started.set()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def forkserver():
    server = ForkServer()
    yield server
    server.close()


_CLIENTS: dict[str, object] = {}


def client() -> object:
    """One S3 client per endpoint (building one costs ~0.1 s; the chaos loop needs thousands)."""
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    if endpoint not in _CLIENTS:
        _CLIENTS[endpoint] = s3support.client(retries=1)
    return _CLIENTS[endpoint]


def served(root: Path, bucket: str) -> dict[str, bytes]:
    """One sidecar cycle (the code --once runs) into ``root``; the package's manifests as served."""
    reconciler = Reconciler(
        client=client(),
        bucket=bucket,
        environment=ENV,
        dags_folder=root,
        state_dir=root / ".dagfactory-sync",
        log=Log(io.StringIO()),
        metrics=Metrics(),
    )
    try:
        report = reconciler.cycle()
    finally:
        reconciler.close()
    assert report.complete and not report.unservable, "the sidecar could not serve a committed release"
    files = {p.name: unstamped(p.read_bytes()) for p in sorted((root / PKG / "dags").glob("*.json"))}
    for name in files:  # every manifest has its canonical stub, and no stub is alone
        assert (root / PKG / "dags" / stub_name(name)).read_bytes() == stub.stub_for(stub_name(name))
    assert len(list((root / PKG / "dags").glob("*.py"))) == len(files) if files else True
    return files


def stub_name(name: str) -> str:
    return name.removesuffix(".json") + ".py"


def publish_argv(bucket: str, src: Path) -> list[str]:
    return [
        "publish",
        "--bucket",
        bucket,
        "--environment",
        ENV,
        "--package-name",
        PKG,
        "--dag-path",
        str(src),
    ]


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("scenario", ["first", "update"])
def test_publisher_stopped_at_every_request_leaves_one_whole_release(
    s3, tmp_path, forkserver, scenario, phase
):
    """Every kill point and outage point of one kind: old or new release, never a mix; a rerun converges."""
    direct = boto3.client("s3", endpoint_url=s3.upstream)
    old_src, new_src = tmp_path / "old", tmp_path / "new"
    old = write_sources(old_src, 1) if scenario == "update" else {}
    new = write_sources(new_src, 2)
    seed_objects, phases = seeded(s3, direct, scenario, old_src, new_src)
    total = len(phases)

    def fill(bucket: str) -> None:  # the starting bucket, copied
        direct.create_bucket(Bucket=bucket)
        for key, data in seed_objects.items():
            direct.put_object(Bucket=bucket, Key=key, Body=data)

    fill(f"start-{scenario}")  # and the folder a running sidecar would hold
    old_folder = tmp_path / "old-folder"
    assert served(old_folder, f"start-{scenario}") == old

    points = kill_points(phases, scenario, phase)
    tried = dict.fromkeys(MODES, 0)
    failures = []
    for k, mode in points:
        tried[mode] += 1
        bucket = f"chaos-{scenario}-{mode.lower()}-{k}"
        fill(bucket)
        with timing.kind("chaos kill point"):
            problem = _one_kill_point(
                s3, forkserver, tmp_path, bucket, new_src, old_folder, old, new, k, mode
            )
        if problem:
            failures.append(f"{mode} at request {k}/{total}: {problem}")
    how = f"CHAOS_SAMPLE={SAMPLE} CHAOS_SEED={SEED}" if SAMPLE else f"whole grid, CHAOS_STRIDE={STRIDE}"
    print(f"\nchaos {scenario}, {phase}: {total} requests per publish; kill points tried {points} ({how})")
    assert failures == [], f"{how}: {failures}"
    ks = [k for k in range(1, total + 1) if phases[k - 1] == phase]
    if SAMPLE:  # this kind of kill point stopped every way, at its first and last request
        assert all(tried.values()) and {ks[0], ks[-1]} <= {k for k, _ in points}, (tried, points)
    else:  # every k of this kind at least once
        assert {k for k, _ in points} == set(ks)


# Per scenario, once per process (the four kinds of kill point are four tests): the starting bucket's
# objects, and the kind of kill point each request of a whole publish onto it is.
_SEEDS: dict[str, tuple[dict[str, bytes], list[str]]] = {}


def seeded(s3, direct, scenario: str, old_src: Path, new_src: Path) -> tuple[dict[str, bytes], list[str]]:
    if scenario not in _SEEDS:
        bucket = f"seed-{scenario}"
        direct.create_bucket(Bucket=bucket)
        if scenario == "update":
            assert cli.main(publish_argv(bucket, old_src)) == 0
        objects = {}
        for page in direct.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                objects[item["Key"]] = direct.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        s3.clear()
        assert cli.main(publish_argv(bucket, new_src)) == 0
        phases = phases_of(s3.requests)
        assert len(phases) > 2 * N_DAGS
        assert set(phases) == set(PHASES), (
            f"a publish without every kind of kill point: {sorted(set(phases))}"
        )
        _SEEDS[scenario] = objects, phases
    return _SEEDS[scenario]


def phases_of(requests: list[Request]) -> list[str]:
    """The kind of kill point each request of a whole publish is (index k-1 for the k-th request)."""
    uploads = [i for i, r in enumerate(requests) if r.method == "PUT" and "/_releases/objects/" in r.path]
    record = f"/{ENV}/{PKG}/metadata.json"
    (commit,) = [i for i, r in enumerate(requests) if r.method == "PUT" and r.path.endswith(record)]
    assert uploads and uploads[-1] < commit, requests
    starts = (uploads[0], uploads[-1] + 1, commit + 1)  # where each kind after the first begins
    return [PHASES[bisect.bisect_right(starts, i)] for i in range(len(requests))]


def kill_points(phases: list[str], scenario: str, phase: str) -> list[tuple[int, str]]:
    """(k, way of stopping) to try in ``phase``: the whole grid, or the seeded sample (module docstring)."""
    ks = [k for k in range(1, len(phases) + 1) if phases[k - 1] == phase]
    if not SAMPLE:
        return [
            (k, mode) for k in ks for offset, mode in enumerate(MODES) if (k - 1) % STRIDE == offset % STRIDE
        ]
    rng = random.Random(f"{SEED}-{scenario}-{phase}")
    index = PHASES.index(phase)
    # The kind's edges, each stopped a different way, and SAMPLE k per way of stopping.
    points = {(ks[0], MODES[index % len(MODES)]), (ks[-1], MODES[(index + 1) % len(MODES)])}
    for mode in MODES:
        points.update((k, mode) for k in rng.sample(ks, min(SAMPLE, len(ks))))
    return sorted(points)


def _one_kill_point(s3, forkserver, tmp_path, bucket, src, old_folder, old, new, k, mode) -> str | None:
    started, pid = threading.Event(), []
    objects = f"{ENV}/{PKG}/_releases/objects/"
    before = set(s3support.list_objects(client(), bucket, objects))
    s3.clear()

    def fault(request, index):
        if index + 1 < k:
            return None
        if mode == "outage":
            return "drop"
        if index + 1 == k:
            started.wait(10)
            os.kill(pid[0], getattr(signal, mode))
        return None

    s3.fault = fault
    env = aws_env(s3.url) | {"AWS_MAX_ATTEMPTS": "1"}
    log = tmp_path / "publish.log"
    result = forkserver.run(publish_argv(bucket, src), env, log, started, pid)
    s3.clear()
    text = log.read_text()
    if "Traceback" in text:
        return f"traceback: {text}"
    if mode == "SIGKILL" and result != {"signal": 9}:
        return f"not killed: {result}"
    if mode in ("SIGTERM", "SIGINT") and result.get("exit") not in (0, 128 + getattr(signal, mode)):
        return f"exit {result}: {text}"
    if mode == "outage" and result.get("exit") not in (0, 3):
        return f"exit {result}: {text}"
    # An error that mentions the commit advises a rerun (warnings, e.g. "generate ... to commit them",
    # are not the error).
    error = "\n".join(line for line in text.splitlines() if not line.startswith("warning:"))
    if result.get("exit") not in (0, None) and "commit" in error and "rerun" not in error:
        return f"no rerun advice: {text}"

    fresh, running = tmp_path / f"fresh-{bucket}", tmp_path / f"running-{bucket}"
    shutil.copytree(old_folder, running)
    for folder in (fresh, running):
        got = served(folder, bucket)
        if got not in (old, new):
            return f"{folder.name} serves a mix: {len(set(got) & set(old))} old, {len(set(got) & set(new))} new names"
    listing = set(s3support.list_objects(client(), bucket, objects))
    s3.clear()
    if cli.main(publish_argv(bucket, src)) != 0:
        return "rerun failed"
    reuploaded = [r.path for r in s3.requests if r.method == "PUT" and r.path.split("/", 2)[2] in listing]
    if reuploaded:
        return f"rerun uploaded content already in S3: {reuploaded[:3]}"
    # The rerun took over the stopped attempt's release: what the attempt uploaded is what the
    # committed record names, so the two left no content that no record names.
    record = json.loads(client().get_object(Bucket=bucket, Key=f"{ENV}/{PKG}/metadata.json")["Body"].read())
    named = {objects + e["sha256"] for e in record["files"].values()}
    orphans = set(s3support.list_objects(client(), bucket, objects)) - before - named
    if orphans:
        return f"attempt and rerun left {len(orphans)} content object(s) no record names"
    for folder in (fresh, running):
        if served(folder, bucket) != new:
            return f"{folder.name} does not converge to the new release after the rerun"
    shutil.rmtree(fresh)
    shutil.rmtree(running)
    return None
