"""`airflow-dag-publisher policy`: the platform policy published in the bucket like a release, against
the moto server over HTTP (two packages published first), and the IAM roles around it."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import boto3
import pytest
from test_publish import (
    ENV,
    PP,
    RS,
    _allowed,
    _check_requests,
    dags_dir,
    main,
    objects,
    publish_args,
    put_keys,
)

from dagfactory_s3.serve import policy as published

from conftest import ROOT

SHIPPED = json.loads((ROOT / "deploy/airflow/dagfactory-policy.json").read_text())
POINTER = f"{ENV}/_platform/policy.json"
REFRESH_ALL = "reporting_seeder_refresh_all"


def strict(document: dict, package: str, secret: str) -> dict:
    """``document`` without the grant of Secret ``secret`` to ``package``."""
    out = copy.deepcopy(document)
    out["grants"][package]["secrets"].remove(secret)
    return out


def write(tmp_path: Path, name: str, document: object) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def policy_cmd(bucket: str, command: str, *extra: str) -> list[str]:
    return ["policy", command, "--bucket", bucket, "--environment", ENV, *extra]


def pointer(s3, bucket: str) -> dict:
    return json.loads(objects(s3, bucket, POINTER)[POINTER])


@pytest.fixture
def served(s3, bucket, examples_copy, capsys):
    """Both example packages published to dev, no policy yet."""
    for package in (PP, RS):
        assert main(capsys, *publish_args(bucket, package, dags_dir(examples_copy, package)))[0] == 0
    s3.clear()
    return bucket


def test_publish_plan_refuse_allow_show_rollback(s3, served, capsys, tmp_path):
    """The life of a policy: the first is published (object, then pointer); a stricter one's plan lists
    exactly the one DAG it breaks and exits 2; publish refuses it writing nothing, and with
    --allow-breaking publishes it; show --history lists both; rollback plans, then writes a new pointer
    with the old bytes; republishing the current bytes writes nothing."""
    bucket = served
    first = write(tmp_path, "first.json", SHIPPED)
    code, out, err = main(capsys, *policy_cmd(bucket, "publish", "--file", str(first)))
    assert code == 0, err
    sha = hashlib.sha256(first.read_bytes()).hexdigest()
    assert objects(s3, bucket, f"{ENV}/_platform/objects/") == {
        f"{ENV}/_platform/objects/{sha}.json": first.read_bytes()
    }
    assert put_keys(s3) == [f"{ENV}/_platform/objects/{sha}.json", POINTER]  # the pointer last
    record = pointer(s3, bucket)
    assert record["sha256"] == sha and record["history"] == [] and record["published_by"]
    assert f"published policy {record['policy_id']}" in out

    tighter = write(tmp_path, "strict.json", strict(SHIPPED, RS, "reporting-slack"))
    s3.clear()
    code, out, err = main(capsys, *policy_cmd(bucket, "plan", "--file", str(tighter)))
    assert code == 2, err
    file = f"s3://{bucket}/{ENV}/{RS}/dags/{REFRESH_ALL}.json"
    problems = [line for line in out.splitlines() if line.startswith("s3://")]
    assert problems == [
        f"{file}: /tasks/2/env/SLACK_WEBHOOK/secret/name: Secret 'reporting-slack' is not granted to package "
        f"'reporting_seeder' by the platform policy ({tighter}); the package's own: 'reporting-seeder' and names "
        "starting with 'reporting-seeder-'; more are granted under /grants/reporting_seeder/secrets or "
        "/grants/*/secrets"
    ]
    assert "would refuse 1 of 3 served DAGs of 2 packages" in out
    assert s3.count("PUT") == 0
    data = json.loads(
        main(capsys, *policy_cmd(bucket, "plan", "--file", str(tighter), "--output", "json"))[1]
    )
    assert [(r["package"], r["dag_id"], r["file"]) for r in data["refused"]] == [(RS, REFRESH_ALL, file)]
    assert data["breaking"] and data["dags_checked"] == 3 and data["current"]["sha256"] == sha

    s3.clear()
    code, out, err = main(capsys, *policy_cmd(bucket, "publish", "--file", str(tighter)))
    assert code == 2 and "--allow-breaking" in err and file in out
    assert s3.count("PUT") == 0 and pointer(s3, bucket) == record
    code, out, err = main(capsys, *policy_cmd(bucket, "publish", "--file", str(tighter), "--allow-breaking"))
    assert code == 0, err
    second = pointer(s3, bucket)
    assert second["sha256"] == hashlib.sha256(tighter.read_bytes()).hexdigest()
    assert [h["policy_id"] for h in second["history"]] == [record["policy_id"]]
    assert second["policy_id"] > record["policy_id"] and file in out

    code, out, _ = main(capsys, *policy_cmd(bucket, "show", "--history", "--output", "json"))
    shown = json.loads(out)
    assert code == 0 and shown["current"]["policy_id"] == second["policy_id"]
    assert [h["policy_id"] for h in shown["history"]] == [second["policy_id"], record["policy_id"]]
    text = main(capsys, *policy_cmd(bucket, "show", "--history"))[1]
    assert f"{second['policy_id']}" in text.splitlines()[0] and "(current)" in text

    s3.clear()
    code, out, err = main(capsys, *policy_cmd(bucket, "rollback", "--to", "previous"))
    assert code == 0 and "dry run: pass --yes" in err and s3.count("PUT") == 0
    assert f"to the bytes of {record['policy_id']}" in out
    code, out, err = main(capsys, *policy_cmd(bucket, "rollback", "--to", "previous", "--yes"))
    assert code == 0, err
    third = pointer(s3, bucket)
    assert third["sha256"] == sha and third["note"] == f"rollback to {record['policy_id']}"
    assert [h["policy_id"] for h in third["history"]] == [second["policy_id"], record["policy_id"]]
    assert put_keys(s3) == [POINTER]  # the bytes were verified, not written again

    s3.clear()
    code, out, _ = main(capsys, *policy_cmd(bucket, "publish", "--file", str(first)))
    assert code == 0 and "no change" in out and s3.count("PUT") == 0


def test_plan_lists_only_what_the_change_breaks_and_reads_past_a_bad_record(s3, served, capsys, tmp_path):
    """A DAG the current policy already refuses is not listed again (only new problems are); a package
    whose record cannot be read is one line, and the others are still checked."""
    bucket = served
    current = strict(SHIPPED, RS, "reporting-slack")
    path = write(tmp_path, "current.json", current)
    assert main(capsys, *policy_cmd(bucket, "publish", "--file", str(path), "--allow-breaking"))[0] == 0
    boto3.client("s3", endpoint_url=s3.upstream).put_object(
        Bucket=bucket, Key=f"{ENV}/broken_pkg/metadata.json", Body=b"{not a record"
    )
    both = write(tmp_path, "both.json", strict(current, PP, "pipeline-db"))
    code, out, _ = main(capsys, *policy_cmd(bucket, "plan", "--file", str(both), "--output", "json"))
    data = json.loads(out)
    assert code == 2
    assert [r["dag_id"] for r in data["refused"]] == ["pipeline_processing_example_job"]
    assert [p["pointer"] for p in data["refused"][0]["problems"]] == ["/job/env/DB_PASSWORD/secret/name"]
    assert len(data["unchecked"]) == 1 and f"{ENV}/broken_pkg/metadata.json" in data["unchecked"][0]
    assert data["packages"] == 3 and data["dags_checked"] == 3


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ("{not json", ": /: policy is not valid JSON"),
        ('{"image_registries": "registry.example.com"}', ": /image_registries: expected a list of"),
        ('{"grantz": {}}', ": /grantz: unknown policy field"),
    ],
)
def test_a_bad_policy_file_is_refused_naming_it_before_any_request(
    s3, bucket, capsys, tmp_path, content, text
):
    """A policy file that does not parse is refused with its name and pointer, exit 1, no S3 request."""
    path = tmp_path / "policy.json"
    path.write_text(content)
    for command in ("plan", "publish"):
        code, _, err = main(capsys, *policy_cmd(bucket, command, "--file", str(path)))
        assert code == 1 and f"{path}{text}" in err and "Traceback" not in err
    assert s3.count() == 0


def test_a_concurrent_policy_write_loses_cleanly(s3, served, capsys, tmp_path):
    """When the pointer changes between its read and the write, the write is refused (If-Match) and
    says to rerun; the other writer's pointer stays."""
    bucket = served
    path = write(tmp_path, "first.json", SHIPPED)
    other = b'{"format": "someone else"}'
    upstream = boto3.client("s3", endpoint_url=s3.upstream)

    def race(request, _index):
        if request.method == "PUT" and request.path.endswith(POINTER):
            upstream.put_object(Bucket=bucket, Key=POINTER, Body=other)
        return None

    s3.fault = race
    code, _, err = main(capsys, *policy_cmd(bucket, "publish", "--file", str(path)))
    assert code == 1
    assert err == f"error: s3://{bucket}/{POINTER}: policy changed since it was read; rerun\n"
    assert objects(s3, bucket, POINTER)[POINTER] == other


