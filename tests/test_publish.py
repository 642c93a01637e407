"""The publisher against a real moto S3 server over HTTP, through the counting, fault-injecting proxy.

User-facing behaviour runs the CLI as a subprocess; details call ``cli.main`` in-process (same code,
same environment: the ``s3`` fixture points AWS_* at the proxy).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from dagfactory_s3.errors import PublishError, RecordConflict
from dagfactory_s3.publisher import cli
from dagfactory_s3.publisher.store import PackageStore
from dagfactory_s3.publisher.transaction import Wanted, execute, make_plan, wanted_from_dir
from dagfactory_s3.s3 import client as s3_client

from bad_inputs import CASES, GOOD
from s3server import aws_env

ENV = "dev"
PP, RS = "pipeline_processing", "reporting_seeder"


def run_cli(proxy, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess, talking to S3 through the proxy."""
    return subprocess.run(
        [sys.executable, "-m", "dagfactory_s3.publisher.cli", *args],
        env=aws_env(proxy.url),
        capture_output=True,
        text=True,
        timeout=120,
    )


def main(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def publish_args(bucket: str, package: str, dag_path: Path, *extra: str) -> list[str]:
    return [
        "publish",
        "--bucket",
        bucket,
        "--environment",
        ENV,
        "--package-name",
        package,
        "--dag-path",
        str(dag_path),
        *extra,
    ]


def objects(s3, bucket: str, prefix: str = "") -> dict[str, bytes]:
    """Every object of the bucket with its bytes, read directly from moto (not counted by the proxy)."""
    c = boto3.client("s3", endpoint_url=s3.upstream)
    out = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            out[item["Key"]] = c.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return out


def record(s3, bucket: str, package: str) -> dict:
    return json.loads(objects(s3, bucket, f"{ENV}/{package}/metadata.json")[f"{ENV}/{package}/metadata.json"])


def put_keys(s3) -> list[str]:
    return [r.path.split("/", 2)[2] for r in s3.requests if r.method == "PUT"]


def dags_dir(examples_copy: Path, package: str) -> Path:
    return examples_copy / package / "airflow_dags"


def edit_manifest(path: Path, **changes) -> None:
    doc = json.loads(path.read_bytes())
    doc.update(changes)
    path.write_text(json.dumps(doc, indent=2) + "\n")


# -- publish and list --------------------------------------------------------------------------


def test_publish_both_examples_then_list(s3, bucket, examples_copy):
    """Both example packages publish through the CLI; list shows their DAGs and a consistent S3."""
    for package in (PP, RS):
        result = run_cli(s3, *publish_args(bucket, package, dags_dir(examples_copy, package)))
        assert result.returncode == 0, result.stderr
        assert "release" in result.stdout
    keys = set(objects(s3, bucket))
    for dag_id in (
        "pipeline_processing_example_job",
        "reporting_seeder_refresh_all",
        "reporting_seeder_refresh_agency",
    ):
        package = dag_id.split("_example")[0] if dag_id.startswith(PP) else RS
        assert {f"{ENV}/{package}/dags/{dag_id}.json", f"{ENV}/{package}/dags/{dag_id}.py"} <= keys
    result = run_cli(
        s3, "list", "--bucket", bucket, "--environment", ENV, "--all-packages", "--output", "json"
    )
    assert result.returncode == 0, result.stderr
    listed = {p["package"]: p for p in json.loads(result.stdout)["packages"]}
    assert set(listed) == {PP, RS}
    rs = listed[RS]
    assert rs["consistent"] and rs["release_id"] == record(s3, bucket, RS)["release_id"]
    assert {d["dag_id"]: d["schedule"] for d in rs["dags"]} == {
        "reporting_seeder_refresh_agency": None,
        "reporting_seeder_refresh_all": "@daily",
    }
    assert rs["dags"][1]["images"] == ["123456789012.dkr.ecr.us-east-1.amazonaws.com/reporting-seeder:2.4.1"]
    assert rs["published_at"]


def test_published_stub_is_regenerated_and_record_names_every_file(s3, bucket, examples_copy, capsys):
    """The record lists each manifest and its canonical stub with sha256 and size; the stub bytes are canonical."""
    from dagfactory_s3 import stub

    src = dags_dir(examples_copy, RS)
    for py in src.glob("*.py"):
        py.unlink()  # stubs are optional in the source tree: they are regenerated
    assert (
        main(capsys, *publish_args(bucket, RS, src, "--package-version", "2.4.1", "--git-sha", "abc123"))[0]
        == 0
    )
    rec = record(s3, bucket, RS)
    assert set(rec["files"]) == {
        f"dags/reporting_seeder_refresh_{n}.{e}" for n in ("all", "agency") for e in ("json", "py")
    }
    assert (rec["package_version"], rec["git_sha"], rec["tombstone"]) == ("2.4.1", "abc123", False)
    live = objects(s3, bucket, f"{ENV}/{RS}/dags/")
    assert live[f"{ENV}/{RS}/dags/reporting_seeder_refresh_all.py"] == stub.render(
        "reporting_seeder_refresh_all.json"
    )


def test_republish_unchanged_makes_no_put(s3, bucket, examples_copy):
    """Publishing identical content again performs zero PUTs and zero DELETEs."""
    args = publish_args(bucket, RS, dags_dir(examples_copy, RS))
    assert run_cli(s3, *args).returncode == 0
    before = objects(s3, bucket)
    s3.clear()
    result = run_cli(s3, *args, "--output", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["changed"] is False
    assert (s3.count("PUT"), s3.count("DELETE")) == (0, 0)
    assert objects(s3, bucket) == before


_CI = (
    "DAGFACTORY_PUBLISHED_BY",
    "GITHUB_ACTOR",
    "GITHUB_REPOSITORY",
    "GITHUB_RUN_ID",
    "GITLAB_USER_LOGIN",
    "CI_PIPELINE_URL",
)


def test_record_names_who_published_and_a_new_publisher_alone_writes_nothing(
    s3, bucket, examples_copy, monkeypatch
):
    """published_by comes from DAGFACTORY_PUBLISHED_BY, else the CI's variables; rerunning unchanged
    content from another CI job writes nothing (the record keeps the first publisher); the next real
    change records the new one and keeps the old one in its history."""
    for name in _CI:
        monkeypatch.delenv(name, raising=False)
    src = dags_dir(examples_copy, RS)
    args = publish_args(bucket, RS, src)
    monkeypatch.setenv("DAGFACTORY_PUBLISHED_BY", "release-bot")
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")  # the explicit variable wins over the CI's
    assert run_cli(s3, *args).returncode == 0
    assert record(s3, bucket, RS)["published_by"] == "release-bot"
    monkeypatch.delenv("DAGFACTORY_PUBLISHED_BY")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/reporting")
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    s3.clear()
    again = run_cli(s3, *args, "--output", "json")
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False, again.stderr
    assert (s3.count("PUT"), s3.count("DELETE")) == (0, 0)
    assert record(s3, bucket, RS)["published_by"] == "release-bot"
    edit_manifest(src / "reporting_seeder_refresh_all.json", description="changed")
    assert run_cli(s3, *args).returncode == 0
    rec = record(s3, bucket, RS)
    assert rec["published_by"] == "octocat (GitHub Actions acme/reporting run 4242)"
    assert rec["history"][0]["published_by"] == "release-bot"
    edit_manifest(src / "reporting_seeder_refresh_all.json", description="by flag")
    assert run_cli(s3, *args, "--published-by", "hand\nwritten").returncode == 0
    assert record(s3, bucket, RS)["published_by"] == "hand written"  # one line, as list shows it


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"GITHUB_ACTOR": "octocat", "GITHUB_REPOSITORY": "acme/p", "GITHUB_RUN_ID": "7"},
            "octocat (GitHub Actions acme/p run 7)",
        ),
        ({"GITHUB_ACTOR": "octocat"}, "octocat (GitHub Actions)"),
        (
            {"GITLAB_USER_LOGIN": "alice", "CI_PIPELINE_URL": "https://gitlab.example.com/a/p/-/pipelines/9"},
            "alice (GitLab CI https://gitlab.example.com/a/p/-/pipelines/9)",
        ),
        ({"GITHUB_ACTOR": "octocat", "GITLAB_USER_LOGIN": "alice"}, "octocat (GitHub Actions)"),
        ({"GITHUB_ACTOR": "evil\nline " + "x" * 300}, None),
    ],
)
def test_ci_identity_from_the_standard_ci_variables(environ, expected):
    """GitHub Actions, then GitLab CI, then user@host; always one printable line of at most 200 characters."""
    import getpass
    import socket

    from dagfactory_s3.settings import PUBLISHED_BY_LIMIT, ci_identity

    who = ci_identity(environ)
    assert len(who) <= PUBLISHED_BY_LIMIT and who.isprintable()
    if expected is None:
        assert who.startswith("evil line xxx") and who.endswith("…") and len(who) == PUBLISHED_BY_LIMIT
    else:
        assert who == expected
    assert ci_identity({}) == f"{getpass.getuser()}@{socket.gethostname()}"


