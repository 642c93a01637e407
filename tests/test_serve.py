"""The read side of a release (dagfactory_s3.serve), without Airflow: the serving rules over a record,
record identity, the verified content cache, and bundle versions (search, guard, claims, refresh,
materialize, rebuild) against the moto server. The bundle's Airflow interface: tests/test_bundle.py.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import boto3
import pytest

from dagfactory_s3 import manifest, naming
from dagfactory_s3.errors import SyncError
from dagfactory_s3.publisher import cli
from dagfactory_s3.release import CONTENT_OBJECTS, FileEntry, Release
from dagfactory_s3.serve import rules
from dagfactory_s3.serve.cache import ContentCache
from dagfactory_s3.serve.versions import (
    PLATFORM,
    Mapping,
    ReleaseVersions,
    claims,
    deletions_to_keep,
    index_key,
    parse_version,
    search,
    version_name,
)

from conftest import EXAMPLES

ENV = "dev"
RID = "20260101T000000.000Z-abcdef"


def entry(data: bytes) -> FileEntry:
    return FileEntry(hashlib.sha256(data).hexdigest(), len(data))


def record(files: dict[str, FileEntry], *, content: str | None = CONTENT_OBJECTS, **kw) -> Release:
    fields = {
        "package": "pkg",
        "environment": ENV,
        "release_id": RID,
        "published_at": "x",
        "publisher_version": "0",
    }
    return Release(**{**fields, **kw}, files=files, content=content)


# -- the serving rules over one record ----------------------------------------------------------------


def test_served_files_applies_every_rule_once():
    """Canonical stubs are written by the reader (not listed), other .py, foreign keys and oversized
    manifests are refused with their kind; content comes from the immutable object."""
    stub = rules.canonical_stub("pkg_a.py")[0]
    files = {
        "dags/pkg_a.json": entry(b"{}"),
        "dags/pkg_a.py": entry(stub),  # the canonical stub of a served manifest
        "dags/pkg_b.py": entry(rules.canonical_stub("pkg_b.py")[0]),  # a stub with no manifest beside it
        "dags/pkg_c.py": entry(b"import os\n"),
        "dags/other_x.json": entry(b"{}"),  # not the package's DAG id
        "dags/pkg_big.json": FileEntry("0" * 64, manifest.MAX_BYTES + 1),
    }
    served, refused = rules.served_files(record(files), ENV)
    assert [(f.rest, f.source) for f in served] == [
        ("dags/pkg_a.json", "dev/pkg/" + naming.object_name(files["dags/pkg_a.json"].sha256))
    ]
    kinds = {r.key: (r.kind, r.reason) for r in refused}
    assert kinds["dev/pkg/dags/pkg_big.json"] == ("content", manifest.too_large())
    assert kinds["dev/pkg/dags/pkg_c.py"][0] == "python"
    assert kinds["dev/pkg/dags/pkg_b.py"][1].startswith("stub without its manifest")
    assert kinds["dev/pkg/dags/pkg_c.py"][1].startswith("not the canonical stub")
    assert kinds["dev/pkg/dags/other_x.json"][0] == "key"
    assert "dev/pkg/dags/pkg_a.py" not in kinds and len(refused) == 4


def test_python_is_served_only_by_opt_in_and_never_from_immutable_content():
    """--allow-python serves a non-canonical .py of a 0.1 record from its dags/ key, never of an
    objects record (whose readers never run package code)."""
    files = {"dags/pkg_c.py": entry(b"import os\n")}
    served, _ = rules.served_files(record(files, content=None), ENV, allow_python=True)
    assert [(f.rest, f.source, f.python) for f in served] == [
        ("dags/pkg_c.py", "dev/pkg/dags/pkg_c.py", True)
    ]
    served, refused = rules.served_files(record(files), ENV, allow_python=True)
    assert served == [] and [r.kind for r in refused] == ["python"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"package": "good"}, "names package 'good' in environment 'dev'; it must be 'pkg' in 'dev'"),
        ({"environment": "prod"}, "names package 'pkg' in environment 'prod'; it must be 'pkg' in 'dev'"),
        ({"release_id": "20250101T000000.000Z-abcdef"}, f"it must be release {RID} of 'pkg' in 'dev'"),
    ],
)
def test_a_record_is_read_only_where_it_belongs(fields, message):
    """Another package's, environment's or release's record is refused, naming the key; so is one
    over the size cap, before it is parsed."""
    raw = record({}, **fields).to_json()
    with pytest.raises(SyncError) as err:
        rules.read_record(raw, key="dev/pkg/metadata.json", package="pkg", environment=ENV, release_id=RID)
    assert str(err.value).startswith("dev/pkg/metadata.json: release record ") and message in str(err.value)
    big = b" " * (rules.MAX_RECORD_BYTES + 1)
    with pytest.raises(SyncError, match="larger than"):
        rules.read_record(big, key="k", package="pkg", environment=ENV)
    ok = rules.read_record(record({}).to_json(), key="k", package="pkg", environment=ENV, release_id=RID)
    assert ok.release_id == RID


# -- the content cache --------------------------------------------------------------------------------


def test_the_cache_holds_only_verified_bytes(s3, bucket, tmp_path):
    """A fetched body is cached read-only under its sha256; other bytes or a missing object raise
    and leave nothing; a cached object counts as held only while its bytes are those of its sha."""
    client = boto3.client("s3")
    client.put_object(Bucket=bucket, Key="k", Body=b"payload")
    cache = ContentCache(tmp_path / "objects")
    sha = hashlib.sha256(b"payload").hexdigest()
    with pytest.raises(SyncError, match=f"k does not match the recorded sha256 {'0' * 64}$"):
        cache.fetch(client, bucket, "k", "0" * 64, max_bytes=100)
    with pytest.raises(SyncError, match=r"/gone is missing$"):
        cache.fetch(client, bucket, "gone", sha, max_bytes=100)
    assert not any(p.is_file() for p in cache.root.rglob("*"))
    gets: list[int] = []
    path = cache.fetch(client, bucket, "k", sha, max_bytes=100, on_get=lambda: gets.append(1))
    assert path.read_bytes() == b"payload" and path.stat().st_mode & 0o777 == 0o444 and gets == [1]
    assert cache.has(sha) and cache.has(sha, verify=True)
    path.chmod(0o644)
    path.write_bytes(b"paylo4d")  # changed in place: not held any more, and removed
    assert not cache.has(sha, verify=True) and not path.exists()


# -- versions: pure decisions -----------------------------------------------------------------------


def test_search_finds_the_mapping_named_by_a_version():
    """The newest release not after T per package; with deep, a package whose publish committed across T."""
    history = {
        "a": ["20260101T000000.000Z-aaaaaa", "20260103T000000.000Z-aaaaab"],
        "b": ["20260102T000000.000Z-bbbbbb"],
    }
    want = Mapping("bk", ENV, {"a": history["a"][0], "b": history["b"][0]})
    stamp, digest = parse_version(version_name(want, 0))
    assert search("bk", ENV, history, stamp, digest, deep=False) == want
    across = Mapping("bk", ENV, {"a": history["a"][1], "b": history["b"][0]})  # a committed after T
    stamp = "20260102T120000.000Z"
    assert search("bk", ENV, history, stamp, across.digest(), deep=False) is None
    assert search("bk", ENV, history, stamp, across.digest(), deep=True) == across
    assert search("bk", ENV, history, stamp, "0" * 20, deep=True) is None


def test_the_guard_and_claims_decide_on_plain_values():
    """Deleting more than the fraction keeps the losing packages (a tombstone never counts); a DAG id
    stays with the package of the previous version."""
    old = {"a": {"dags/a_1.json": "s", "dags/a_2.json": "s"}, "b": {"dags/b_1.json": "s"}}
    now = {"a": "r2", "b": "r2"}
    keep, deleted, served = deletions_to_keep(old, {"b": old["b"]}, now, set(), 0.5)
    assert (keep, deleted, served) == ({"a"}, 2, 3)
    assert deletions_to_keep(old, {"b": old["b"]}, now, {"a"}, 0.5)[0] == set()
    assert deletions_to_keep(old, {**old, "a": {"dags/a_1.json": "s"}}, now, set(), 0.5)[0] == set()
    refused, collisions = claims(Mapping("bk", ENV, {"x": "r1"}), {"x": {"dags/x_1.json": "s"}})
    assert refused == {} and collisions == []


def test_the_longest_package_name_owns_a_dag_id():
    """Package x may name x_y_1 and so may package x_y: it is x_y's, whoever served it first."""
    files = {"x": {"dags/x_y_1.json": "s", "dags/x_2.json": "s"}, "x_y": {"dags/x_y_1.json": "s"}}
    refused, collisions = claims(Mapping("bk", ENV, {"x": "r1"}), files)
    assert refused == {"x": ["x_y_1"]}
    assert collisions[0][2].startswith("dag_id 'x_y_1' belongs to package 'x_y' (the longest package name")
    assert naming.dag_id_owner("x_y_1", {"x", "x_y", "x_y_1"}) == "x_y"
    assert naming.dag_id_owner("x_2", {"x", "x_y"}) == "x" and naming.dag_id_owner("q_1", {"x"}) is None


