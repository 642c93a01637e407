"""promote: what a release of one environment recorded, its sources resolved for another, from S3 only.

Against the real moto server through the counting proxy, the CLI in-process (``cli.main``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import boto3
import pytest
from test_publish import main, objects, publish_args, run_cli

from dagfactory_s3 import manifest

from conftest import EXAMPLES, ROOT, unstamped

PACKAGE = "reporting_seeder"
SOURCE = ROOT / "examples" / "features" / "environments" / "reporting_seeder_refresh_all.json"
PLAIN = EXAMPLES / PACKAGE / "airflow_dags" / "reporting_seeder_refresh_agency.json"
ALL, AGENCY = "dags/reporting_seeder_refresh_all.json", "dags/reporting_seeder_refresh_agency.json"


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A package's working copy: one manifest with environments, one without."""
    folder = tmp_path / "airflow_dags"
    folder.mkdir()
    for path in (SOURCE, PLAIN):
        shutil.copy(path, folder / path.name)
        shutil.copy(path.with_suffix(".py"), folder / path.with_suffix(".py").name)
    return folder


def publish(capsys, bucket: str, environment: str, folder: Path, *extra: str) -> tuple[int, str, str]:
    args = publish_args(bucket, PACKAGE, folder, *extra)
    args[args.index("--environment") + 1] = environment
    return main(capsys, *args)


def promote(capsys, bucket: str, *extra: str, to: str = "prod") -> tuple[int, str, str]:
    argv = ["promote", "--bucket", bucket, "--package-name", PACKAGE, "--from", "dev", "--to", to, "--yes"]
    return main(capsys, *argv, *extra)


def record(s3, bucket: str, environment: str) -> dict:
    key = f"{environment}/{PACKAGE}/metadata.json"
    return json.loads(objects(s3, bucket, key)[key])


def served(s3, bucket: str, environment: str) -> dict[str, bytes]:
    """What a reader gets: each manifest of the record from the content store, digest checked."""
    rec, stored = record(s3, bucket, environment), objects(s3, bucket, f"{environment}/{PACKAGE}/")
    out = {}
    for rest, entry in rec["files"].items():
        if rest.endswith(".json"):
            data = stored[f"{environment}/{PACKAGE}/_releases/objects/{entry['sha256']}"]
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
            out[rest] = data
    return out


def edit(path: Path, change) -> None:
    doc = json.loads(path.read_bytes())
    change(doc)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def prod_image(doc: dict, tag: str) -> None:
    doc["environments"]["prod"]["task_defaults"]["image"] = doc["task_defaults"]["image"].replace(
        ":2.4.1", tag
    )


