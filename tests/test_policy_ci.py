"""CI reads the platform policy from the bucket: the one each command checks against.

``plan``, ``publish``, ``promote`` (the target's) and ``validate`` with ``--bucket``/``--environment``
check against the environment's published policy (``<env>/_platform/``, put here with boto3 in the
layout of :mod:`dagfactory_s3.serve.policy`); ``--policy FILE`` overrides it offline; with no policy
anywhere one warning line names the checks skipped, and ``--require-policy`` makes that an error.
Against the moto server through the counting proxy, the CLI in-process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import yaml
from test_publish import PP, dags_dir, main, objects, publish_args, run_cli

from dagfactory_s3.serve.policy import PolicyEntry, PolicyRecord, label, object_key, pointer_key

from conftest import ROOT
from s3server import aws_env

SHIPPED = json.loads((ROOT / "deploy/airflow/dagfactory-policy.json").read_text())
JOB = "pipeline_processing_example_job.json"
NO_POLICY = "warning: no platform policy (no --policy, "
SKIPPED = "notifiers, image registries, grants, namespaces and service accounts are not checked"


def without_oncall() -> bytes:
    """The shipped policy, but its only notifier is ``team-pager``: ``oncall-email`` is unknown."""
    doc = json.loads(json.dumps(SHIPPED))
    doc["notifiers"] = {"team-pager": {"kind": "smtp", "to": ["pager@example.com"]}}
    doc["grants"]["*"]["notifiers"] = ["team-pager"]
    return json.dumps(doc, indent=2).encode()


STRICT, LENIENT = without_oncall(), json.dumps(SHIPPED).encode()


def _sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def put_policy(
    s3, bucket: str, environment: str, raw: bytes, *, stored: bytes | None = None, stamp: str = "120000"
) -> str:
    """Publish ``raw`` as ``environment``'s policy the way serve.policy lays it out (bytes first, pointer
    last); ``stored``: other bytes under its digest (a corrupt object). Returns the policy's label."""
    sha = _sha(raw)
    policy_id = f"20240101T{stamp}.000Z-abcdef"
    client = boto3.client("s3", endpoint_url=s3.upstream)
    client.put_object(Bucket=bucket, Key=object_key(environment, sha), Body=raw if stored is None else stored)
    record = PolicyRecord(environment, PolicyEntry(policy_id, sha, len(raw)))
    client.put_object(Bucket=bucket, Key=pointer_key(environment), Body=record.to_json())
    return label(environment, policy_id)


@pytest.fixture
def src(examples_copy: Path) -> Path:
    """The pipeline_processing package, its job paging ``oncall-email`` on failure."""
    folder = dags_dir(examples_copy, PP)
    path = folder / JOB
    doc = json.loads(path.read_text())
    doc["alerts"] = {"on_failure": ["oncall-email"]}
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return folder


def refusal(err: str, policy: str) -> str:
    """The one problem line the STRICT policy gives ``src``, with the policy's name taken out."""
    [line] = [line for line in err.splitlines() if "unknown notifier" in line]
    assert f"the platform policy ({policy}) defines: team-pager" in line, line
    return line.replace(policy, "POLICY")


def policy_lines(err: str) -> list[str]:
    """The "no platform policy" warnings among ``err``'s lines."""
    return [line for line in err.splitlines() if line.startswith(NO_POLICY)]