# -- versions against S3 -----------------------------------------------------------------------------


def publish(bucket: str, src: Path, package: str) -> None:
    argv = ["publish", "--bucket", bucket, "--environment", ENV, "--package-name", package]
    assert cli.main([*argv, "--dag-path", str(src)]) == 0


def versions(root: Path, bucket: str, *, index: bool = False) -> ReleaseVersions:
    """A bundle's versions under ``root``; without the version index unless asked, so that a fresh
    worker rebuilds each version from S3 history (what these tests are about)."""
    return ReleaseVersions(
        name="etl",
        bucket=bucket,
        environment=ENV,
        base_dir=root,
        versions_dir=root / "v",
        version_index=index,
    )


def test_refresh_materialize_and_rebuild_without_airflow(s3, bucket, tmp_path):
    """A refresh builds a tree of stubs and verified manifests; a second machine that has only the
    version name rebuilds the same mapping from S3 and lists the manifests it lacks as pending."""
    src = tmp_path / "src"
    shutil.copytree(EXAMPLES / "reporting_seeder" / "airflow_dags", src)
    publish(bucket, src, "reporting_seeder")
    processor = versions(tmp_path / "processor", bucket)
    processor.refresh()
    version = processor.current_version()
    assert version is not None
    tree = processor.current_link.resolve()
    manifests = sorted(p.name for p in tree.glob("reporting_seeder/dags/*.json"))
    assert manifests and all(
        (tree / "reporting_seeder/dags" / naming.stub_of(m)).is_file() for m in manifests
    )
    requests = dict(processor.requests)
    processor.refresh()  # nothing changed: the same version, no GET (the record's ETag is unchanged)
    assert processor.current_version() == version and processor.requests["GET"] == requests["GET"]

    worker = versions(tmp_path / "worker", bucket)
    dest = worker.materialize(version)
    assert worker.local_mapping(version) == processor.local_mapping(version)
    assert sorted(p.name for p in dest.glob("reporting_seeder/dags/*.py")) == sorted(
        naming.stub_of(m) for m in manifests
    )
    assert not list(dest.glob("reporting_seeder/dags/*.json"))  # fetched when their stub is parsed
    with pytest.raises(SyncError, match="cannot be rebuilt"):  # before any release: nothing to run
        versions(tmp_path / "other", bucket).materialize("20240101T000000.000Z-" + "0" * 20)