def test_one_changed_dag_writes_only_its_objects_and_the_record(s3, bucket, examples_copy, capsys):
    """Changing one manifest: its immutable content, then metadata.json (the commit, carrying the
    replaced release as its change, for rollback), then -- after the commit -- the readable dags/ copy.
    Nothing a reader trusts is overwritten first; three PUTs in all."""
    src = dags_dir(examples_copy, RS)
    assert main(capsys, *publish_args(bucket, RS, src))[0] == 0
    edit_manifest(src / "reporting_seeder_refresh_all.json", description="changed")
    new = (src / "reporting_seeder_refresh_all.json").read_bytes()
    s3.clear()
    assert main(capsys, *publish_args(bucket, RS, src))[0] == 0
    keys = put_keys(s3)
    prefix = f"{ENV}/{RS}/"
    entry = record(s3, bucket, RS)["files"]["dags/reporting_seeder_refresh_all.json"]
    assert entry["unstamped"] == hashlib.sha256(new).hexdigest()  # the content, stamped with this release
    assert keys[0] == prefix + f"_releases/objects/{entry['sha256']}"
    assert keys[1] == prefix + "metadata.json"
    assert keys[2] == prefix + "dags/reporting_seeder_refresh_all.json"
    assert len(keys) == 3
    assert s3.count("DELETE") == 0


def test_removed_dag_is_deleted_after_the_record_stub_first(s3, bucket, examples_copy, capsys):
    """A DAG gone from --dag-path is deleted only after metadata.json is written, its stub before its manifest."""
    src = dags_dir(examples_copy, RS)
    assert main(capsys, *publish_args(bucket, RS, src))[0] == 0
    for ext in ("json", "py"):
        (src / f"reporting_seeder_refresh_agency.{ext}").unlink()
    s3.clear()
    assert main(capsys, *publish_args(bucket, RS, src))[0] == 0
    order = [(r.method, r.path.split("/", 2)[2]) for r in s3.requests if r.method in ("PUT", "DELETE")]
    prefix = f"{ENV}/{RS}/"
    assert order[0] == ("PUT", prefix + "metadata.json")
    assert order[-2:] == [
        ("DELETE", prefix + "dags/reporting_seeder_refresh_agency.py"),
        ("DELETE", prefix + "dags/reporting_seeder_refresh_agency.json"),
    ]
    assert set(record(s3, bucket, RS)["dags"]) == {"reporting_seeder_refresh_all"}


def test_plan_and_dry_run_write_nothing(s3, bucket, examples_copy, capsys):
    """plan and publish --dry-run print the diff and send no PUT or DELETE."""
    src = dags_dir(examples_copy, RS)
    code, out, _ = main(
        capsys,
        "plan",
        "--bucket",
        bucket,
        "--environment",
        ENV,
        "--package-name",
        RS,
        "--dag-path",
        str(src),
        "--output",
        "json",
    )
    assert code == 0
    plan = json.loads(out)
    assert len(plan["add"]) == 4 and plan["dry_run"]
    code, out, _ = main(capsys, *publish_args(bucket, RS, src, "--dry-run"))
    assert code == 0 and "  + reporting_seeder_refresh_all\n" in out
    assert (s3.count("PUT"), s3.count("DELETE")) == (0, 0)


# -- bad inputs and isolation ------------------------------------------------------------------


@pytest.fixture
def published_pp(s3, bucket, examples_copy, capsys):
    """pipeline_processing published once; returns the full bucket content afterwards."""
    assert main(capsys, *publish_args(bucket, PP, dags_dir(examples_copy, PP)))[0] == 0
    s3.clear()
    return objects(s3, bucket)


SLICES = 4  # the corpus in four tests: each stays well inside the suite's per-test limit