class TestPromote:
    def test_promote_ships_what_publish_environment_prod_of_the_same_sources_ships(
        self, s3, bucket, src, tmp_path, capsys
    ):
        """dev's recorded sources, resolved for prod, are byte for byte what `publish --environment prod`
        of the same sources uploads: the same sources published to prod afterwards write nothing."""
        snapshot = tmp_path / "snapshot"
        shutil.copytree(src, snapshot)
        code, _, err = publish(
            capsys, bucket, "dev", src, "--package-version", "2.4.1", "--git-sha", "abc123"
        )
        assert code == 0, err
        dev = record(s3, bucket, "dev")
        # the working copy moves on (and even loses a DAG): promote reads S3 only
        edit(src / SOURCE.name, lambda d: prod_image(d, ":9.9.9"))
        (src / PLAIN.name).unlink()
        code, out, err = promote(capsys, bucket)
        assert code == 0, err
        assert (
            f"promoted {PACKAGE} in s3://{bucket}/prod/{PACKAGE}/ from dev release {dev['release_id']}" in out
        )
        prod = record(s3, bucket, "prod")
        assert prod["promoted_from"] == {"environment": "dev", "release_id": dev["release_id"]}
        assert (prod["package_version"], prod["git_sha"]) == ("2.4.1", "abc123")
        assert {rest: unstamped(data) for rest, data in served(s3, bucket, "prod").items()} == {
            ALL: manifest.publishable(manifest.load(SOURCE), "prod").raw,
            AGENCY: PLAIN.read_bytes(),
        }
        assert served(s3, bucket, "dev")[ALL] != served(s3, bucket, "prod")[ALL]
        s3.clear()
        code, out, err = publish(capsys, bucket, "prod", snapshot, "--output", "json")
        assert code == 0, err
        assert json.loads(out)["changed"] is False and s3.count("PUT") == 0

    def test_record_names_each_resolved_manifests_source_in_the_content_store(self, s3, bucket, src, capsys):
        """dev's record names the source of the manifest it resolved (not of the plain one, its own
        source); the source's bytes are in the content store, and `list --check` agrees."""
        assert publish(capsys, bucket, "dev", src)[0] == 0
        rec = record(s3, bucket, "dev")
        assert rec["sources"] is True and "source" not in rec["files"][AGENCY]
        source = rec["files"][ALL]["source"]
        assert source == {
            "sha256": hashlib.sha256(SOURCE.read_bytes()).hexdigest(),
            "size": SOURCE.stat().st_size,
        }
        key = f"dev/{PACKAGE}/_releases/objects/{source['sha256']}"
        assert objects(s3, bucket, key)[key] == SOURCE.read_bytes()
        code, _, err = main(
            capsys, "list", "--bucket", bucket, "--environment", "dev", "--package-name", PACKAGE, "--check"
        )
        assert code == 0, err

    def test_promoting_an_unchanged_release_again_writes_nothing(self, s3, bucket, src, capsys):
        assert publish(capsys, bucket, "dev", src)[0] == 0
        assert promote(capsys, bucket)[0] == 0
        before = objects(s3, bucket)
        s3.clear()
        code, out, err = promote(capsys, bucket, "--output", "json")
        assert code == 0, err
        assert json.loads(out)["changed"] is False
        assert (s3.count("PUT"), s3.count("DELETE")) == (0, 0) and objects(s3, bucket) == before

    def test_a_kept_release_is_promoted_by_id(self, s3, bucket, src, capsys):
        """--release promotes an older dev release from dev's history, not dev's current one."""
        assert publish(capsys, bucket, "dev", src)[0] == 0
        first = record(s3, bucket, "dev")["release_id"]
        edit(src / SOURCE.name, lambda d: prod_image(d, ":2.5.0"))
        assert publish(capsys, bucket, "dev", src)[0] == 0
        assert promote(capsys, bucket, "--release", first)[0] == 0
        assert record(s3, bucket, "prod")["promoted_from"]["release_id"] == first
        assert b"reporting-seeder:2.4.0" in served(s3, bucket, "prod")[ALL]
        assert promote(capsys, bucket)[0] == 0
        assert b"reporting-seeder:2.5.0" in served(s3, bucket, "prod")[ALL]

    def test_a_change_of_another_environments_values_is_recorded_in_dev(self, s3, bucket, src, capsys):
        """Changing only prod's values leaves dev's manifests as they are but commits a dev release
        naming the new source (what was published is what promote ships); plan says so."""
        assert publish(capsys, bucket, "dev", src)[0] == 0
        before = record(s3, bucket, "dev")
        edit(src / SOURCE.name, lambda d: prod_image(d, ":2.5.0"))
        code, out, _ = publish(capsys, bucket, "dev", src, "--dry-run")
        assert code == 0 and "its source changed (another environment's values)" in out
        assert publish(capsys, bucket, "dev", src)[0] == 0
        after = record(s3, bucket, "dev")
        assert after["release_id"] != before["release_id"]
        assert after["files"][ALL]["sha256"] == before["files"][ALL]["sha256"]
        assert after["files"][ALL]["source"] != before["files"][ALL]["source"]
        assert promote(capsys, bucket)[0] == 0
        assert b"reporting-seeder:2.5.0" in served(s3, bucket, "prod")[ALL]

    def test_rollback_keeps_the_sources_of_the_release_it_restores(self, s3, bucket, src, capsys):
        assert publish(capsys, bucket, "dev", src)[0] == 0
        first = record(s3, bucket, "dev")
        edit(src / SOURCE.name, lambda d: prod_image(d, ":2.5.0"))
        assert publish(capsys, bucket, "dev", src)[0] == 0
        code, _, err = main(
            capsys, "rollback", "--bucket", bucket, "--environment", "dev", "--package-name", PACKAGE,
            "--to", "previous", "--yes",
        )  # fmt: skip
        assert code == 0, err
        assert record(s3, bucket, "dev")["files"] == first["files"]
        assert promote(capsys, bucket)[0] == 0
        assert b"reporting-seeder:2.4.0" in served(s3, bucket, "prod")[ALL]

    def test_list_names_where_a_promoted_release_came_from(self, s3, bucket, src, capsys):
        assert publish(capsys, bucket, "dev", src)[0] == 0
        dev = record(s3, bucket, "dev")["release_id"]
        assert promote(capsys, bucket)[0] == 0
        args = ["list", "--bucket", bucket, "--environment", "prod", "--package-name", PACKAGE]
        code, out, err = main(capsys, *args, "--history")
        assert code == 0, err
        head, history = out.splitlines()[0], out.split("history (newest first):")[1]
        assert head.endswith(f", promoted from dev release {dev}")
        assert f"(promoted from dev release {dev}, current)" in history
        code, out, _ = main(capsys, *args, "--output", "json")
        assert json.loads(out)["promoted_from"] == {"environment": "dev", "release_id": dev}

    def test_without_yes_promote_is_its_plan(self, s3, bucket, src, capsys):
        """One confirm model for promote, rollback and retire: without --yes, the plan and no write."""
        assert publish(capsys, bucket, "dev", src)[0] == 0
        s3.clear()
        argv = ["promote", "--bucket", bucket, "--package-name", PACKAGE, "--from", "dev", "--to", "prod"]
        code, _, err = main(capsys, *argv)
        assert code == 0 and "dry run: pass --yes to promote" in err
        assert s3.count("PUT") == 0 and objects(s3, bucket, "prod/") == {}

    def test_promote_through_the_cli_subprocess(self, s3, bucket, src, capsys):
        assert publish(capsys, bucket, "dev", src)[0] == 0
        result = run_cli(
            s3, "promote", "--bucket", bucket, "--package-name", PACKAGE, "--from", "dev", "--to", "prod",
            "--output", "json", "--yes",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["changed"] is True and data["environment"] == "prod"
        assert {d["dag_id"] for d in data["dags"]} == {
            "reporting_seeder_refresh_all",
            "reporting_seeder_refresh_agency",
        }


def _moto(s3):
    return boto3.client("s3", endpoint_url=s3.upstream)


class TestRefused:
    """Each refusal: one line naming what is wrong, a non-zero exit, nothing written to prod."""

    def refused(self, s3, bucket, capsys, *extra: str) -> tuple[int, str]:
        s3.clear()
        code, _, err = promote(capsys, bucket, "--quiet", *extra)  # quiet: no "no platform policy" warning
        assert "Traceback" not in err
        assert s3.count("PUT") == 0 and s3.count("DELETE") == 0
        assert objects(s3, bucket, "prod/") == {}
        return code, err.strip()

    def test_no_release_in_the_source_environment(self, s3, bucket, capsys):
        code, err = self.refused(s3, bucket, capsys)
        assert code == 4
        assert err == f"error: nothing to promote: no release of {PACKAGE!r} in s3://{bucket}/dev/{PACKAGE}/"

    def test_unknown_release(self, s3, bucket, src, capsys):
        assert publish(capsys, bucket, "dev", src)[0] == 0
        code, err = self.refused(s3, bucket, capsys, "--release", "20200101T000000.000Z-000000")
        assert code == 4 and "release 20200101T000000.000Z-000000 of 'reporting_seeder' is not in dev/" in err
        code, err = self.refused(s3, bucket, capsys, "--release", "../x")
        assert code == 2 and "release id '../x' is invalid" in err

    def test_source_content_missing(self, s3, bucket, src, capsys):
        assert publish(capsys, bucket, "dev", src)[0] == 0
        sha = record(s3, bucket, "dev")["files"][ALL]["source"]["sha256"]
        key = f"dev/{PACKAGE}/_releases/objects/{sha}"
        _moto(s3).delete_object(Bucket=bucket, Key=key)
        code, err = self.refused(s3, bucket, capsys)
        assert code == 4 and len(err.splitlines()) == 1
        assert err.startswith(f"error: s3://{bucket}/{key}: source of {ALL} in release ")
        assert err.endswith("is missing; cannot promote")

    def test_source_content_that_does_not_match_its_digest(self, s3, bucket, src, capsys):
        assert publish(capsys, bucket, "dev", src)[0] == 0
        sha = record(s3, bucket, "dev")["files"][AGENCY]["sha256"]
        key = f"dev/{PACKAGE}/_releases/objects/{sha}"
        _moto(s3).put_object(Bucket=bucket, Key=key, Body=PLAIN.read_bytes().replace(b"agency", b"agenci"))
        code, err = self.refused(s3, bucket, capsys)
        assert code == 4 and len(err.splitlines()) == 1
        assert f"s3://{bucket}/{key}: sha256 " in err and f"names {sha} for the source of {AGENCY}" in err

    def test_a_recorded_source_that_is_not_what_dev_served(self, s3, bucket, src, capsys):
        """The dev record names, as the source of a manifest, another source object (a valid one, with
        its digest right): resolved for dev it is not the manifest dev served, so prod would run what
        dev never ran. Refused."""
        assert publish(capsys, bucket, "dev", src)[0] == 0
        key = f"dev/{PACKAGE}/metadata.json"
        rec = json.loads(objects(s3, bucket, key)[key])
        other = SOURCE.read_bytes().replace(b'"description": "', b'"description": "not what dev ran: ', 1)
        sha = hashlib.sha256(other).hexdigest()
        _moto(s3).put_object(Bucket=bucket, Key=f"dev/{PACKAGE}/_releases/objects/{sha}", Body=other)
        rec["files"][ALL]["source"].update(sha256=sha, size=len(other))
        _moto(s3).put_object(Bucket=bucket, Key=key, Body=json.dumps(rec).encode())
        code, err = self.refused(s3, bucket, capsys)
        assert code == 4 and len(err.splitlines()) == 1
        assert f"the recorded source of {ALL}, resolved for 'dev', is not the manifest release " in err

    def test_a_git_sha_the_release_did_not_stamp(self, s3, bucket, src, capsys):
        """A dev record whose git sha is not the one its changed manifests were stamped with: promoting
        would stamp prod with a commit dev never ran. Refused."""
        assert publish(capsys, bucket, "dev", src, "--git-sha", "abc123")[0] == 0
        key = f"dev/{PACKAGE}/metadata.json"
        rec = json.loads(objects(s3, bucket, key)[key])
        rec["git_sha"] = "f0f0f0f"
        _moto(s3).put_object(Bucket=bucket, Key=key, Body=json.dumps(rec).encode())
        code, err = self.refused(s3, bucket, capsys)
        assert (
            code == 4
            and "records git sha 'f0f0f0f' but stamped the manifests it changed with 'abc123'" in err
        )

    def test_target_the_sources_declare_no_values_for(self, s3, bucket, src, capsys):
        assert publish(capsys, bucket, "dev", src)[0] == 0
        release = record(s3, bucket, "dev")["release_id"]
        s3.clear()
        code, _, err = promote(capsys, bucket, "--quiet", to="staging")
        assert code == 1 and s3.count("PUT") == 0 and objects(s3, bucket, "staging/") == {}
        assert err.strip() == (
            f"s3://{bucket}/dev/{PACKAGE}/{ALL}@{release}: /environments: no values for environment "
            "'staging' (declared: dev, prod); add an entry, even an empty one"
        )

    def test_sources_the_platform_policy_refuses(self, s3, bucket, src, tmp_path, capsys):
        assert publish(capsys, bucket, "dev", src)[0] == 0
        policy = tmp_path / "policy.json"
        policy.write_text(json.dumps({"image_registries": ["registry.prod.example.com"]}))
        code, err = self.refused(s3, bucket, capsys, "--policy", str(policy))
        assert code == 1
        assert all(
            line.startswith(f"s3://{bucket}/dev/{PACKAGE}/dags/")
            and "not allowed by the platform policy" in line
            for line in err.splitlines()
        )

    def test_a_release_whose_publisher_recorded_no_sources(self, s3, bucket, src, capsys):
        """A dev release published before sources were recorded may hold dev's values already: refused."""
        assert publish(capsys, bucket, "dev", src)[0] == 0
        key = f"dev/{PACKAGE}/metadata.json"
        old = json.loads(objects(s3, bucket, key)[key])
        del old["sources"]
        for entry in old["files"].values():
            entry.pop("source", None)
        _moto(s3).put_object(Bucket=bucket, Key=key, Body=json.dumps(old).encode())
        code, err = self.refused(s3, bucket, capsys)
        assert code == 4 and "which did not record its sources" in err
        assert "publish it to 'dev' again with this version, then promote" in err

    def test_a_tombstone(self, s3, bucket, src, capsys):
        assert publish(capsys, bucket, "dev", src)[0] == 0
        args = ["--bucket", bucket, "--environment", "dev", "--package-name", PACKAGE, "--yes"]
        assert main(capsys, "retire", *args)[0] == 0
        code, err = self.refused(s3, bucket, capsys)
        assert code == 4 and "is a tombstone (retire); nothing to promote" in err

    def test_the_same_environment_twice(self, s3, bucket, capsys):
        s3.clear()
        code, _, err = main(
            capsys, "promote", "--bucket", bucket, "--package-name", PACKAGE, "--from", "dev", "--to", "dev"
        )
        assert code == 2 and "--from and --to are both 'dev'" in err and s3.count("GET") == 0