# -- one package's record fails only that package ----------------------------------------------------


def _two_packages(tmp_path, bucket) -> str:
    """good and evil published; the version a dag-processor refreshed to, with both."""
    for package in ("reporting_seeder", "pipeline_processing"):
        src = tmp_path / f"src-{package}"
        shutil.copytree(EXAMPLES / package / "airflow_dags", src)
        publish(bucket, src, package)
    processor = versions(tmp_path / "processor", bucket)
    processor.refresh()
    version = processor.current_version()
    assert version is not None and set(processor.local_mapping(version).releases) == {
        "reporting_seeder",
        "pipeline_processing",
    }
    return version


@pytest.mark.parametrize(
    "bad",
    [
        b"\x00garbage",
        json.dumps({"format": "something/else"}).encode(),
        "record-of-another-package",
        "record-of-another-environment",
    ],
)
def test_a_bad_record_fails_only_its_package_on_a_fresh_worker(s3, bucket, tmp_path, bad):
    """evil (pipeline_processing here) overwrites its metadata.json after the version was made: a fresh
    worker still builds the version for every other package (the good package's tree is whole), and
    only the bad package is left out, named in the log."""
    version = _two_packages(tmp_path, bucket)
    client = boto3.client("s3")
    key = f"{ENV}/pipeline_processing/metadata.json"
    if isinstance(bad, str):
        record = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        if bad == "record-of-another-package":
            record["package"] = "reporting_seeder"
        else:
            record["environment"] = "prod"
        bad = json.dumps(record).encode()
    client.put_object(Bucket=bucket, Key=key, Body=bad)
    worker = versions(tmp_path / "worker", bucket)
    dest = worker.materialize(version)
    assert sorted(p.name for p in dest.iterdir()) == ["reporting_seeder"]
    assert list(dest.glob("reporting_seeder/dags/*.py"))