class TestPublishedPolicy:
    def test_plan_and_publish_refuse_as_the_same_file_would(self, s3, bucket, src, tmp_path, capsys):
        """The published policy refuses an unknown notifier with the line --policy FILE of the same bytes
        gives (the policy's name aside); nothing is written."""
        published = put_policy(s3, bucket, "dev", STRICT)
        file = tmp_path / "policy.json"
        file.write_bytes(STRICT)
        s3.clear()
        lines = set()
        for command in ("plan", "publish"):
            argv = publish_args(bucket, PP, src)
            argv[0] = command
            code, _, err = main(capsys, *argv)
            assert code == 1 and "Traceback" not in err and not policy_lines(err), err
            lines.add(refusal(err, published))
            code, _, err = main(capsys, *argv, "--policy", str(file))
            assert code == 1
            lines.add(refusal(err, str(file)))
        assert lines == {
            f"{src / JOB}: /alerts/on_failure/0: unknown notifier 'oncall-email'; "
            "the platform policy (POLICY) defines: team-pager"
        }
        assert s3.count("PUT") == 0 and s3.count("DELETE") == 0
        assert set(objects(s3, bucket)) == {pointer_key("dev"), object_key("dev", _sha(STRICT))}

    def test_validate_reads_it_given_a_bucket_and_an_environment(self, s3, bucket, src, capsys, monkeypatch):
        """validate --bucket --environment (or DAG_BUCKET and ENVIRONMENT) checks against the published
        policy; without them it checks offline and says what it skipped."""
        published = put_policy(s3, bucket, "dev", STRICT)
        code, _, err = main(
            capsys, "validate", "--dag-path", str(src), "--bucket", bucket, "--environment", "dev"
        )
        assert code == 1 and refusal(err, published)
        code, _, err = main(capsys, "validate", "--dag-path", str(src))
        assert code == 0 and policy_lines(err) == [
            f"{NO_POLICY}no --bucket and --environment to read the published one from): {SKIPPED}"
        ]
        monkeypatch.setenv("DAG_BUCKET", bucket)
        monkeypatch.setenv("ENVIRONMENT", "dev")
        code, _, err = main(capsys, "validate", "--dag-path", str(src))
        assert code == 1 and refusal(err, published)

    @pytest.mark.airflow
    def test_render_reads_it_given_a_bucket_and_an_environment(self, s3, bucket, src, tmp_path):
        """render --bucket --environment builds the pods under the published policy: the same refusal;
        --policy FILE renders under the file instead."""
        pytest.importorskip("airflow")
        published = put_policy(s3, bucket, "dev", STRICT)
        argv = ["render", "--dag-file", str(src / JOB), "--bucket", bucket, "--environment", "dev"]
        result = run_cli(s3, *argv)
        assert result.returncode == 1 and refusal(result.stderr, published), result.stderr
        file = tmp_path / "policy.json"
        file.write_bytes(LENIENT)
        result = run_cli(s3, *argv, "--policy", str(file))
        assert result.returncode == 0 and "kind: Pod" in result.stdout, result.stderr
        assert not policy_lines(result.stderr)

    def test_json_output_names_the_policy_used(self, s3, bucket, src, capsys):
        """--output json carries the policy each command checked against: its label, or null."""
        published = put_policy(s3, bucket, "dev", LENIENT)
        remote = [*publish_args(bucket, PP, src), "--output", "json"]
        data = json.loads(main(capsys, *remote)[1])
        assert data["ok"] and data["policy"] == published
        code, out, _ = main(capsys, "validate", "--dag-path", str(src), "--output", "json")
        assert code == 0 and json.loads(out)["policy"] is None
        shipped = str(ROOT / "deploy/airflow/dagfactory-policy.json")
        code, out, _ = main(
            capsys, "validate", "--dag-path", str(src), "--policy", shipped, "--output", "json"
        )
        assert code == 0 and json.loads(out)["policy"] == shipped

    def test_a_policy_file_overrides_the_published_one(self, s3, bucket, src, tmp_path, capsys):
        """--policy FILE wins over the published policy, and the bucket's is then not even read."""
        put_policy(s3, bucket, "dev", STRICT)
        file = tmp_path / "policy.json"
        file.write_bytes(LENIENT)
        s3.clear()
        code, out, err = main(
            capsys, *publish_args(bucket, PP, src, "--policy", str(file), "--output", "json")
        )
        assert code == 0, err
        assert json.loads(out)["policy"] == str(file)
        assert not [r for r in s3.requests if "/_platform/" in r.path]

    def test_a_corrupt_published_policy_is_an_error_and_nothing_is_published(self, s3, bucket, src, capsys):
        """An object whose bytes are not the digest its pointer names: one line naming the key, exit 1,
        nothing written; never a fall back to the default."""
        put_policy(s3, bucket, "dev", LENIENT, stored=STRICT)
        key = object_key("dev", _sha(LENIENT))
        s3.clear()
        code, _, err = main(capsys, *publish_args(bucket, PP, src))
        assert code == 1 and "Traceback" not in err and len(err.splitlines()) == 1, err
        assert err.startswith(
            f"error: s3://{bucket}/{key}: does not match the sha256 and size its pointer records"
        )
        assert "the platform policy published for 'dev' cannot be used" in err
        assert s3.count("PUT") == 0 and not [k for k in objects(s3, bucket) if k.startswith(f"dev/{PP}/")]
        code, _, err = main(
            capsys, "validate", "--dag-path", str(src), "--bucket", bucket, "--environment", "dev"
        )
        assert code == 1 and err.startswith(f"error: s3://{bucket}/{key}: ")

    def test_a_corrupt_pointer_is_an_error(self, s3, bucket, src, capsys):
        """A pointer that is not a policy pointer: one line naming it, exit 1."""
        boto3.client("s3", endpoint_url=s3.upstream).put_object(
            Bucket=bucket, Key=pointer_key("dev"), Body=b"{not json"
        )
        code, _, err = main(capsys, *publish_args(bucket, PP, src))
        assert code == 1 and len(err.splitlines()) == 1
        assert err.startswith(f"error: s3://{bucket}/{pointer_key('dev')}: /: not JSON")


