"""The provenance stamp: each published manifest names the release that last changed it.

The publisher stamps only manifests whose unstamped content changed against the current release,
so an unchanged DAG keeps its bytes (and its dag_hash) whatever else a publish changes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from test_publish import _fail_puts_after, main, objects, publish_args, put_keys, run_cli

from dagfactory_s3 import manifest, stub
from dagfactory_s3.errors import ManifestError

from bad_inputs import GOOD, SOURCE_CASES
from conftest import EXAMPLES

PACKAGE = "reporting_seeder"
SRC = EXAMPLES / PACKAGE / "airflow_dags"
ALL, AGENCY = "reporting_seeder_refresh_all", "reporting_seeder_refresh_agency"
ENV = "dev"


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "airflow_dags"
    shutil.copytree(SRC, folder)
    return folder


def publish(capsys, bucket: str, folder: Path, *extra: str, environment: str = ENV) -> None:
    args = publish_args(bucket, PACKAGE, folder, *extra)
    args[args.index("--environment") + 1] = environment
    code, _, err = main(capsys, *args)
    assert code == 0, err


def record(s3, bucket: str, environment: str = ENV) -> dict:
    key = f"{environment}/{PACKAGE}/metadata.json"
    return json.loads(objects(s3, bucket, key)[key])


def served(s3, bucket: str, environment: str = ENV) -> dict[str, bytes]:
    """Each manifest of the current record, from the content store, by dag_id."""
    rec = record(s3, bucket, environment)
    stored = objects(s3, bucket, f"{environment}/{PACKAGE}/_releases/objects/")
    return {
        rest.removeprefix("dags/").removesuffix(".json"): stored[
            f"{environment}/{PACKAGE}/_releases/objects/{entry['sha256']}"
        ]
        for rest, entry in rec["files"].items()
        if rest.endswith(".json")
    }


def stamp_of(data: bytes) -> dict:
    return json.loads(data)["provenance"]


def edit(path: Path, **changes) -> None:
    doc = json.loads(path.read_bytes())
    doc.update(changes)
    path.write_text(json.dumps(doc, indent=2) + "\n")


class TestStamp:
    def test_stamp_is_one_line_after_the_brace_and_comes_off_exactly(self):
        raw = (SRC / f"{ALL}.json").read_bytes()
        stamp = {"release": "20240101T120000.123Z-1a2b3c", "git_sha": "abc123", "package_version": "2.4.1"}
        stamped = manifest.stamp(raw, stamp)
        assert stamped.splitlines()[1] == (
            b'  "provenance": {"release": "20240101T120000.123Z-1a2b3c", "git_sha": "abc123", '
            b'"package_version": "2.4.1"},'
        )
        assert manifest.unstamp(stamped, stamp) == raw
        assert manifest.parse(stamped, file="x.json").data["provenance"] == stamp
        assert manifest.stamp(raw, {"release": "20240101T120000.123Z-1a2b3c"}) != stamped
        with pytest.raises(ValueError):
            manifest.unstamp(raw, stamp)

    def test_the_stamp_of_a_published_manifest_is_accepted(self):
        """What the loader and the sidecar parse (not a source) may carry the publisher's stamp."""
        for _case, raw, _pointer, _text in SOURCE_CASES:
            assert "provenance" in manifest.parse(raw, file="x.json").data


@pytest.mark.parametrize(("case", "raw", "pointer", "text"), SOURCE_CASES, ids=[c[0] for c in SOURCE_CASES])
def test_a_source_with_a_stamp_is_refused_by_library_cli_and_publisher(
    case, raw, pointer, text, s3, bucket, tmp_path, capsys
):
    """provenance is written by the publisher: a source that has one is refused with its pointer,
    by the library, by validate and by publish (nothing uploaded)."""
    name = f"{GOOD['dag_id']}.json"
    with pytest.raises(ManifestError) as info:
        manifest.parse(raw, file=name, source=True)
    assert any(
        line.startswith(f"{name}: {pointer}: ") and text in line for line in str(info.value).splitlines()
    )
    (tmp_path / name).write_bytes(raw)
    code, _, err = main(capsys, "validate", "--dag-path", str(tmp_path))
    assert code == 1 and f"{tmp_path / name}: {pointer}: " in err and "Traceback" not in err
    s3.clear()
    code, _, err = main(capsys, *publish_args(bucket, GOOD["package"], tmp_path))
    assert code == 1 and f"{tmp_path / name}: {pointer}: " in err
    assert s3.count("PUT") == 0 and objects(s3, bucket) == {}