def _manifests(tree: Path, package: str) -> list[str]:
    return sorted(p.name for p in tree.glob(f"{package}/dags/*.py"))


def test_a_record_rewritten_under_its_id_is_refused_not_served(s3, bucket, tmp_path, caplog):
    """Versions name bytes: evil rewrites its current record under the same release id (one DAG
    dropped). The dag-processor keeps serving the bytes it first read (same version, an error line); a
    fresh worker of the version leaves evil out and runs the good package whole."""
    version = _two_packages(tmp_path, bucket)
    processor = versions(tmp_path / "processor", bucket)
    good = _manifests(processor.current_link.resolve(), "reporting_seeder")
    before = _manifests(processor.current_link.resolve(), "pipeline_processing")
    client = boto3.client("s3")
    key = f"{ENV}/pipeline_processing/metadata.json"
    data = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    dropped = sorted(k for k in data["files"] if k.endswith(".json"))[0]
    del data["files"][dropped]
    time.sleep(1.1)  # S3 times objects in whole seconds: the rewrite is in a later second than the version
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps(data).encode())

    processor.refresh()
    assert processor.current_version() == version
    assert _manifests(processor.current_link.resolve(), "pipeline_processing") == before
    assert "rewrote release" in caplog.text

    worker = versions(tmp_path / "worker", bucket)
    dest = worker.materialize(version)
    assert sorted(p.name for p in dest.iterdir()) == ["reporting_seeder"]
    assert _manifests(dest, "reporting_seeder") == good
    assert "pipeline_processing (its current record" in caplog.text


@pytest.mark.parametrize("how", ["keep-1", "delete-prefix", "keep-1-history-past-the-cap"])
def test_a_package_pruning_or_deleting_its_releases_fails_only_its_own_tasks(s3, bucket, tmp_path, how):
    """evil publishes three more times with --keep 1 (ignoring the publisher's grace), or deletes its whole
    prefix, while a run of the version is in flight: a fresh worker still runs the good package's release of
    that version; evil's tasks alone cannot start."""
    version = _two_packages(tmp_path, bucket)
    good = _manifests(versions(tmp_path / "processor", bucket).current_link.resolve(), "reporting_seeder")
    src = tmp_path / "src-pipeline_processing"
    client = boto3.client("s3")
    if how.startswith("keep-1"):
        for n in range(3):
            first = sorted(src.glob("*.json"))[0]
            first.write_text(first.read_text().replace('"description": "', f'"description": "v{n} ', 1))
            argv = [
                "publish",
                "--bucket",
                bucket,
                "--environment",
                ENV,
                "--package-name",
                "pipeline_processing",
            ]
            assert cli.main([*argv, "--dag-path", str(src), "--keep", "1", "--gc-grace", "0"]) == 0
    else:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{ENV}/pipeline_processing/")["Contents"]
        client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": o["Key"]} for o in listed]})
    worker = versions(tmp_path / "worker", bucket)
    if how.endswith("cap"):  # no package's history objects can be listed: their records' ids still serve
        worker.history_pages = 0
    dest = worker.materialize(version)
    assert sorted(p.name for p in dest.iterdir()) == ["reporting_seeder"]
    assert _manifests(dest, "reporting_seeder") == good
    assert worker.local_mapping(version).releases == {
        "reporting_seeder": versions(tmp_path / "processor", bucket)
        .local_mapping(version)
        .releases["reporting_seeder"]
    }