def test_nothing_to_show_or_roll_back_without_a_policy(s3, served, capsys):
    """`show` says no policy is published (exit 0); `rollback` has nothing to roll back to (exit 1)."""
    code, out, _ = main(capsys, *policy_cmd(served, "show"))
    assert code == 0 and out == f"s3://{served}/{POINTER}: no platform policy published for {ENV}\n"
    code, _, err = main(capsys, *policy_cmd(served, "rollback", "--to", "previous", "--yes"))
    assert code == 1 and "no platform policy published; nothing to roll back" in err


def test_a_damaged_policy_object_is_rewritten_and_never_rolled_back_to(s3, served, capsys, tmp_path):
    """Publishing bytes whose object exists but was damaged rewrites it (verified by sha256, not
    trusted by name); a rollback to a policy whose object is damaged is refused and writes nothing."""
    bucket = served
    first = write(tmp_path, "first.json", SHIPPED)
    second = tmp_path / "second.json"
    second.write_text(json.dumps(SHIPPED))  # the same policy, other bytes
    assert main(capsys, *policy_cmd(bucket, "publish", "--file", str(first)))[0] == 0
    assert main(capsys, *policy_cmd(bucket, "publish", "--file", str(second)))[0] == 0
    key = f"{ENV}/_platform/objects/{hashlib.sha256(first.read_bytes()).hexdigest()}.json"
    upstream = boto3.client("s3", endpoint_url=s3.upstream)
    upstream.put_object(Bucket=bucket, Key=key, Body=b"{}")
    before = pointer(s3, bucket)
    s3.clear()
    code, _, err = main(capsys, *policy_cmd(bucket, "rollback", "--to", "previous", "--yes"))
    assert code == 1 and f"s3://{bucket}/{key}: does not match the sha256 and size its pointer records" in err
    assert s3.count("PUT") == 0 and pointer(s3, bucket) == before
    assert main(capsys, *policy_cmd(bucket, "publish", "--file", str(first)))[0] == 0
    assert objects(s3, bucket, key)[key] == first.read_bytes()
    assert pointer(s3, bucket)["sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()


# -- IAM -----------------------------------------------------------------------------------------


def test_platform_role_alone_writes_the_policy_and_package_roles_read_it(s3, capsys):
    """The platform role may write <env>/_platform/ of its environment only; a package's CI role may
    read the policy there but never write it (its explicit Deny covers every prefix but its own)."""
    code, out, _ = main(capsys, "iam-policy", "--bucket", "dags", "--environment", ENV, "--platform")
    assert code == 0
    platform_role = json.loads(out)["platform_role"]
    ci = json.loads(
        main(capsys, "iam-policy", "--bucket", "dags", "--environment", ENV, "--package-name", PP)[1]
    )["package_ci_role"]
    obj = "arn:aws:s3:::dags/"
    ours = [obj + published.pointer_key(ENV), obj + published.object_key(ENV, "a" * 64)]
    for key in ours:
        assert _allowed(platform_role, "s3:PutObject", key), key
        assert _allowed(platform_role, "s3:GetObject", key), key
        assert _allowed(ci, "s3:GetObject", key), key
        for action in ("s3:PutObject", "s3:DeleteObject"):
            assert not _allowed(ci, action, key), (action, key)
    for key in (
        f"prod/_platform/{published.POINTER}",
        f"{ENV}/{PP}/metadata.json",
        f"{ENV}/{PP}/dags/{PP}_x.json",
        f"{ENV}/_platform_x/{published.POINTER}",
    ):
        assert not _allowed(platform_role, "s3:PutObject", obj + key), key
    assert not _allowed(platform_role, "s3:DeleteObject", ours[0])
    assert _allowed(platform_role, "s3:GetObject", obj + f"{ENV}/{RS}/_releases/objects/ab.json")
    assert not _allowed(platform_role, "s3:GetObject", obj + f"prod/_platform/{published.POINTER}")
    assert not _allowed(ci, "s3:GetObject", obj + f"prod/_platform/{published.POINTER}")
    assert s3.count() == 0


def test_every_request_of_the_policy_commands_is_allowed_by_the_platform_role(s3, served, capsys, tmp_path):
    """Publish, plan, show and rollback send only requests the platform role allows (request by request)."""
    bucket = served
    first = write(tmp_path, "first.json", SHIPPED)
    tighter = write(tmp_path, "strict.json", strict(SHIPPED, RS, "reporting-slack"))
    assert main(capsys, *policy_cmd(bucket, "publish", "--file", str(first)))[0] == 0
    assert main(capsys, *policy_cmd(bucket, "plan", "--file", str(tighter)))[0] == 2
    assert main(capsys, *policy_cmd(bucket, "publish", "--file", str(tighter), "--allow-breaking"))[0] == 0
    assert main(capsys, *policy_cmd(bucket, "show", "--history"))[0] == 0
    assert main(capsys, *policy_cmd(bucket, "rollback", "--to", "previous", "--yes"))[0] == 0
    out = main(capsys, "iam-policy", "--bucket", bucket, "--environment", ENV, "--platform")[1]
    _check_requests(s3, bucket, json.loads(out)["platform_role"])


def test_platform_role_policy_is_accepted_by_iam(capsys, monkeypatch):
    """`iam-policy --platform` output attaches to a role (moto validates IAM policy documents)."""
    from moto import mock_aws

    code, out, _ = main(
        capsys, "iam-policy", "--bucket", "etl-airflow-dags-prod", "--environment", "prod", "--platform"
    )
    assert code == 0
    for key, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    trust = (ROOT / "deploy" / "iam" / "package-ci-trust.json").read_text()
    with mock_aws():
        iam = boto3.client("iam")
        iam.create_role(RoleName="platform", AssumeRolePolicyDocument=trust)
        iam.put_role_policy(
            RoleName="platform",
            PolicyName="dags",
            PolicyDocument=json.dumps(json.loads(out)["platform_role"]),
        )
        assert iam.get_role_policy(RoleName="platform", PolicyName="dags")["PolicyDocument"]["Statement"]