@pytest.mark.parametrize("part", range(SLICES))
def test_every_bad_input_changes_nothing(s3, bucket, examples_copy, published_pp, capsys, tmp_path, part):
    """Each case of the bad-input corpus (a quarter of it per test), next to a good manifest: exit 1,
    the file, pointer and reason named, no request that writes, bucket unchanged."""
    failures = []
    for case, raw, pointer, text in CASES[part::SLICES]:
        src = tmp_path / case
        shutil.copytree(dags_dir(examples_copy, PP), src)
        (src / f"{GOOD['dag_id']}.json").write_bytes(raw)
        code, _, err = main(capsys, *publish_args(bucket, PP, src))
        prefix = f"{src / GOOD['dag_id']}.json: {pointer}: "
        named = any(line.startswith(prefix) and text in line for line in err.splitlines())
        if code != 1 or not named or "Traceback" in err or s3.count("PUT") or s3.count("DELETE"):
            failures.append(f"{case}: exit {code}, {s3.count('PUT')} PUTs: {err.strip()[:200]}")
    assert not failures, "\n".join(failures)
    assert len(CASES) >= 200
    assert objects(s3, bucket) == published_pp


def test_hand_edited_stub_is_refused(s3, bucket, examples_copy, published_pp, capsys):
    """A .py that is not the canonical stub is never uploaded: the publish is refused."""
    src = dags_dir(examples_copy, PP)
    (src / "pipeline_processing_example_job.py").write_text("import os\nos.system('rm -rf /')\n")
    code, _, err = main(capsys, *publish_args(bucket, PP, src))
    assert code == 1 and "not the canonical stub" in err
    assert objects(s3, bucket) == published_pp


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--package-name", "../reporting_seeder"], "package name '../reporting_seeder' is invalid"),
        (["--package-name", "Reporting_Seeder"], "is invalid"),
        (["--package-name", "pipeline_processing/dags"], "is invalid"),
        (["--environment", "dev/../prod"], "environment 'dev/../prod' is invalid"),
        (["--environment", ""], "environment '' is invalid"),
    ],
    ids=["traversal", "uppercase", "slash", "env-traversal", "env-empty"],
)
def test_bad_names_are_refused_before_any_request(
    s3, bucket, examples_copy, published_pp, capsys, flags, message
):
    """Package and environment names that could escape <env>/<package>/ exit 2 before talking to S3."""
    args = publish_args(bucket, PP, dags_dir(examples_copy, PP))
    for flag, value in zip(flags[::2], flags[1::2], strict=True):
        args[args.index(flag) + 1] = value
    code, _, err = main(capsys, *args)
    assert code == 2 and message in err
    assert s3.count() == 0


def test_foreign_package_manifest_is_refused(s3, bucket, examples_copy, published_pp, capsys):
    """Publishing another package's manifests under --package-name is refused, nothing written."""
    code, _, err = main(capsys, *publish_args(bucket, PP, dags_dir(examples_copy, RS)))
    assert code == 1 and "belongs to package 'reporting_seeder', not 'pipeline_processing'" in err
    assert objects(s3, bucket) == published_pp


@pytest.mark.parametrize(
    "rest",
    [
        "../reporting_seeder/metadata.json",
        "dags/../../reporting_seeder/dags/x.py",
        "/dags/x.py",
        "dags/sub/x.py",
        "other.json",
        "_releases/../metadata.json",
        "_releases/objects/abc",
    ],
)
def test_store_refuses_keys_outside_its_files(rest):
    """The store builds keys only for its allow-listed files under <env>/<package>/."""
    store = PackageStore(object(), "b", ENV, PP)
    with pytest.raises(PublishError, match="refusing to write"):
        store.key(rest)


@pytest.mark.parametrize(
    "rest",
    [
        "../reporting_seeder/dags/x.py",
        "dags/../../x/dags/a.py",
        "metadata.json",
        "dags/",
        "other/x",
        "dags//x.py",
    ],
)
def test_store_refuses_deletes_outside_dags_and_history(rest):
    """Deletes are limited to dags/ and _releases/ of the package, without '..' or empty segments."""
    store = PackageStore(object(), "b", ENV, PP)
    with pytest.raises(PublishError, match="refusing to delete"):
        store.delete(rest)


def test_dag_id_owned_by_another_package_is_refused(s3, bucket, tmp_path, capsys):
    """Package 'a' cannot publish DAG id a_b_c when package 'a_b' already publishes it (naming alone allows both)."""
    for package in ("a_b", "a"):
        src = tmp_path / package
        src.mkdir()
        doc = {**GOOD, "package": package, "dag_id": "a_b_c"}
        (src / "a_b_c.json").write_text(json.dumps(doc))
        code, _, err = main(capsys, *publish_args(bucket, package, src))
    assert code == 4
    assert "dag_id 'a_b_c' is already published by package 'a_b'" in err
    assert not [k for k in objects(s3, bucket) if k.startswith(f"{ENV}/a/")]


# -- failures, concurrency ---------------------------------------------------------------------


def _fail_puts_after(k: int, action: str, only: str = ""):
    seen = {"puts": 0}

    def rule(request, index):
        if request.method != "PUT" or only not in request.path:
            return None
        seen["puts"] += 1
        return action if seen["puts"] > k else None

    return rule


def test_list_after_an_interrupted_first_publish_says_what_is_there(s3, bucket, examples_copy, capsys):
    """A first publish cut off before its commit: list names the package, says no release is committed
    yet, that the unfinished publish's objects are there, and that rerunning it finishes it."""
    src = dags_dir(examples_copy, RS)
    s3.fault = _fail_puts_after(0, "500", only="/metadata.json")
    assert main(capsys, *publish_args(bucket, RS, src))[0] == 3
    s3.fault = None
    args = ["list", "--bucket", bucket, "--environment", ENV, "--package-name", RS]
    code, out, err = main(capsys, *args)
    assert code == 0, err
    assert out.startswith(
        f"{RS} in {ENV}: no release (no committed release yet: 2 content objects of an unfinished publish"
    )
    assert "rerun the publish to finish it" in out
    assert main(capsys, *publish_args(bucket, RS, src))[0] == 0
    assert main(capsys, *args, "--check")[0] == 0


@pytest.mark.parametrize(("k", "action"), [(0, "500"), (1, "500"), (2, "500"), (1, "drop"), (2, "drop")])
def test_failure_mid_publish_keeps_previous_release_then_rerun_completes(
    s3, bucket, examples_copy, capsys, k, action
):
    """S3 failing after k uploads: exit 3, metadata.json still names the previous release; a rerun completes."""
    src = dags_dir(examples_copy, RS)
    assert main(capsys, *publish_args(bucket, RS, src))[0] == 0
    before = record(s3, bucket, RS)
    edit_manifest(src / "reporting_seeder_refresh_all.json", description="v2")
    edit_manifest(src / "reporting_seeder_refresh_agency.json", description="v2")
    s3.fault = _fail_puts_after(k, action)
    code, _, err = main(capsys, *publish_args(bucket, RS, src))
    assert code == 3
    assert "Traceback" not in err and f"release {before['release_id']} is still current" in err
    assert record(s3, bucket, RS) == before
    s3.clear()
    code, out, err = main(capsys, *publish_args(bucket, RS, src))
    assert code == 0, err
    after = record(s3, bucket, RS)
    assert after["previous_release_id"] == before["release_id"]
    code, out, _ = main(
        capsys, "list", "--bucket", bucket, "--environment", ENV, "--package-name", RS, "--output", "json"
    )
    assert json.loads(out)["consistent"] and json.loads(out)["release_id"] == after["release_id"]