def test_a_version_named_before_versions_named_bytes_still_rebuilds(s3, bucket, tmp_path):
    """A version whose digest covers release ids alone (named by an earlier dagfactory-s3) is still
    rebuilt exactly by a fresh worker after the upgrade."""
    _two_packages(tmp_path, bucket)
    named = versions(tmp_path / "processor", bucket).local_mapping(
        versions(tmp_path / "processor", bucket).current_version()
    )
    legacy = Mapping(named.bucket, named.environment, named.releases)
    assert legacy.digest() != named.digest()
    version = version_name(legacy, 0)
    worker = versions(tmp_path / "worker", bucket)
    worker.materialize(version)
    assert worker.local_mapping(version).releases == named.releases


def test_a_record_naming_1500_releases_costs_one_get(s3, bucket, tmp_path):
    """A record whose history names 1,500 releases kept whole: a fresh worker reads each package's
    current record once and no history object it does not need (not one GET per entry)."""
    from dataclasses import replace

    from dagfactory_s3.release import Earlier

    version = _two_packages(tmp_path, bucket)
    client = boto3.client("s3")
    key = f"{ENV}/pipeline_processing/metadata.json"
    record = Release.from_json(client.get_object(Bucket=bucket, Key=key)["Body"].read(), file=key)
    fake = tuple(
        Earlier(
            release_id=f"2001{i // 28 + 1:02d}{i % 28 + 1:02d}T000000.000Z-{i:06x}",
            published_at="x",
            publisher_version="0",
            stored=True,
        )
        for i in range(1500)
    )[::-1]
    hostile = replace(record, history=tuple(fake))
    client.put_object(Bucket=bucket, Key=key, Body=hostile.to_json())
    worker = versions(tmp_path / "worker", bucket)
    worker.materialize(version)
    assert worker.requests["GET"] <= 4, worker.requests  # two current records (+ at most one object each)


def test_a_cached_object_changed_on_disk_is_never_linked_again(s3, bucket, tmp_path):
    """The content cache is trusted by digest, not by existence: an object changed in place (through a
    tree's hard link, say) is not linked into the next version; the worker fetches the recorded bytes."""
    from dagfactory_s3 import pending

    src = tmp_path / "src"
    shutil.copytree(EXAMPLES / "reporting_seeder" / "airflow_dags", src)
    publish(bucket, src, "reporting_seeder")
    processor = versions(tmp_path / "processor", bucket)
    processor.refresh()
    v1 = processor.current_version()
    tree = processor.current_link.resolve()
    manifest_path = sorted(tree.glob("reporting_seeder/dags/*.json"))[0]
    good = manifest_path.read_bytes()
    cached = processor.cache.path(hashlib.sha256(good).hexdigest())
    cached.chmod(0o644)
    cached.write_bytes(good.replace(b"{", b"[", 1))  # the cache and every tree linking it change
    first = sorted(src.glob("*.json"))[-1]
    first.write_text(first.read_text().replace('"description": "', '"description": "v2 ', 1))
    publish(bucket, src, "reporting_seeder")
    worker = versions(tmp_path / "processor", bucket)  # the same machine's disk, a fresh process
    worker.refresh()
    v2 = worker.current_version()
    assert v2 not in (None, v1)
    rebuilt = worker.current_link.resolve() / "reporting_seeder" / "dags" / manifest_path.name
    assert rebuilt.read_bytes() == good

    other = versions(tmp_path / "processor", bucket)
    cached2 = other.cache.path(hashlib.sha256(good).hexdigest())
    cached2.chmod(0o644)
    cached2.write_bytes(b"x" * len(good))
    dest = other.materialize(v1)  # a worker's tree: the changed object is pending, fetched as recorded
    target = dest / "reporting_seeder" / "dags" / manifest_path.name
    assert not target.exists() and pending.fetch(str(target))
    assert target.read_bytes() == good