class TestPublish:
    def test_first_publish_stamps_every_manifest_with_its_release(self, s3, bucket, src, capsys):
        publish(capsys, bucket, src, "--git-sha", "abc123", "--package-version", "2.4.1")
        rec = record(s3, bucket)
        for dag_id, data in served(s3, bucket).items():
            assert stamp_of(data) == {
                "release": rec["release_id"],
                "git_sha": "abc123",
                "package_version": "2.4.1",
            }
            entry = rec["files"][f"dags/{dag_id}.json"]
            local = (src / f"{dag_id}.json").read_bytes()
            assert entry["unstamped"] == hashlib.sha256(local).hexdigest()
            assert manifest.unstamp(data, entry["provenance"]) == local

    def test_unchanged_republish_writes_nothing_and_keeps_the_stamps(self, s3, bucket, src, capsys):
        """Another commit and version, same content: 0 PUTs, the stamps still name the first release."""
        publish(capsys, bucket, src, "--git-sha", "abc123", "--package-version", "2.4.1")
        before = served(s3, bucket)
        s3.clear()
        publish(capsys, bucket, src, "--git-sha", "def456", "--package-version", "2.4.2")
        assert (s3.count("PUT"), s3.count("DELETE")) == (0, 0)
        assert served(s3, bucket) == before

    def test_one_changed_manifest_is_the_only_one_restamped(self, s3, bucket, src, capsys):
        publish(capsys, bucket, src, "--git-sha", "abc123")
        first, before = record(s3, bucket)["release_id"], served(s3, bucket)
        edit(src / f"{ALL}.json", description="changed")
        s3.clear()
        publish(capsys, bucket, src, "--git-sha", "def456")
        after, second = served(s3, bucket), record(s3, bucket)["release_id"]
        assert after[AGENCY] == before[AGENCY] and stamp_of(after[AGENCY])["release"] == first
        assert stamp_of(after[ALL]) == {"release": second, "git_sha": "def456"}
        prefix = f"{ENV}/{PACKAGE}/"
        sha = hashlib.sha256(after[ALL]).hexdigest()
        assert put_keys(s3) == [
            f"{prefix}_releases/objects/{sha}",
            f"{prefix}metadata.json",
            f"{prefix}dags/{ALL}.json",
        ]

    def test_git_sha_from_the_ci_environment(self, s3, bucket, src, capsys, monkeypatch):
        monkeypatch.setenv("GITHUB_SHA", "0123456789abcdef")
        publish(capsys, bucket, src)
        assert record(s3, bucket)["git_sha"] == "0123456789abcdef"
        assert {stamp_of(d)["git_sha"] for d in served(s3, bucket).values()} == {"0123456789abcdef"}
        monkeypatch.delenv("GITHUB_SHA")
        monkeypatch.setenv("CI_COMMIT_SHA", "fedcba9876543210")
        edit(src / f"{ALL}.json", description="changed")
        publish(capsys, bucket, src)
        assert stamp_of(served(s3, bucket)[ALL])["git_sha"] == "fedcba9876543210"

    def test_a_git_sha_the_stamp_cannot_carry_is_refused_before_any_request(self, s3, bucket, src, capsys):
        s3.clear()
        code, _, err = main(capsys, *publish_args(bucket, PACKAGE, src, "--git-sha", "abc 123"))
        assert code == 2 and "--git-sha: 'abc 123'" in err and s3.count("GET") + s3.count("PUT") == 0

    def test_rollback_restores_the_stamps_it_had(self, s3, bucket, src, capsys):
        publish(capsys, bucket, src)
        before = served(s3, bucket)
        edit(src / f"{ALL}.json", description="changed")
        publish(capsys, bucket, src)
        args = ["--bucket", bucket, "--environment", ENV, "--package-name", PACKAGE]
        assert main(capsys, "rollback", *args, "--to", "previous", "--yes")[0] == 0
        assert served(s3, bucket) == before
        s3.clear()
        shutil.copy(SRC / f"{ALL}.json", src / f"{ALL}.json")
        publish(capsys, bucket, src)  # the working copy is back to the restored release: nothing to do
        assert s3.count("PUT") == 0

    def test_a_rerun_takes_over_the_release_of_a_publish_stopped_before_its_commit(
        self, s3, bucket, src, capsys
    ):
        """The commit refused: the message names the release; the rerun (same git sha and version)
        commits that very release and uploads no manifest again, leaving no unnamed content."""
        publish(capsys, bucket, src, "--git-sha", "abc123")
        first = record(s3, bucket)
        edit(src / f"{ALL}.json", description="changed")
        edit(src / f"{AGENCY}.json", description="changed")
        extra = ("--git-sha", "def456", "--package-version", "2.4.2")
        s3.fault = _fail_puts_after(0, "500", only="/metadata.json")  # the commit refused
        code, _, err = main(capsys, *publish_args(bucket, PACKAGE, src, *extra))
        s3.fault = None
        assert code == 3 and f"release {first['release_id']} is still current" in err, err
        stopped = err.split("it commits release ")[1].split(",")[0]
        assert record(s3, bucket) == first
        s3.clear()
        publish(capsys, bucket, src, *extra)
        assert record(s3, bucket)["release_id"] == stopped
        prefix = f"{ENV}/{PACKAGE}/"
        assert [k for k in put_keys(s3) if "/objects/" in k] == []  # both manifests were uploaded
        reads = [r.path for r in s3.requests if r.method == "GET" and "/_releases/objects/" in r.path]
        assert len(reads) == 1  # the newest unnamed object
        for dag_id in (ALL, AGENCY):
            assert stamp_of(served(s3, bucket)[dag_id]) == {
                "release": stopped,
                "git_sha": "def456",
                "package_version": "2.4.2",
            }
        named = {
            f"{prefix}_releases/objects/{e['sha256']}"
            for r in (first, record(s3, bucket))
            for e in r["files"].values()
        }
        assert set(objects(s3, bucket, f"{prefix}_releases/objects/")) <= named

    def test_a_rerun_from_another_commit_is_a_new_release(self, s3, bucket, src, capsys):
        """The stopped attempt's stamps name another git sha: the rerun keeps its own id (a stamp
        stays true) and uploads the changed manifests stamped with it."""
        publish(capsys, bucket, src, "--git-sha", "abc123")
        edit(src / f"{ALL}.json", description="changed")
        s3.fault = _fail_puts_after(0, "500", only="/metadata.json")  # the commit refused
        code, _, err = main(capsys, *publish_args(bucket, PACKAGE, src, "--git-sha", "def456"))
        s3.fault = None
        assert code == 3, err
        stopped = err.split("it commits release ")[1].split(",")[0]
        s3.clear()
        publish(capsys, bucket, src, "--git-sha", "0fedcba")
        rerun = record(s3, bucket)["release_id"]
        assert rerun != stopped and rerun > stopped
        assert stamp_of(served(s3, bucket)[ALL]) == {"release": rerun, "git_sha": "0fedcba"}
        assert len([k for k in put_keys(s3) if "/objects/" in k]) == 1

    def test_a_planted_future_stamp_is_not_taken_over(self, s3, bucket, src, capsys):
        """An unnamed content object stamped with release 9999...: a rerun (no git sha, so any stamp
        without one matches) adopts only an id not later than now, so the history stays in order."""
        import boto3

        publish(capsys, bucket, src)
        first = record(s3, bucket)["release_id"]
        planted = manifest.stamp(
            (src / f"{ALL}.json").read_bytes(), {"release": "99991231T235959.999Z-abcdef"}
        )
        key = f"{ENV}/{PACKAGE}/_releases/objects/{hashlib.sha256(planted).hexdigest()}"
        boto3.client("s3", endpoint_url=s3.upstream).put_object(Bucket=bucket, Key=key, Body=planted)
        edit(src / f"{ALL}.json", description="changed")
        publish(capsys, bucket, src)
        rerun = record(s3, bucket)["release_id"]
        assert first < rerun < "99990101" and rerun[:8] == first[:8]

    def test_a_wrong_object_at_a_content_key_is_found_and_replaced(self, s3, bucket, src, capsys):
        """Other bytes of the right size at a manifest's content key: list --check reports the release
        inconsistent (readers would refuse it), and the next publish writes the recorded bytes again."""
        import boto3

        publish(capsys, bucket, src)
        rec = record(s3, bucket)
        sha = rec["files"][f"dags/{AGENCY}.json"]["sha256"]
        key = f"{ENV}/{PACKAGE}/_releases/objects/{sha}"
        client = boto3.client("s3", endpoint_url=s3.upstream)
        good = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        client.put_object(Bucket=bucket, Key=key, Body=good.replace(b"{", b"[", 1))
        args = ["--bucket", bucket, "--environment", ENV, "--package-name", PACKAGE]
        code, out, _ = main(capsys, "list", *args, "--check", "--output", "json")
        assert code != 0 and json.loads(out)["content_missing"] == [f"dags/{AGENCY}.json"]
        edit(src / f"{ALL}.json", description="changed")
        s3.clear()
        publish(capsys, bucket, src)
        assert key in put_keys(s3)
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == good
        assert main(capsys, "list", *args, "--check")[0] == 0

    def test_promote_stamps_with_the_target_release_and_the_tested_commit(self, s3, bucket, src, capsys):
        publish(capsys, bucket, src, "--git-sha", "abc123")
        args = ["--bucket", bucket, "--package-name", PACKAGE, "--from", ENV, "--to", "prod", "--yes"]
        assert main(capsys, "promote", *args)[0] == 0
        prod = record(s3, bucket, "prod")["release_id"]
        for dag_id, data in served(s3, bucket, "prod").items():
            assert stamp_of(data) == {"release": prod, "git_sha": "abc123"}
            assert json.loads(data) == {
                **json.loads((src / f"{dag_id}.json").read_bytes()),
                "provenance": stamp_of(data),
            }


