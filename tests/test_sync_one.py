"""One DAG for one task (``airflow-dag-sync --once --dag-id``): a worker pod fetches its DAG alone, in
the same requests whatever the environment holds, laid out as a full sync lays it out, or fails with
one line. Against the moto server, counted by the proxy in front of it."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import boto3
import pytest

from dagfactory_s3 import naming, stub
from dagfactory_s3.errors import SyncError
from dagfactory_s3.publisher import cli
from dagfactory_s3.serve import policy as policies
from dagfactory_s3.sync.one import fetch_dag

from conftest import EXAMPLES

ENV = "dev"
SEEDER = "reporting_seeder"
DAG = "reporting_seeder_refresh_all"


def publish(bucket: str, src: Path, package: str) -> None:
    argv = ["publish", "--bucket", bucket, "--environment", ENV, "--package-name", package]
    assert cli.main([*argv, "--dag-path", str(src)]) == 0


def publish_examples(bucket: str, tmp_path: Path) -> None:
    for package in (SEEDER, "pipeline_processing"):
        src = tmp_path / f"src-{package}"
        shutil.copytree(EXAMPLES / package / "airflow_dags", src)
        publish(bucket, src, package)


def publish_many(bucket: str, tmp_path: Path, package: str, n: int) -> None:
    """A package of ``n`` DAGs, to grow the environment around the DAG a worker wants."""
    src = tmp_path / f"src-{package}"
    src.mkdir()
    base = json.loads(
        (EXAMPLES / "pipeline_processing/airflow_dags/pipeline_processing_example_job.json").read_bytes()
    )
    for i in range(n):
        dag_id = f"{package}_d{i:03d}"
        (src / f"{dag_id}.json").write_text(json.dumps({**base, "package": package, "dag_id": dag_id}))
        (src / f"{dag_id}.py").write_bytes(stub.render(f"{dag_id}.json"))
    publish(bucket, src, package)


def client():
    return boto3.client("s3")


def test_a_worker_fetches_its_dag_alone_in_the_same_requests_at_any_size(s3, bucket, tmp_path):
    """The DAG's manifest (verified) and its canonical stub, the package's ignore file, nothing else:
    one LIST and two GETs (record, manifest) with 3 DAGs served, and the same with 43; no policy GET,
    since the listing shows the environment has none."""
    publish_examples(bucket, tmp_path)
    dags = tmp_path / "dags"
    s3.clear()
    got = fetch_dag(client(), bucket, ENV, dags, DAG)
    small = (s3.count("LIST"), s3.count("GET"))
    assert small == (1, 2) and got.requests == {"LIST": 1, "GET": 2}
    files = sorted(str(p.relative_to(dags)) for p in dags.rglob("*") if p.is_file())
    assert files == [f"{SEEDER}/.airflowignore", f"{SEEDER}/dags/{DAG}.json", f"{SEEDER}/dags/{DAG}.py"]
    source = (EXAMPLES / SEEDER / "airflow_dags" / f"{DAG}.json").read_bytes()
    served = (dags / SEEDER / "dags" / f"{DAG}.json").read_bytes()
    assert json.loads(served)["dag_id"] == DAG and b"provenance" in served and len(served) > len(source)
    assert (dags / SEEDER / "dags" / f"{DAG}.py").read_bytes() == stub.render(f"{DAG}.json")

    publish_many(bucket, tmp_path, "bulk", 40)
    s3.clear()
    fetch_dag(client(), bucket, ENV, tmp_path / "dags2", DAG)
    assert (s3.count("LIST"), s3.count("GET")) == small


def test_the_platform_policy_rides_in_its_pointer(s3, bucket, tmp_path):
    """With a published policy the worker serves it beside the package, still in one GET of the pointer
    (which carries the current policy's bytes, verified by sha256)."""
    publish_examples(bucket, tmp_path)
    raw = json.dumps({"policy_version": 1, "paused_on_create": True}).encode()
    sha = hashlib.sha256(raw).hexdigest()
    entry = policies.PolicyEntry("20260101T000000.000Z-aaaaaa", sha, len(raw))
    pointer = policies.PolicyRecord(ENV, entry).with_content(raw)
    client().put_object(Bucket=bucket, Key=policies.pointer_key(ENV), Body=pointer.to_json())
    dags = tmp_path / "dags"
    s3.clear()
    got = fetch_dag(client(), bucket, ENV, dags, DAG)
    assert got.policy_id == entry.policy_id and (s3.count("LIST"), s3.count("GET")) == (1, 3)
    policy = policies.for_stub(str(dags / SEEDER / "dags" / f"{DAG}.py"), environ={})
    assert policy.paused_on_create is True and policy.file == policies.label(ENV, entry.policy_id)


@pytest.mark.parametrize(
    ("dag_id", "message"),
    [
        ("nobody_owns_this", "no package's name starts its id"),
        ("reporting_seeder_gone", "is not in release"),
    ],
)
def test_a_dag_the_environment_does_not_serve_fails_with_one_line(s3, bucket, tmp_path, dag_id, message):
    """A DAG id no package owns, or one its package's current release does not hold, is one SyncError
    line naming the DAG and where it looked; nothing is written."""
    publish_examples(bucket, tmp_path)
    with pytest.raises(SyncError, match=message) as caught:
        fetch_dag(client(), bucket, ENV, tmp_path / "dags", dag_id)
    assert dag_id in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "dags").exists()