# -- the platform policy is part of a version ------------------------------------------------------


def put_policy(bucket: str, doc: dict, policy_id: str, *, raw: bytes | None = None) -> str:
    """Publish a policy the way ``policy publish`` lays it out: the object, then the pointer (keeping
    the current one in its history). Returns the sha256 the pointer names."""
    from dagfactory_s3.serve import policy as policies

    client = boto3.client("s3")
    data = json.dumps(doc).encode()
    sha = hashlib.sha256(data).hexdigest()
    client.put_object(Bucket=bucket, Key=policies.object_key(ENV, sha), Body=raw if raw is not None else data)
    record, _ = policies.read_record(client, bucket, ENV)
    entry = policies.PolicyEntry(policy_id, sha, len(data))
    history = (record.current, *record.history) if record else ()
    pointer = policies.PolicyRecord(ENV, entry, history)
    if raw is None:  # as `policy publish` writes it: the pointer carries the current policy's bytes
        pointer = pointer.with_content(data)
    client.put_object(Bucket=bucket, Key=policies.pointer_key(ENV), Body=pointer.to_json())
    return sha


def _policy_of(tree: Path) -> str:
    from dagfactory_s3.serve import policy as policies

    stub_file = sorted(tree.glob("reporting_seeder/dags/*.py"))[0]
    return policies.for_stub(str(stub_file), environ={}).file


def test_a_version_serves_the_policy_it_was_made_with(s3, bucket, tmp_path):
    """The platform policy is part of a version: the tree serves it beside the packages (the loader
    finds it above each stub), a new policy makes a new version while the old version's tree and a
    fresh worker's rebuild of it keep the old policy, and both are checked against their sha256."""
    _two_packages(tmp_path, bucket)
    put_policy(bucket, {"policy_version": 1}, "20260101T000000.000Z-aaaaaa")
    processor = versions(tmp_path / "processor", bucket)
    processor.refresh()
    v1 = processor.current_version()
    assert processor.local_mapping(v1).releases[PLATFORM] == "20260101T000000.000Z-aaaaaa"
    assert (
        _policy_of(processor.current_link.resolve())
        == "dev/_platform/policy.json (20260101T000000.000Z-aaaaaa)"
    )

    stub_v1 = sorted((processor.tracking_dir / v1).glob("reporting_seeder/dags/*.py"))[0]
    new_id = "20260102T000000.000Z-bbbbbb"
    put_policy(bucket, {"policy_version": 1, "paused_on_create": True}, new_id)
    processor.refresh()
    v2 = processor.current_version()
    stub_v2 = processor.tracking_dir / v2 / stub_v1.relative_to(processor.tracking_dir / v1)
    assert not stub_v2.samefile(stub_v1)  # written anew, not linked: Airflow parses it under the new policy
    assert v2 != v1 and _policy_of(processor.current_link.resolve()).endswith(f"({new_id})")
    assert _policy_of(processor.tracking_dir / v1).endswith("(20260101T000000.000Z-aaaaaa)")

    # A fresh worker: two records and the pointer, plus the old policy's object for v1 (the pointer
    # carries only the current policy's bytes).
    for version, policy_id, gets in ((v1, "20260101T000000.000Z-aaaaaa", 4), (v2, new_id, 3)):
        worker = versions(tmp_path / f"worker-{policy_id}", bucket)
        assert _policy_of(worker.materialize(version)).endswith(f"({policy_id})")
        assert worker.local_mapping(version) == processor.local_mapping(version)
        assert worker.requests["GET"] == gets, worker.requests