@pytest.mark.airflow
class TestInAirflow:
    def test_one_change_changes_exactly_one_dag_hash_and_stamped_dags_load(self, s3, bucket, src, tmp_path):
        """Republishing with one DAG changed: that DAG's stamp and dag_hash change, the other's do not;
        the DagBag loads stamped manifests and shows the stamp on the DAG page. (The publisher runs as
        a subprocess: Airflow, imported here, must not keep a per-test stderr as its log stream.)"""
        pytest.importorskip("airflow")
        from airflow_env import dag_bag, probe

        dags = tmp_path / "dags"  # one folder: Airflow serializes its path into every DAG

        def hashes(step: str) -> dict[str, str]:
            shutil.rmtree(dags, ignore_errors=True)
            dags.mkdir()
            (tmp_path / step).mkdir()
            for dag_id, data in served(s3, bucket).items():
                (dags / f"{dag_id}.json").write_bytes(data)
                (dags / f"{dag_id}.py").write_bytes(stub.render(f"{dag_id}.json"))
            result = probe(dags, tmp_path / step)
            assert result["import_errors"] == {}
            if step == "1":
                bag = dag_bag(dags)
                assert bag.import_errors == {}
                release = record(s3, bucket)["release_id"]
                assert f"- release: `{release}`" in bag.dags[ALL].doc_md
                assert "- git sha: `abc123`" in bag.dags[ALL].doc_md
            return result["hashes"]

        def publish_cli(*extra: str) -> None:
            result = run_cli(s3, *publish_args(bucket, PACKAGE, src, *extra))
            assert result.returncode == 0, result.stderr

        publish_cli("--git-sha", "abc123")
        one = hashes("1")
        publish_cli("--git-sha", "def456")  # unchanged: same bytes, same hashes
        assert hashes("2") == one
        edit(src / f"{ALL}.json", description="changed")
        publish_cli("--git-sha", "def456")
        three = hashes("3")
        assert three[AGENCY] == one[AGENCY] and three[ALL] != one[ALL]