def test_a_manifest_that_does_not_match_its_record_is_not_served(s3, bucket, tmp_path):
    """The content object changed in place after the release: its sha256 no longer matches the record,
    so the worker refuses it (the same rule as a full sync)."""
    publish_examples(bucket, tmp_path)
    record = json.loads(
        client().get_object(Bucket=bucket, Key=f"{ENV}/{SEEDER}/metadata.json")["Body"].read()
    )
    sha = record["files"][f"dags/{DAG}.json"]["sha256"]
    client().put_object(Bucket=bucket, Key=f"{ENV}/{SEEDER}/{naming.object_name(sha)}", Body=b"{}")
    with pytest.raises(SyncError, match="does not match the sha256"):
        fetch_dag(client(), bucket, ENV, tmp_path / "dags", DAG)


def test_the_init_container_serves_one_dag_or_fails_with_one_line(s3, bucket, tmp_path):
    """``airflow-dag-sync --once --dag-id`` (DAG_SYNC_DAG_ID from the pod's dag_id annotation): exit 0 and
    a `dag` event with the package, release and requests; a DAG the environment does not serve exits 1
    with one `error` event (kind dag) naming it; --dag-id without --once is a configuration error."""
    import os
    import subprocess
    import sys

    from s3server import aws_env

    publish_examples(bucket, tmp_path)
    sync = str(Path(sys.executable).parent / "airflow-dag-sync")
    dags = tmp_path / "dags"
    dags.mkdir()
    env = {**aws_env(s3.url), "DAG_BUCKET": bucket, "ENVIRONMENT": ENV, "DAGS_FOLDER": str(dags)}

    def run(*args: str, **extra: str) -> tuple[int, list[dict]]:
        done = subprocess.run([sync, *args], env={**env, **extra}, capture_output=True, text=True, timeout=60)
        return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]

    code, events = run("--once", DAG_SYNC_DAG_ID=DAG)
    served = [e for e in events if e["event"] == "dag"]
    assert code == 0 and served[0]["package"] == SEEDER and served[0]["requests"] == {"LIST": 1, "GET": 2}
    assert (dags / SEEDER / "dags" / f"{DAG}.json").is_file()
    assert sorted(p.name for p in dags.iterdir() if not p.name.startswith(".")) == [SEEDER]

    code, events = run("--once", "--dag-id", "reporting_seeder_gone")
    errors = [e for e in events if e["event"] == "error"]
    assert code == 1 and len(errors) == 1 and errors[0]["kind"] == "dag"
    assert "'reporting_seeder_gone' is not in release" in errors[0]["error"]

    code, events = run("--dag-id", DAG)
    assert code == 2 and "it needs --once" in events[-1]["error"]
    assert os.path.isdir(dags)