def test_a_policy_that_does_not_verify_keeps_the_previous_one(s3, bucket, tmp_path, caplog):
    """A pointer naming bytes the object does not hold (or bytes that are no policy) is not served: the
    version keeps the previous policy, with an error line; with none before, none is served."""
    _two_packages(tmp_path, bucket)
    good = "20260101T000000.000Z-aaaaaa"
    put_policy(bucket, {"policy_version": 1}, good)
    processor = versions(tmp_path / "processor", bucket)
    processor.refresh()
    v1 = processor.current_version()
    put_policy(
        bucket, {"policy_version": 1, "paused_on_create": True}, "20260102T000000.000Z-bbbbbb", raw=b"{}"
    )
    processor.refresh()
    assert (
        processor.current_version() == v1
        and "platform policy at dev/_platform/policy.json not served" in caplog.text
    )
    put_policy(bucket, {"policy_version": 7}, "20260103T000000.000Z-cccccc")  # verifies, does not parse
    processor.refresh()
    assert processor.current_version() == v1
    assert _policy_of(processor.current_link.resolve()).endswith(f"({good})")


def test_a_worker_never_runs_a_version_without_its_policy(s3, bucket, tmp_path):
    """Fail closed: when the policy a version names can no longer be read (a newer policy is current, so
    the pointer no longer carries it, and its object was deleted), a fresh worker refuses the version
    rather than running it under the default rules."""
    from dagfactory_s3.serve import policy as policies

    _two_packages(tmp_path, bucket)
    sha = put_policy(bucket, {"policy_version": 1}, "20260101T000000.000Z-aaaaaa")
    processor = versions(tmp_path / "processor", bucket)
    processor.refresh()
    put_policy(bucket, {"policy_version": 1, "paused_on_create": True}, "20260102T000000.000Z-bbbbbb")
    boto3.client("s3").delete_object(Bucket=bucket, Key=policies.object_key(ENV, sha))
    with pytest.raises(SyncError, match=r"_platform/objects/.* is missing"):
        versions(tmp_path / "worker", bucket).materialize(processor.current_version())


def test_a_pointer_whose_carried_policy_is_not_its_bytes_is_refused():
    """The pointer may carry the current policy's bytes; bytes that do not match the sha256 and size it
    records are refused at their pointer, like an object that does not match (never served)."""
    from dataclasses import replace

    from dagfactory_s3.errors import ConfigError
    from dagfactory_s3.serve import policy as policies

    raw = b'{"policy_version": 1}'
    entry = policies.PolicyEntry(RID, hashlib.sha256(raw).hexdigest(), len(raw))
    good = policies.PolicyRecord(ENV, entry).with_content(raw)
    assert policies.PolicyRecord.from_json(good.to_json(), file="p", environment=ENV).content == raw
    forged = replace(good, content=b'{"policy_version": 1, "allow_privileged": true}').to_json()
    with pytest.raises(ConfigError, match="p: /content: does not match the sha256 and size"):
        policies.PolicyRecord.from_json(forged, file="p", environment=ENV)


# -- the version index: a task start in three requests -------------------------------------------------


def _indexed(tmp_path, bucket) -> tuple[ReleaseVersions, str]:
    """Two packages and a platform policy, refreshed by a dag-processor that writes version indexes."""
    for package in ("reporting_seeder", "pipeline_processing"):
        src = tmp_path / f"src-{package}"
        shutil.copytree(EXAMPLES / package / "airflow_dags", src)
        publish(bucket, src, package)
    put_policy(bucket, {"policy_version": 1}, "20260101T000000.000Z-aaaaaa")
    processor = versions(tmp_path / "processor", bucket, index=True)
    processor.refresh()
    version = processor.current_version()
    assert version is not None and processor.requests["PUT"] == 1
    return processor, version


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.suffix in (".py", ".json"))