class TestNoPolicyAnywhere:
    def test_one_warning_line_names_the_checks_skipped(self, s3, bucket, src, capsys):
        """Nothing published and no --policy: plan and publish pass under the default and say, in exactly
        one line, where they looked and which checks they skipped."""
        for command in ("plan", "publish"):
            argv = publish_args(bucket, PP, src)
            argv[0] = command
            code, _, err = main(capsys, *argv)
            assert code == 0, err
            assert policy_lines(err) == [
                f"{NO_POLICY}nothing at s3://{bucket}/{pointer_key('dev')}): {SKIPPED}"
            ]

    def test_require_policy_makes_it_an_error(self, s3, bucket, src, capsys, monkeypatch):
        """--require-policy (or DAGFACTORY_REQUIRE_POLICY) turns the warning into a config error, exit 2,
        before anything is written; a published policy satisfies it."""
        code, _, err = main(capsys, *publish_args(bucket, PP, src, "--require-policy"))
        assert code == 2 and len(err.splitlines()) == 1
        assert err.startswith(
            f"error: no platform policy (no --policy, nothing at s3://{bucket}/dev/_platform/"
        )
        assert "--require-policy" in err
        monkeypatch.setenv("DAGFACTORY_REQUIRE_POLICY", "true")
        code, _, err = main(capsys, "validate", "--dag-path", str(src))
        assert code == 2 and err.startswith("error: no platform policy (no --policy, no --bucket")
        assert s3.count("PUT") == 0
        put_policy(s3, bucket, "dev", LENIENT)
        code, _, err = main(capsys, *publish_args(bucket, PP, src))
        assert code == 0, err


class TestPromote:
    def test_promote_checks_against_the_target_environments_policy(self, s3, bucket, src, capsys):
        """dev's policy lets the notifier through, prod's does not: promote is refused with prod's policy
        named and nothing in prod; once prod's policy has it, the release ships."""
        put_policy(s3, bucket, "dev", LENIENT)
        assert main(capsys, *publish_args(bucket, PP, src))[0] == 0
        prod = put_policy(s3, bucket, "prod", STRICT)
        argv = ["promote", "--bucket", bucket, "--package-name", PP, "--from", "dev", "--to", "prod", "--yes"]
        s3.clear()
        code, _, err = main(capsys, *argv)
        assert code == 1 and "unknown notifier 'oncall-email'" in err
        assert f"the platform policy ({prod}) defines: team-pager" in err
        assert s3.count("PUT") == 0 and not [k for k in objects(s3, bucket) if k.startswith(f"prod/{PP}/")]
        prod = put_policy(s3, bucket, "prod", LENIENT, stamp="130000")
        code, out, err = main(capsys, *argv, "--output", "json")
        assert code == 0, err
        assert json.loads(out)["policy"] == prod


class TestPreCommitHook:
    def hook(self, args: list[str], files: list[Path], cwd: Path, s3) -> subprocess.CompletedProcess[str]:
        """The hook as pre-commit runs it: its entry, then ``args``, then the changed files."""
        [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
        names = [str(f.relative_to(cwd)) for f in files]
        env = {k: v for k, v in aws_env(s3.url).items() if not k.startswith(("DAG_", "DAGFACTORY_"))}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        argv = [*shlex.split(hook["entry"]), *args, *names]
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)

    def test_the_hook_checks_against_the_published_policy_given_its_flags(
        self, s3, bucket, src, examples_copy
    ):
        """args: [--bucket=B, --environment=E] make the hook check against E's published policy; without
        them it checks offline and warns, once per directory, what it skipped."""
        published = put_policy(s3, bucket, "dev", STRICT)
        changed = sorted(src.glob("*")) + sorted(dags_dir(examples_copy, "reporting_seeder").glob("*"))
        result = self.hook([f"--bucket={bucket}", "--environment=dev"], changed, examples_copy, s3)
        assert result.returncode == 1 and refusal(result.stderr, published)
        assert not policy_lines(result.stderr)
        result = self.hook([], changed, examples_copy, s3)
        assert result.returncode == 0, result.stderr
        assert len(policy_lines(result.stderr)) == 2 and result.stdout.count("ok ") == 3