def test_failed_upload_overwrites_nothing_a_reader_trusts(s3, bucket, examples_copy, capsys):
    """One content upload fails after another succeeded: metadata.json and every dags/ object are byte-identical."""
    src = dags_dir(examples_copy, RS)
    assert main(capsys, *publish_args(bucket, RS, src))[0] == 0
    before = objects(s3, bucket, f"{ENV}/{RS}/dags/")
    meta = record(s3, bucket, RS)
    edit_manifest(src / "reporting_seeder_refresh_all.json", description="v2")
    edit_manifest(src / "reporting_seeder_refresh_agency.json", description="v2")
    s3.fault = _fail_puts_after(1, "500", only="_releases/objects/")
    code, _, err = main(capsys, *publish_args(bucket, RS, src, "--parallelism", "1"))
    assert code == 3, err
    assert "1 of 2 new content objects are in" in err and "rerun the same publish" in err
    assert objects(s3, bucket, f"{ENV}/{RS}/dags/") == before and record(s3, bucket, RS) == meta


@pytest.mark.parametrize("k", [0, 1])
def test_failure_after_the_commit_leaves_the_new_release_and_a_rerun_tidies(
    s3, bucket, examples_copy, capsys, k
):
    """S3 failing after the commit (the readable copies): the new release is current and
    servable; exit 3 says so; a rerun writes no new release and finishes the readable copies."""
    src = dags_dir(examples_copy, RS)
    assert main(capsys, *publish_args(bucket, RS, src))[0] == 0
    edit_manifest(src / "reporting_seeder_refresh_all.json", description="v2")
    edit_manifest(src / "reporting_seeder_refresh_agency.json", description="v2")
    seen = {"commit": False, "after": 0}

    def rule(request, index):
        if request.method != "PUT":
            return None
        if seen["commit"]:
            seen["after"] += 1
            return "500" if seen["after"] > k else None
        seen["commit"] = request.path.endswith("/metadata.json")
        return None

    s3.fault = rule
    code, _, err = main(capsys, *publish_args(bucket, RS, src, "--parallelism", "1"))
    committed = record(s3, bucket, RS)
    assert code == 3 and f"release {committed['release_id']}" in err and "is committed" in err, err
    s3.clear()
    code, out, err = main(capsys, *publish_args(bucket, RS, src, "--output", "json"))
    assert code == 0 and json.loads(out)["changed"] is False, err
    assert record(s3, bucket, RS) == committed
    code, out, _ = main(
        capsys, "list", "--bucket", bucket, "--environment", ENV, "--package-name", RS, "--output", "json"
    )
    assert json.loads(out)["consistent"], out


def test_concurrent_publish_loses_cleanly_to_the_first_commit(s3, bucket, examples_copy, capsys):
    """Two publishes planned from the same state: the second commit is refused (If-Match) and the winner's objects stand."""
    src = dags_dir(examples_copy, RS)
    assert main(capsys, *publish_args(bucket, RS, src))[0] == 0
    store = PackageStore(s3_client(), bucket, ENV, RS)
    edit_manifest(src / "reporting_seeder_refresh_all.json", description="A")
    plan_a = make_plan(store, wanted_from_dir(src, RS))
    edit_manifest(src / "reporting_seeder_refresh_all.json", description="B")
    (src / "reporting_seeder_refresh_agency.json").unlink()
    (src / "reporting_seeder_refresh_agency.py").unlink()
    plan_b = make_plan(store, wanted_from_dir(src, RS))
    winner = execute(plan_a)
    with pytest.raises(RecordConflict, match="another publish of 'reporting_seeder' committed first"):
        execute(plan_b)
    assert record(s3, bucket, RS)["release_id"] == winner.release_id
    _, out, _ = main(
        capsys,
        "list",
        "--bucket",
        bucket,
        "--environment",
        ENV,
        "--package-name",
        RS,
        "--output",
        "json",
        "--history",
    )
    status = json.loads(out)
    assert status["consistent"], status
    assert winner.release_id in [h["release_id"] for h in status["history"]] and len(status["history"]) == 2


def test_the_first_publish_of_an_environment_says_it_starts_one(s3, bucket, examples_copy, capsys):
    """A typo in --environment would start a new environment: the first publish into one with no
    package says so in one warning line; the next package's publish there does not."""
    code, _, err = main(capsys, *publish_args(bucket, RS, dags_dir(examples_copy, RS)))
    assert code == 0 and f"warning: s3://{bucket}/{ENV}/ holds no package yet" in err
    code, _, err = main(capsys, *publish_args(bucket, PP, dags_dir(examples_copy, PP)))
    assert code == 0 and "holds no package" not in err