def test_a_fresh_worker_starts_a_task_in_three_requests_from_the_version_index(s3, bucket, tmp_path):
    """The dag-processor writes each new version's index (one PUT, outside every listing of <env>/); a
    fresh worker lays the version's tree out from it and the policy's object -- two GETs, no LIST, no
    package's record, however many packages -- and the task's stub then fetches its one manifest: three
    requests. The tree, the mapping and the manifest's bytes are the dag-processor's; nothing it wrote
    shows under <env>/, and a refresh with nothing new writes nothing."""
    from dagfactory_s3 import pending

    processor, version = _indexed(tmp_path, bucket)
    client = boto3.client("s3")
    assert client.head_object(Bucket=bucket, Key=index_key(ENV, parse_version(version)[1]))
    assert not [
        o["Key"]
        for o in client.list_objects_v2(Bucket=bucket, Prefix=f"{ENV}/")["Contents"]
        if "_bundle" in o["Key"]
    ]
    processor.refresh()
    assert processor.requests["PUT"] == 1  # the same version: no second write

    s3.clear()
    worker = versions(tmp_path / "worker", bucket, index=True)
    tree = worker.materialize(version)
    assert [r.kind for r in s3.requests] == ["GET", "GET"], s3.requests
    assert worker.local_mapping(version) == processor.local_mapping(version)
    processor_tree = processor.current_link.resolve()
    stubs = [p for p in _tree(processor_tree) if p.endswith(".py")]
    assert [p for p in _tree(tree) if p.endswith(".py")] == stubs and len(stubs) == 3
    assert _policy_of(tree).endswith("(20260101T000000.000Z-aaaaaa)")
    manifest_file = tree / stubs[0].replace(".py", ".json")
    assert not manifest_file.exists()  # pending: fetched when its stub is parsed
    assert pending.fetch(str(manifest_file))
    assert manifest_file.read_bytes() == (processor_tree / manifest_file.relative_to(tree)).read_bytes()
    assert s3.count() == 3


@pytest.mark.parametrize("damage", ["missing", "another-version", "other-bytes", "not-json"])
def test_a_version_index_that_does_not_verify_is_not_used(s3, bucket, tmp_path, damage, caplog):
    """An index that is missing (expired by the bucket's lifecycle rule, never written), names another
    version, names other bytes for a package, or is not an index at all is not trusted: the worker
    says so and rebuilds the version from S3 history, to the same mapping and tree."""
    caplog.set_level("INFO", logger="dagfactory_s3.bundle")
    processor, version = _indexed(tmp_path, bucket)
    client = boto3.client("s3")
    key = index_key(ENV, parse_version(version)[1])
    doc = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    if damage == "missing":
        client.delete_object(Bucket=bucket, Key=key)
    elif damage == "another-version":
        doc["mapping"]["releases"]["reporting_seeder"] = RID
        client.put_object(Bucket=bucket, Key=key, Body=json.dumps(doc).encode())
    elif damage == "other-bytes":
        rest = sorted(doc["files"]["pipeline_processing"])[0]
        doc["files"]["pipeline_processing"][rest]["sha256"] = "0" * 64
        client.put_object(Bucket=bucket, Key=key, Body=json.dumps(doc).encode())
    else:
        client.put_object(Bucket=bucket, Key=key, Body=b"\x00garbage")
    worker = versions(tmp_path / "worker", bucket, index=True)
    tree = worker.materialize(version)
    assert worker.local_mapping(version) == processor.local_mapping(version)
    stubs = [p for p in _tree(processor.current_link.resolve()) if p.endswith(".py")]
    assert [p for p in _tree(tree) if p.endswith(".py")] == stubs
    assert worker.requests["LIST"] >= 1  # rebuilt from history
    assert "rebuilding it from history" in caplog.text
    if damage == "other-bytes":
        assert "/files/pipeline_processing: does not serve what the version names" in caplog.text