def test_first_publish_race_is_refused_too(s3, bucket, examples_copy):
    """Two first publishes: the second's If-None-Match commit fails instead of overwriting."""
    store = PackageStore(s3_client(), bucket, ENV, RS)
    src = dags_dir(examples_copy, RS)
    plan_a, plan_b = make_plan(store, wanted_from_dir(src, RS)), make_plan(store, wanted_from_dir(src, RS))
    execute(plan_a)
    with pytest.raises(RecordConflict):
        execute(plan_b)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            "missing-bucket",
            "s3://no-such-bucket: bucket does not exist; check the name and the account, or for a "
            "local S3 set AWS_ENDPOINT_URL to its URL and create the bucket there",
        ),
        (
            "no-credentials",
            "no AWS credentials found (environment, profile or instance role); set AWS_PROFILE, or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; for a local S3, set AWS_ENDPOINT_URL to its "
            "URL and both keys to any value",
        ),
        ("network", "cannot reach S3"),
    ],
)
def test_storage_errors_are_one_line_without_traceback(
    s3, bucket, examples_copy, moto_server, tmp_path, setup, message
):
    """A missing bucket, no credentials or an unreachable endpoint: exit 3 and one line saying what to do."""
    args = publish_args(
        bucket if setup != "missing-bucket" else "no-such-bucket", RS, dags_dir(examples_copy, RS)
    )
    env = aws_env(s3.url if setup != "network" else "http://127.0.0.1:9")
    if setup == "no-credentials":  # nothing in the chain: no keys, no profile files, no instance role
        del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
        env.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    result = subprocess.run(
        [sys.executable, "-m", "dagfactory_s3.publisher.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# -- rollback, retire, history -----------------------------------------------------------------


def test_rollback_restores_byte_identical_objects(s3, bucket, examples_copy, capsys):
    """rollback --to v1 after a v2 that changed, removed and added DAGs brings back v1's exact objects."""
    src = dags_dir(examples_copy, RS)
    assert main(capsys, *publish_args(bucket, RS, src))[0] == 0
    v1 = record(s3, bucket, RS)
    v1_objects = objects(s3, bucket, f"{ENV}/{RS}/dags/")
    edit_manifest(src / "reporting_seeder_refresh_all.json", description="v2")
    (src / "reporting_seeder_refresh_agency.json").rename(src / "x.tmp")
    (src / "reporting_seeder_refresh_agency.py").unlink()
    doc = json.loads((src / "x.tmp").read_bytes()) | {"dag_id": "reporting_seeder_new"}
    (src / "x.tmp").unlink()
    (src / "reporting_seeder_new.json").write_text(json.dumps(doc))
    assert main(capsys, *publish_args(bucket, RS, src))[0] == 0
    assert objects(s3, bucket, f"{ENV}/{RS}/dags/") != v1_objects
    result = run_cli(
        s3,
        "rollback",
        "--yes",
        "--bucket",
        bucket,
        "--environment",
        ENV,
        "--package-name",
        RS,
        "--to",
        v1["release_id"],
        "--output",
        "json",
    )
    assert result.returncode == 0, result.stderr
    assert objects(s3, bucket, f"{ENV}/{RS}/dags/") == v1_objects
    now = record(s3, bucket, RS)
    assert now["files"] == v1["files"] and now["dags"] == v1["dags"]
    assert (
        now["release_id"] != v1["release_id"] and json.loads(result.stdout)["release_id"] == now["release_id"]
    )


def test_rollback_to_unknown_or_malformed_release_is_refused(s3, bucket, examples_copy, capsys):
    """--to must be a kept release id: a path is a config error, an unknown id a publish error."""
    assert main(capsys, *publish_args(bucket, RS, dags_dir(examples_copy, RS)))[0] == 0
    base = ["rollback", "--bucket", bucket, "--environment", ENV, "--package-name", RS, "--to"]
    assert main(capsys, *base, "../../pipeline_processing/metadata")[0] == 2
    code, _, err = main(capsys, *base, "20200101T000000.000Z-abcdef")
    assert code == 4 and "is not in" in err


def test_retire_leaves_a_tombstone_and_keeps_history(s3, bucket, examples_copy, capsys):
    """retire --yes writes a tombstone record, then deletes every DAG file; publish brings the package back."""
    src = dags_dir(examples_copy, RS)
    assert main(capsys, *publish_args(bucket, RS, src))[0] == 0
    base = ["retire", "--bucket", bucket, "--environment", ENV, "--package-name", RS]
    assert main(capsys, *base)[0] == 0  # without --yes: a dry run
    assert s3.count("DELETE") == 0
    result = run_cli(s3, *base, "--yes")
    assert result.returncode == 0, result.stderr
    rec = record(s3, bucket, RS)
    assert rec["tombstone"] is True and rec["files"] == {} and rec["dags"] == {}
    left = set(objects(s3, bucket, f"{ENV}/{RS}/"))
    assert not [k for k in left if "/dags/" in k]
    assert [e["release_id"] for e in rec["history"]] == [rec["previous_release_id"]]  # kept for rollback
    assert not [k for k in left if k.endswith(".json") and "/_releases/" in k]  # in the record, not objects
    assert main(capsys, *publish_args(bucket, RS, src))[0] == 0
    assert record(s3, bucket, RS)["tombstone"] is False


def test_keep_prunes_old_records_and_unreferenced_content(s3, bucket, examples_copy, capsys):
    """--keep 2 keeps two releases (the current one and one in its history) once the others were replaced
    longer than the grace ago (a DAG run in flight may name a release replaced within it); content no
    kept release names is collected after the grace period, so rollback to either works."""
    src = dags_dir(examples_copy, RS)
    ids = []
    for version in range(4):
        edit_manifest(src / "reporting_seeder_refresh_all.json", description=f"v{version}")
        assert main(capsys, *publish_args(bucket, RS, src, "--keep", "2"))[0] == 0
        ids.append(record(s3, bucket, RS)["release_id"])
    keys = objects(s3, bucket, f"{ENV}/{RS}/_releases/")
    assert not [k for k in keys if k.endswith(".json")]  # one-DAG changes ride in the record
    assert [e["release_id"] for e in record(s3, bucket, RS)["history"]] == ids[-2::-1]  # all within the grace
    edit_manifest(src / "reporting_seeder_refresh_all.json", description="v4")
    assert main(capsys, *publish_args(bucket, RS, src, "--keep", "2", "--gc-grace", "0"))[0] == 0
    current = record(s3, bucket, RS)
    ids.append(current["release_id"])
    assert [e["release_id"] for e in current["history"]] == [ids[-2]]
    files = {r: e for r, e in current["files"].items()}
    previous = {**files, **current["history"][0]["files"]}
    needed = {e["sha256"] for fs in (files, previous) for r, e in fs.items() if r.endswith(".json")}
    assert {k.rsplit("/", 1)[1] for k in objects(s3, bucket, f"{ENV}/{RS}/_releases/objects/")} == needed
    live = objects(s3, bucket, f"{ENV}/{RS}/dags/")
    code, _, err = main(
        capsys,
        "rollback",
        "--yes",
        "--bucket",
        bucket,
        "--environment",
        ENV,
        "--package-name",
        RS,
        "--to",
        ids[-2],
        "--keep",
        "2",
    )
    assert code == 0, err
    assert objects(s3, bucket, f"{ENV}/{RS}/dags/") != live
    assert (
        main(
            capsys,
            "rollback",
            "--yes",
            "--bucket",
            bucket,
            "--environment",
            ENV,
            "--package-name",
            RS,
            "--to",
            ids[-1],
            "--keep",
            "2",
        )[0]
        == 0
    )
    assert objects(s3, bucket, f"{ENV}/{RS}/dags/") == live


# -- IAM ---------------------------------------------------------------------------------------


def _matches(pattern: str, value: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _listed(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]


def _allowed(policy: dict, action: str, resource: str, context: dict[str, str] | None = None) -> bool:
    """A small IAM evaluator (explicit Deny wins, default deny) for Action/Resource/NotResource and String conditions."""
    context = context or {}
    allowed = False
    for st in policy["Statement"]:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if action not in actions:
            continue
        if "Resource" in st and not any(_matches(r, resource) for r in _listed(st["Resource"])):
            continue
        if "NotResource" in st and _matches(st["NotResource"], resource):
            continue
        ok = True
        for op, conds in st.get("Condition", {}).items():
            for key, want in conds.items():
                wants = want if isinstance(want, list) else [want]
                have = context.get(key)
                test = _matches if op == "StringLike" else str.__eq__
                ok &= have is not None and any(
                    test(w, have) if op == "StringLike" else w == have for w in wants
                )
        if not ok:
            continue
        if st["Effect"] == "Deny":
            return False
        allowed = True
    return allowed


def test_iam_policy_grants_own_prefix_only(s3, capsys):
    """Structural check (moto does not enforce IAM on S3 by default): the CI role writes only <env>/<package>/, Airflow only reads <env>/."""
    code, out, _ = main(capsys, "iam-policy", "--bucket", "dags", "--environment", ENV, "--package-name", PP)
    assert code == 0
    policies = json.loads(out)
    ci, airflow = policies["package_ci_role"], policies["airflow_read_only_role"]
    obj = "arn:aws:s3:::dags/"
    assert _allowed(ci, "s3:PutObject", obj + "dev/pipeline_processing/dags/pipeline_processing_x.py")
    assert _allowed(ci, "s3:DeleteObject", obj + "dev/pipeline_processing/_releases/objects/ab")
    assert _allowed(ci, "s3:GetObject", obj + "dev/reporting_seeder/metadata.json")
    for key in (
        "dev/reporting_seeder/dags/x.py",
        "dev/pipeline_processing_extra/dags/x.py",
        "prod/pipeline_processing/dags/x.py",
        "dev/x.py",
        "dev/reporting_seeder/metadata.json",
    ):
        assert not _allowed(ci, "s3:PutObject", obj + key), key
        assert not _allowed(ci, "s3:DeleteObject", obj + key), key
    assert not _allowed(ci, "s3:GetObject", obj + "dev/reporting_seeder/dags/x.json")
    bucket_arn = "arn:aws:s3:::dags"
    assert _allowed(ci, "s3:ListBucket", bucket_arn, {"s3:prefix": "dev/pipeline_processing/"})
    assert _allowed(ci, "s3:ListBucket", bucket_arn, {"s3:prefix": "dev/", "s3:delimiter": "/"})
    assert not _allowed(ci, "s3:ListBucket", bucket_arn, {"s3:prefix": "dev/"})
    assert not _allowed(ci, "s3:ListBucket", bucket_arn, {"s3:prefix": "prod/pipeline_processing/"})
    assert _allowed(airflow, "s3:GetObject", obj + "dev/reporting_seeder/dags/x.py")
    assert _allowed(airflow, "s3:ListBucket", bucket_arn, {"s3:prefix": "dev/"})
    assert not _allowed(airflow, "s3:GetObject", obj + "prod/reporting_seeder/dags/x.py")
    for action in ("s3:PutObject", "s3:DeleteObject"):
        assert not _allowed(airflow, action, obj + "dev/reporting_seeder/dags/x.py")
    assert s3.count() == 0


def test_iam_policy_matches_what_publish_requests(s3, bucket, examples_copy, capsys):
    """Every request a publish + list + rollback sends is allowed by the CI policy (checked request by request)."""
    src = dags_dir(examples_copy, RS)
    assert main(capsys, *publish_args(bucket, PP, dags_dir(examples_copy, PP)))[0] == 0
    s3.clear()
    assert main(capsys, *publish_args(bucket, RS, src))[0] == 0
    v1 = record(s3, bucket, RS)["release_id"]
    edit_manifest(src / "reporting_seeder_refresh_all.json", description="v2")
    assert main(capsys, *publish_args(bucket, RS, src))[0] == 0
    assert (
        main(
            capsys,
            "rollback",
            "--yes",
            "--bucket",
            bucket,
            "--environment",
            ENV,
            "--package-name",
            RS,
            "--to",
            v1,
        )[0]
        == 0
    )
    assert main(capsys, "list", "--bucket", bucket, "--environment", ENV, "--package-name", RS)[0] == 0
    ci = json.loads(
        main(capsys, "iam-policy", "--bucket", bucket, "--environment", ENV, "--package-name", RS)[1]
    )["package_ci_role"]
    _check_requests(s3, bucket, ci)


def _check_requests(s3, bucket: str, policy: dict) -> None:
    """Every request s3 recorded is allowed by ``policy`` (the evaluator above, request by request)."""
    from urllib.parse import parse_qs, unquote

    assert s3.requests
    for r in s3.requests:
        key = unquote(r.path.split("/", 2)[2]) if r.path.count("/") >= 2 else ""
        if r.kind == "LIST":
            q = {k: v[0] for k, v in parse_qs(r.query).items()}
            ctx = {"s3:prefix": q.get("prefix", "")} | (
                {"s3:delimiter": q["delimiter"]} if "delimiter" in q else {}
            )
            assert _allowed(policy, "s3:ListBucket", f"arn:aws:s3:::{bucket}", ctx), r
        else:
            action = {
                "GET": "s3:GetObject",
                "HEAD": "s3:GetObject",
                "PUT": "s3:PutObject",
                "DELETE": "s3:DeleteObject",
            }[r.method]
            assert _allowed(policy, action, f"arn:aws:s3:::{bucket}/{key}"), r


def test_iam_policy_with_promote_from_allows_what_promote_requests_and_no_more(
    s3, bucket, examples_copy, capsys
):
    """`--promote-from dev` on the prod role: every request of a promote is allowed; without it the
    reads of dev are refused; with it, dev stays unwritable and other packages' dev content unreadable."""
    args = publish_args(bucket, RS, dags_dir(examples_copy, RS))
    assert main(capsys, *args)[0] == 0
    s3.clear()
    promote = ["promote", "--bucket", bucket, "--package-name", RS, "--from", ENV, "--to", "prod", "--yes"]
    assert main(capsys, *promote)[0] == 0

    def policy(*extra: str) -> dict:
        out = main(
            capsys, "iam-policy", "--bucket", bucket, "--environment", "prod", "--package-name", RS, *extra
        )
        return json.loads(out[1])["package_ci_role"]

    ci = policy("--promote-from", ENV)
    _check_requests(s3, bucket, ci)
    plain = policy()
    assert not _allowed(plain, "s3:GetObject", f"arn:aws:s3:::{bucket}/{ENV}/{RS}/metadata.json")
    obj = f"arn:aws:s3:::{bucket}/{ENV}/"
    assert _allowed(ci, "s3:GetObject", obj + f"{RS}/_releases/objects/ab")
    for key in (f"{RS}/metadata.json", f"{RS}/_releases/objects/ab", f"{RS}/dags/x.json"):
        for action in ("s3:PutObject", "s3:DeleteObject"):
            assert not _allowed(ci, action, obj + key), (action, key)
    for key in (f"{PP}/_releases/objects/ab", f"{RS}/dags/x.json", f"{RS}_extra/metadata.json"):
        assert not _allowed(ci, "s3:GetObject", obj + key), key
    code, _, err = main(
        capsys,
        "iam-policy",
        "--bucket",
        bucket,
        "--environment",
        "prod",
        "--package-name",
        RS,
        "--promote-from",
        "prod",
    )
    assert code != 0 and "--promote-from 'prod' is the role's own environment" in err


# -- boundaries --------------------------------------------------------------------------------


def test_publisher_does_not_import_airflow():
    """The publisher runs in package CI without Airflow: importing it (and the CLI) loads no airflow module."""
    code = "import sys, dagfactory_s3.publisher.transaction, dagfactory_s3.publisher.store, dagfactory_s3.publisher.iam, dagfactory_s3.publisher.cli as c; c.build_parser(); assert not [m for m in sys.modules if m.split('.')[0] == 'airflow'], 'airflow imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_wanted_is_plain_data(examples_copy):
    """Building what to publish reads only local files: manifest bytes plus regenerated stubs, by relative name."""
    wanted = wanted_from_dir(dags_dir(examples_copy, PP), PP)
    assert isinstance(wanted, Wanted)
    assert sorted(wanted.files) == [
        "dags/pipeline_processing_example_job.json",
        "dags/pipeline_processing_example_job.py",
    ]


class _DenyEnvironmentListing:
    """A real client that gets AccessDenied when listing <env>/ with a delimiter (what a CI role without that grant sees)."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    def get_paginator(self, name):
        from botocore.exceptions import ClientError

        real = self._real.get_paginator(name)

        class Paginator:
            def paginate(self, **kw):
                if "Delimiter" in kw:
                    raise ClientError(
                        {"Error": {"Code": "AccessDenied", "Message": "denied"}}, "ListObjectsV2"
                    )
                return real.paginate(**kw)

        return Paginator()


def test_unreadable_environment_warns_and_still_publishes(s3, bucket, examples_copy):
    """Without read access to other packages' records, publish warns (uniqueness left to the sidecar) and commits."""
    store = PackageStore(_DenyEnvironmentListing(s3_client()), bucket, ENV, RS)
    plan = make_plan(store, wanted_from_dir(dags_dir(examples_copy, RS), RS))
    assert any("access denied" in w and "left to the sidecar" in w for w in plan.warnings)
    assert execute(plan) is not None
    assert record(s3, bucket, RS)["release_id"]


def test_versioned_bucket_records_version_ids(s3, bucket, examples_copy, capsys):
    """On a versioned bucket the record names each manifest's content-object VersionId; unchanged ones keep theirs."""
    direct = boto3.client("s3", endpoint_url=s3.upstream)
    direct.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    src = dags_dir(examples_copy, RS)
    assert main(capsys, *publish_args(bucket, RS, src))[0] == 0
    first = record(s3, bucket, RS)["files"]
    for rest, entry in first.items():
        if rest.endswith(".py"):  # stubs are regenerated by readers, never fetched
            assert "version_id" not in entry
            continue
        head = direct.head_object(Bucket=bucket, Key=f"{ENV}/{RS}/_releases/objects/{entry['sha256']}")
        assert entry["version_id"] == head["VersionId"]
    edit_manifest(src / "reporting_seeder_refresh_all.json", description="changed")
    assert main(capsys, *publish_args(bucket, RS, src))[0] == 0
    second = record(s3, bucket, RS)["files"]
    changed = "dags/reporting_seeder_refresh_all.json"
    assert second[changed]["version_id"] != first[changed]["version_id"]
    kept = "dags/reporting_seeder_refresh_agency.json"
    assert second[kept]["version_id"] == first[kept]["version_id"]


def test_unversioned_bucket_records_no_version_ids(s3, bucket, examples_copy, capsys):
    """Without versioning the record carries no version_id at all (S3 would answer 'null')."""
    assert main(capsys, *publish_args(bucket, RS, dags_dir(examples_copy, RS)))[0] == 0
    assert all("version_id" not in entry for entry in record(s3, bucket, RS)["files"].values())


# -- migration from 0.1 buckets ------------------------------------------------------------------


def _publish_like_0_1(s3, bucket: str, src: Path, release_id: str) -> dict:
    """What dagfactory-s3 0.1 left in S3: dags/ objects, a record without "content", and a history
    record carrying the content inline (base64), nothing in the content store."""
    import base64

    from dagfactory_s3 import stub
    from dagfactory_s3.release import FileEntry, Release

    direct = boto3.client("s3", endpoint_url=s3.upstream)
    files = {}
    for path in sorted(src.glob("*.json")):
        files[f"dags/{path.name}"] = path.read_bytes()
        files[f"dags/{path.stem}.py"] = stub.render(path.name)
    rec = Release(
        RS,
        ENV,
        release_id,
        "2026-01-01T00:00:00Z",
        "0.1.0",
        files={r: FileEntry(hashlib.sha256(d).hexdigest(), len(d)) for r, d in files.items()},
        dags={
            Path(r).stem: {"schedule": None, "images": [], "tasks": 1} for r in files if r.endswith(".json")
        },
    )
    for rest, data in files.items():
        direct.put_object(Bucket=bucket, Key=f"{ENV}/{RS}/{rest}", Body=data)
    history = json.loads(rec.to_json()) | {
        "contents": {hashlib.sha256(d).hexdigest(): base64.b64encode(d).decode() for d in files.values()}
    }
    del history["content"]
    direct.put_object(Bucket=bucket, Key=f"{ENV}/{RS}/_releases/{release_id}.json", Body=json.dumps(history))
    body = json.loads(rec.to_json())
    del body["content"]
    direct.put_object(Bucket=bucket, Key=f"{ENV}/{RS}/metadata.json", Body=json.dumps(body))
    return files


def test_a_0_1_bucket_is_served_then_upgraded_by_the_next_publish_and_rolls_back(
    s3, bucket, examples_copy, capsys, tmp_path
):
    """A package published by 0.1 is served by today's sidecar from its dags/ keys; the next publish
    uploads its manifests to the content store and commits an "objects" record; rollback to the 0.1
    release finds its bytes (inline in the 0.1 history record) and serves them from the content store."""
    import io

    from dagfactory_s3.s3 import client as make_client
    from dagfactory_s3.sync.observe import Log, Metrics
    from dagfactory_s3.sync.reconcile import Reconciler

    def serve(root: Path) -> dict[str, bytes]:
        side = Reconciler(
            client=make_client(),
            bucket=bucket,
            environment=ENV,
            dags_folder=root,
            state_dir=root / ".state",
            log=Log(io.StringIO()),
            metrics=Metrics(),
        )
        report = side.cycle()
        side.close()
        assert report.complete and not report.unservable
        return {p.name: p.read_bytes() for p in sorted((root / RS / "dags").glob("*"))}

    src = dags_dir(examples_copy, RS)
    old_id = "20260101T000000.000Z-0a0b0c"
    files = _publish_like_0_1(s3, bucket, src, old_id)
    assert serve(tmp_path / "a") == {r.split("/")[1]: d for r, d in files.items()}

    edit_manifest(src / "reporting_seeder_refresh_all.json", description="upgraded")
    assert main(capsys, *publish_args(bucket, RS, src))[0] == 0
    upgraded = record(s3, bucket, RS)
    assert upgraded["content"] == "objects" and upgraded["previous_release_id"] == old_id
    store = objects(s3, bucket, f"{ENV}/{RS}/_releases/objects/")
    assert {k.rsplit("/", 1)[1] for k in store} == {
        e["sha256"] for r, e in upgraded["files"].items() if r.endswith(".json")
    }
    # Nothing of the 0.1 release is left at the dags/ keys of the changed DAG: rollback must find it inline.
    argv = [
        "rollback",
        "--yes",
        "--bucket",
        bucket,
        "--environment",
        ENV,
        "--package-name",
        RS,
        "--to",
        old_id,
    ]
    code, _, err = main(capsys, *argv)
    assert code == 0, err
    back = record(s3, bucket, RS)
    assert back["content"] == "objects" and {r: e["sha256"] for r, e in back["files"].items()} == {
        r: hashlib.sha256(d).hexdigest() for r, d in files.items()
    }
    assert serve(tmp_path / "b") == {r.split("/")[1]: d for r, d in files.items()}


@pytest.mark.slow
def test_history_rides_in_the_record_or_in_an_object_and_every_kept_release_rolls_back(
    s3, bucket, examples_copy, capsys
):
    """Small releases are kept as changes inside the next record (no history PUT); a release replaced by
    one that changes many DAGs is written whole to _releases/<id>.json before the commit. Rolling back
    to each kept release, whichever way it was kept, restores its dags/ objects byte for byte."""
    src = dags_dir(examples_copy, RS)
    template = json.loads((src / "reporting_seeder_refresh_all.json").read_bytes())
    snapshots: dict[str, dict[str, bytes]] = {}

    def publish(step: int, many: bool) -> None:
        for i in range(70 if many else 1):
            doc = dict(template, dag_id=f"{RS}_gen_{i:02d}", description=f"step {step}")
            (src / f"{RS}_gen_{i:02d}.json").write_text(json.dumps(doc, indent=2))
        assert main(capsys, *publish_args(bucket, RS, src))[0] == 0
        snapshots[record(s3, bucket, RS)["release_id"]] = objects(s3, bucket, f"{ENV}/{RS}/dags/")

    for step, many in enumerate([False, True, False, False, True, False]):
        publish(step, many)
    ids = list(snapshots)
    rec = record(s3, bucket, RS)
    history = rec["history"]
    assert [e["release_id"] for e in history] == ids[-2::-1]
    # Replaced by a release changing 70 DAGs (> DELTA_LIMIT changes): kept whole, as objects.
    stored = sorted(e["release_id"] for e in history if e.get("stored"))
    assert stored == sorted([ids[0], ids[3]])
    names = {
        k.rsplit("/", 1)[1] for k in objects(s3, bucket, f"{ENV}/{RS}/_releases/") if k.endswith(".json")
    }
    assert names == {f"{i}.json" for i in stored}
    target = ["rollback", "--bucket", bucket, "--environment", ENV, "--package-name", RS, "--yes", "--to"]
    for release_id in ids[:-1]:
        code, _, err = main(capsys, *target, release_id)
        assert code == 0, err
        assert objects(s3, bucket, f"{ENV}/{RS}/dags/") == snapshots[release_id], release_id


def test_release_record_history_round_trips_and_bad_entries_are_refused():
    """A record with history survives to_json/from_json; one wrong entry is refused with its pointer."""
    from dataclasses import replace

    from dagfactory_s3.errors import RecordError
    from dagfactory_s3.release import Earlier, FileEntry, Release

    old = Release(
        "pkg",
        "dev",
        "20260101T000000.000Z-aaaaaa",
        "t",
        "v",
        files={"dags/pkg_a.json": FileEntry("a" * 64, 1)},
    )
    new_files = {"dags/pkg_b.json": FileEntry("b" * 64, 2, None, "c" * 32)}
    rec = Release(
        "pkg",
        "dev",
        "20260102T000000.000Z-bbbbbb",
        "t",
        "v",
        files=new_files,
        history=(Earlier.of(old, new_files, {}),),
    )
    again = Release.from_json(rec.to_json(), file="m")
    assert again == rec
    # A record written before published_by existed (nor in its history) still loads, as None.
    older = json.loads(replace(rec, published_by="ci").to_json())
    for entry in (older, *older["history"]):
        del entry["published_by"]
    assert Release.from_json(json.dumps(older).encode(), file="m") == rec
    assert [r.files for r in again.releases(lambda i: pytest.fail(i))] == [new_files, old.files]
    doc = json.loads(rec.to_json())
    for mutate, pointer in [
        (lambda d: d.update(history={}), "/history"),
        (lambda d: d["history"][0].update(release_id="../x"), "/history/0/release_id"),
        (lambda d: d["history"][0].update(stored="yes"), "/history/0/stored"),
        (
            lambda d: d["history"][0]["files"].update({"dags/pkg_c.json": {"sha256": "x", "size": 1}}),
            "/history/0/files/dags~1pkg_c.json",
        ),
        (lambda d: d["history"][0]["files"].update({"../x.json": None}), "/history/0/files/..~1x.json"),
        (lambda d: d["files"]["dags/pkg_b.json"].update(md5="Z"), "/files/dags~1pkg_b.json"),
        (lambda d: d["history"][0].update(published_by=["x"]), "/history/0/published_by"),
    ]:
        bad = json.loads(json.dumps(doc))
        mutate(bad)
        with pytest.raises(RecordError, match=f"m: {pointer}:"):
            Release.from_json(json.dumps(bad).encode(), file="m")
