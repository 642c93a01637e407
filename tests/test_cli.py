"""`airflow-dag-publisher` as a user runs it: a subprocess, or ``cli.main`` in-process (same code) where
many cases run; remote commands against the moto server over HTTP."""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import subprocess
import sys

import boto3
import pytest

from dagfactory_s3 import stub
from dagfactory_s3.publisher import cli
from dagfactory_s3.schema import schema

from bad_inputs import CASES, GOOD, PACKAGE
from conftest import EXAMPLES, all_examples
from s3server import aws_env

CLI = [sys.executable, "-m", "dagfactory_s3.publisher.cli"]


def run(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


NO_POLICY = "warning: no platform policy (no --policy, "


def _without_policy_warning(stderr: str) -> str:
    """``stderr`` less the one line a command checking without any platform policy prints first."""
    first, _, rest = stderr.partition("\n")
    assert first.startswith(NO_POLICY), stderr
    return rest


class TestGenerate:
    def test_seed_command_writes_publishable_names(self, tmp_path):
        """The seed's flags (--output FILE.py, --image-tag) write <dag_id>.json and <dag_id>.py, with $schema."""
        result = run(
            "generate",
            "--package-name",
            "pipeline_processing",
            "--dag-id",
            "pipeline_processing_example",
            "--job-name",
            "example_job",
            "--image-tag",
            "123.dkr.ecr.us-east-1.amazonaws.com/pp:v1.0.0",
            "--output",
            str(tmp_path / "dag.py"),
            "--start-date",
            "2024-01-01",
            "--schedule",
            "@daily",
        )
        assert result.returncode == 0, result.stderr
        assert "dag.py would not publish" in result.stderr
        manifest = json.loads((tmp_path / "pipeline_processing_example.json").read_text())
        assert manifest["$schema"] == schema()["$id"] and manifest["$schema"].startswith("https://")
        assert manifest["job"] == {
            "name": "example_job",
            "image": "123.dkr.ecr.us-east-1.amazonaws.com/pp:v1.0.0",
        }
        assert manifest["start_date"] == "2024-01-01" and manifest["schedule"] == "@daily"
        stub_path = tmp_path / "pipeline_processing_example.py"
        assert stub_path.read_bytes() == stub.render("pipeline_processing_example.json")
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "pipeline_processing_example.json",
            "pipeline_processing_example.py",
        ]
        for flag in ("--dag-file", "--dag-path"):
            target = stub_path if flag == "--dag-file" else tmp_path
            check = run("validate", "--package-name", "pipeline_processing", flag, str(target))
            assert check.returncode == 0 and _without_policy_warning(check.stderr) == "", check.stderr

    def test_out_dir_and_json_output(self, tmp_path):
        """--out-dir DIR writes DIR/<dag_id>.json and .py; --output json reports both paths."""
        result = run(
            "generate",
            "--package-name",
            "pp",
            "--dag-id",
            "pp_a",
            "--job-name",
            "j",
            "--image",
            "r/x:1",
            "--out-dir",
            str(tmp_path / "dags"),
            "--output",
            "json",
        )
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data == {
            "ok": True,
            "dag_id": "pp_a",
            "manifest": str(tmp_path / "dags" / "pp_a.json"),
            "stub": str(tmp_path / "dags" / "pp_a.py"),
        }

    def test_manifest_names_the_path_and_the_stub_goes_next_to_it(self, tmp_path):
        """--manifest DIR/<dag_id>.json writes there (creating DIR) and the stub beside it; validate passes."""
        flags = [
            "generate",
            "--package-name",
            "pp",
            "--dag-id",
            "pp_a",
            "--job-name",
            "j",
            "--image",
            "r/x:1",
        ]
        target = tmp_path / "new" / "dags" / "pp_a.json"
        result = run(*flags, "--manifest", str(target), "--output", "json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {
            "ok": True,
            "dag_id": "pp_a",
            "manifest": str(target),
            "stub": str(target.with_suffix(".py")),
        }
        assert sorted(p.name for p in target.parent.iterdir()) == ["pp_a.json", "pp_a.py"]
        assert target.with_suffix(".py").read_bytes() == stub.render("pp_a.json")
        check = run("validate", "--package-name", "pp", "--dag-path", str(target.parent))
        assert check.returncode == 0 and _without_policy_warning(check.stderr) == "", check.stderr
        for extra, message in [
            (["--manifest", str(tmp_path / "dag.json")], "--manifest must be named pp_a.json"),
            (["--manifest", str(tmp_path / "pp_a.json"), "--out-dir", str(tmp_path)], "not allowed with"),
            (
                ["--manifest", str(tmp_path / "pp_a.json"), "--output", str(tmp_path / "pp_a.py")],
                "use --output text|json",
            ),
            (
                ["--dag-path", str(target.parent), "--manifest", str(tmp_path / "pp_a.json")],
                "with --dag-path",
            ),
        ]:
            refused = run(*flags, *extra)
            assert refused.returncode == 2 and message in refused.stderr, (extra, refused.stderr)
            assert "Traceback" not in refused.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]  # nothing written by the refusals

    def test_bad_flags_write_nothing(self, tmp_path):
        """A :latest image or a foreign dag_id is refused and no file is written."""
        result = run(
            "generate",
            "--package-name",
            "pipeline_processing",
            "--dag-id",
            "other_x",
            "--job-name",
            "j",
            "--image-tag",
            "repo/x:latest",
            "--out-dir",
            str(tmp_path),
        )
        assert result.returncode == 1
        assert "/dag_id: dag_id 'other_x' must be 'pipeline_processing_<name>'" in result.stderr
        assert "/job/image: image tag 'latest'" in result.stderr
        assert "Traceback" not in result.stderr
        assert list(tmp_path.iterdir()) == []

    def test_existing_manifest_needs_force(self, tmp_path):
        """generate does not overwrite a manifest unless --force is given."""
        args = [
            "generate",
            "--package-name",
            "pp",
            "--dag-id",
            "pp_a",
            "--job-name",
            "j",
            "--image-tag",
            "r/x:1",
            "--out-dir",
            str(tmp_path),
        ]
        assert run(*args).returncode == 0
        again = run(*args)
        assert again.returncode == 2 and "already exists; pass --force" in again.stderr
        assert run(*args, "--force").returncode == 0

    def test_directory_mode_regenerates_stale_stubs(self, examples_copy):
        """generate --dag-path rewrites missing or edited stubs; --check reports them without writing."""
        folder = examples_copy / "reporting_seeder" / "airflow_dags"
        (folder / "reporting_seeder_refresh_all.py").write_text("import os\n# airflow dag\n")
        (folder / "reporting_seeder_refresh_agency.py").unlink()
        check = run("generate", "--dag-path", str(folder), "--check")
        assert check.returncode == 1 and check.stderr.count("stub is missing or stale") == 2
        assert run("generate", "--dag-path", str(folder)).returncode == 0
        for name in ("reporting_seeder_refresh_all", "reporting_seeder_refresh_agency"):
            assert (folder / f"{name}.py").read_bytes() == stub.render(f"{name}.json")
        assert run("generate", "--dag-path", str(folder), "--check").returncode == 0


class TestValidate:
    @pytest.mark.parametrize("package", ["pipeline_processing", "reporting_seeder"])
    def test_example_directories_are_valid(self, package):
        """validate --dag-path accepts each example package."""
        result = run(
            "validate", "--package-name", package, "--dag-path", str(EXAMPLES / package / "airflow_dags")
        )
        assert result.returncode == 0, result.stderr

    @pytest.fixture(scope="class")
    def corpus_run(self, tmp_path_factory):
        """validate --dag-path over a folder holding every bad-input case as <case>.json: one process."""
        folder = tmp_path_factory.mktemp("corpus")
        for case, raw, _pointer, _text in CASES:
            (folder / f"{case}.json").write_bytes(raw)
        return folder, run("validate", "--package-name", PACKAGE, "--dag-path", str(folder))

    def test_corpus_run_exits_1_without_traceback(self, corpus_run):
        """A folder of bad inputs exits 1 with problem lines only."""
        _folder, result = corpus_run
        assert result.returncode == 1 and "Traceback" not in result.stderr
        problems = _without_policy_warning(result.stderr).splitlines()
        assert all(": /" in line for line in problems), result.stderr[-2000:]

    @pytest.mark.parametrize(("case", "raw", "pointer", "text"), CASES, ids=[c[0] for c in CASES])
    def test_bad_manifest_is_named_with_pointer_and_reason(self, corpus_run, case, raw, pointer, text):
        """Each bad input prints a `file: pointer: reason` line."""
        folder, result = corpus_run
        path = folder / f"{case}.json"
        assert any(
            line.startswith(f"{path}: {pointer}: ") and text in line for line in result.stderr.splitlines()
        ), [line for line in result.stderr.splitlines() if line.startswith(str(path))]

    @pytest.mark.parametrize(
        "case", ["empty-file", "q-limit-below-request", "lone-high-surrogate", "cron-february-30"]
    )
    def test_single_bad_file_exits_1(self, tmp_path, case):
        """validate --dag-file on one bad manifest exits 1 and names it (a few cases, one process each)."""
        _case, raw, pointer, text = next(c for c in CASES if c[0] == case)
        path = tmp_path / f"{case}.json"
        path.write_bytes(raw)
        result = run("validate", "--package-name", PACKAGE, "--dag-file", str(path))
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert f"{path}: {pointer}: " in result.stderr and text in result.stderr

    def test_json_output_lists_problems(self, tmp_path):
        """--output json prints {ok: false, problems: [...]} on stdout for CI."""
        path = tmp_path / "m.json"
        path.write_bytes(CASES[20][1])
        result = run("validate", "--dag-file", str(path), "--output", "json")
        data = json.loads(result.stdout)
        assert result.returncode == 1 and data["ok"] is False
        assert data["problems"][0]["file"] == str(path) and data["problems"][0]["pointer"].startswith("/")

    def test_hand_edited_stub_is_refused(self, examples_copy):
        """A .py that is not the canonical stub fails validation, file and directory alike."""
        folder = examples_copy / "reporting_seeder" / "airflow_dags"
        path = folder / "reporting_seeder_refresh_all.py"
        path.write_bytes(path.read_bytes() + b"import os; os.system('id')\n")
        for args in (["--dag-file", str(path)], ["--dag-path", str(folder)]):
            result = run("validate", *args)
            assert result.returncode == 1 and "not the canonical stub" in result.stderr

    def test_python_without_manifest_is_refused(self, examples_copy):
        """A directory with a stray .py (no manifest) is refused."""
        folder = examples_copy / "reporting_seeder" / "airflow_dags"
        (folder / "evil.py").write_text("# airflow dag\n")
        result = run("validate", "--dag-path", str(folder))
        assert result.returncode == 1 and "evil.py: /: Python file without a manifest" in result.stderr

    def test_duplicate_dag_id_in_directory_is_refused(self, examples_copy):
        """Two files declaring one dag_id are refused."""
        folder = examples_copy / "reporting_seeder" / "airflow_dags"
        (folder / "copy.json").write_bytes((folder / "reporting_seeder_refresh_all.json").read_bytes())
        result = run("validate", "--dag-path", str(folder))
        assert (
            result.returncode == 1
            and "dag_id 'reporting_seeder_refresh_all' is also defined in" in result.stderr
        )

    def test_missing_path_is_a_config_error(self, tmp_path):
        """A path that does not exist exits 2 with one line."""
        result = run("validate", "--dag-file", str(tmp_path / "nope.json"))
        assert result.returncode == 2 and result.stderr.strip().endswith("no such file or directory")


@pytest.mark.airflow
@pytest.mark.compat
class TestRender:
    @pytest.fixture(autouse=True)
    def _airflow(self):
        pytest.importorskip("airflow")

    @pytest.mark.parametrize("path", all_examples(), ids=lambda p: p.name)
    def test_rendered_pods_match_golden_and_validate(self, path, golden, tmp_path):
        """render prints each task's pod (operator's own code, kubernetes-validate strict) = golden file."""
        result = subprocess.run(
            [*CLI, "render", "--dag-file", str(path)],
            capture_output=True,
            timeout=120,
            env={**__import__("os").environ, "AIRFLOW_HOME": str(tmp_path)},
        )
        assert result.returncode == 0, result.stderr.decode()
        # Airflow's own airflow_version label is the one line that differs between minors.
        from airflow import __version__ as airflow_version

        labels = re.findall(rb"airflow_version: (\S+)", result.stdout)
        assert labels and set(labels) == {airflow_version.encode()}
        golden(
            f"pods/{path.stem}.yaml",
            re.sub(rb"airflow_version: \S+", b"airflow_version: AIRFLOW", result.stdout),
        )
        tasks = result.stdout.count(b"kind: Pod")
        assert re.fullmatch(
            rf"schedule: [^\n]+\nvalidated {tasks} pods against Kubernetes \d+\.\d+\.\d+ schema\n",
            _without_policy_warning(result.stderr.decode()),
        ), result.stderr

    def test_render_names_the_cron_and_its_time_zone(self, tmp_path):
        """render says on stderr what the DAG runs on: its cron with the manifest's time zone, else UTC."""
        berlin = EXAMPLES / "reporting_seeder/airflow_dags/reporting_seeder_refresh_all.json"
        plain = tmp_path / f"{GOOD['dag_id']}.json"
        plain.write_text(json.dumps(GOOD))
        for path, expected in ((berlin, "@daily (Europe/Berlin)"), (plain, "0 3 * * * (UTC)")):
            result = run("render", "--dag-file", str(path))
            assert result.returncode == 0, result.stderr
            assert _without_policy_warning(result.stderr).startswith(f"schedule: {expected}\n"), result.stderr

    def test_invalid_affinity_is_reported_not_dropped(self, tmp_path):
        """An affinity the Kubernetes client would silently drop fails with its pointer instead."""
        doc = json.loads(
            (EXAMPLES / "reporting_seeder/airflow_dags/reporting_seeder_refresh_agency.json").read_text()
        )
        # A misspelt field passes the API-server rules (they ignore unknown fields) but the client drops it.
        doc["job"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerm"
        ] = []
        path = tmp_path / "reporting_seeder_refresh_agency.json"
        path.write_text(json.dumps(doc))
        result = run("render", "--dag-file", str(path))
        assert result.returncode == 1, result.stdout
        assert f"{path}: /job/affinity: not a valid Kubernetes Affinity" in result.stderr
        assert "Traceback" not in result.stderr


def test_schema_command_prints_the_shipped_schema():
    """`schema` prints the JSON Schema with its $id."""
    result = run("schema")
    assert json.loads(result.stdout)["$id"].endswith("job-manifest.v1.json")


# -- against S3 (moto over HTTP): the same code in-process, or the real CLI in a subprocess --------

ENV = "dev"


def cli_main(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def target(bucket: str, package: str = PACKAGE) -> list[str]:
    return ["--bucket", bucket, "--environment", ENV, "--package-name", package]


def problems_of(out: str) -> list[tuple[str, str, str]]:
    return sorted((p["file"], p["pointer"], p["message"]) for p in json.loads(out)["problems"])


class TestOneRuleSet:
    @pytest.mark.parametrize(("case", "raw", "pointer", "text"), CASES, ids=[c[0] for c in CASES])
    def test_validate_and_publish_agree_on_bad_input(
        self, s3, bucket, tmp_path, capsys, case, raw, pointer, text
    ):
        """Every corpus case: validate (directory and file) and publish refuse with the same problems; S3 untouched."""
        folder = tmp_path / "dags"
        folder.mkdir()
        path = folder / f"{case}.json"
        path.write_bytes(raw)
        results = [
            cli_main(
                capsys, "validate", "--package-name", PACKAGE, "--dag-path", str(folder), "--output", "json"
            ),
            cli_main(
                capsys, "validate", "--package-name", PACKAGE, "--dag-file", str(path), "--output", "json"
            ),
            cli_main(capsys, "publish", *target(bucket), "--dag-path", str(folder), "--output", "json"),
            cli_main(capsys, "plan", *target(bucket), "--dag-path", str(folder), "--output", "json"),
        ]
        assert [code for code, _, _ in results] == [1, 1, 1, 1]
        found = [problems_of(out) for _, out, _ in results]
        assert found[0] == found[1] == found[2] == found[3]
        assert any(p[1] == pointer and text in p[2] for p in found[0]), found[0]
        # nothing read but the platform policy they check against (none published here)
        assert {r.path for r in s3.requests} == {f"/{bucket}/{ENV}/_platform/policy.json"}

    @pytest.mark.parametrize("package", ["pipeline_processing", "reporting_seeder"])
    def test_validate_and_publish_agree_on_good_examples(self, s3, bucket, examples_copy, capsys, package):
        """Each example package: validate and publish both accept it."""
        folder = examples_copy / package / "airflow_dags"
        assert cli_main(capsys, "validate", "--package-name", package, "--dag-path", str(folder))[0] == 0
        for m in sorted(folder.glob("*.json")):
            assert cli_main(capsys, "validate", "--package-name", package, "--dag-file", str(m))[0] == 0
        code, _, err = cli_main(capsys, "publish", *target(bucket, package), "--dag-path", str(folder))
        assert code == 0, err

    def test_misnamed_file_is_refused_by_validate_too(self, tmp_path):
        """The issue's first trap: a manifest not named <dag_id>.json fails validate, as it fails publish."""
        path = tmp_path / "dag.json"
        path.write_bytes(json.dumps(GOOD).encode())
        result = run("validate", "--package-name", PACKAGE, "--dag-file", str(path))
        assert result.returncode == 1
        assert f"{path}: /dag_id: file must be named {GOOD['dag_id']}.json" in result.stderr

    def test_every_problem_in_one_pass(self, tmp_path):
        """A schema error does not hide rule errors: unknown field, bad cron and :latest are reported together."""
        doc = {**GOOD, "retrys": 3, "schedule": "61 * * * *"}
        doc["tasks"] = [{**GOOD["tasks"][0], "image": "r/x:latest"}]
        path = tmp_path / f"{GOOD['dag_id']}.json"
        path.write_text(json.dumps(doc))
        result = run("validate", "--package-name", PACKAGE, "--dag-file", str(path))
        assert result.returncode == 1
        assert f"{path}: /retrys: unknown field" in result.stderr
        assert f"{path}: /schedule: cron expression" in result.stderr
        assert f"{path}: /tasks/0/image: image tag 'latest'" in result.stderr

    def test_missing_stub_is_a_warning_in_both(self, s3, bucket, examples_copy, capsys):
        """A manifest without its stub: validate and publish both warn and pass; publish generates the stub."""
        folder = examples_copy / "reporting_seeder" / "airflow_dags"
        (folder / "reporting_seeder_refresh_all.py").unlink()
        code, _, err = cli_main(capsys, "validate", "--dag-path", str(folder))
        assert code == 0 and f"warning: no stub: {folder / 'reporting_seeder_refresh_all.py'}; publish" in err
        code, _, err = cli_main(
            capsys, "publish", *target(bucket, "reporting_seeder"), "--dag-path", str(folder)
        )
        assert code == 0 and f"warning: no stub: {folder / 'reporting_seeder_refresh_all.py'}; publish" in err
        assert f"{ENV}/reporting_seeder/dags/reporting_seeder_refresh_all.py" in [
            r.path.split("/", 2)[2] for r in s3.requests if r.method == "PUT"
        ]


def _publish(capsys, bucket: str, folder, *extra: str) -> dict:
    code, out, err = cli_main(
        capsys,
        "publish",
        *target(bucket, "reporting_seeder"),
        "--dag-path",
        str(folder),
        "--output",
        "json",
        *extra,
    )
    assert code == 0, err
    return json.loads(out)


def _edit(path, **task0) -> None:
    doc = json.loads(path.read_text())
    doc["tasks"][0].update(task0)
    path.write_text(json.dumps(doc, indent=2))


class TestPlan:
    def test_field_diff_summary_and_detailed_exit_codes(self, s3, bucket, examples_copy, capsys):
        """plan shows old -> new per JSON pointer, a summary line, and exits 0 / 2 / 1 with --detailed-exitcode."""
        folder = examples_copy / "reporting_seeder" / "airflow_dags"
        plan = ["plan", *target(bucket, "reporting_seeder"), "--dag-path", str(folder), "--detailed-exitcode"]
        code, out, _ = cli_main(capsys, *plan)
        assert code == 2 and "  + reporting_seeder_refresh_all\n" in out
        assert out.rstrip().endswith("Plan: 2 to add, 0 to change, 0 to delete, 0 unchanged.")
        _publish(capsys, bucket, folder)
        code, out, _ = cli_main(capsys, *plan)
        assert code == 0 and "No changes" in out
        _edit(folder / "reporting_seeder_refresh_all.json", retries=5, command=["x" * 100])
        code, out, _ = cli_main(capsys, *plan)
        assert code == 2, out
        assert "  ~ reporting_seeder_refresh_all\n" in out
        assert "      /tasks/0/retries: (unset) → 5\n" in out
        long_line = next(line for line in out.splitlines() if "/tasks/0/command" in line)
        assert "…" in long_line and len(long_line) < 160
        assert out.rstrip().endswith("Plan: 0 to add, 1 to change, 0 to delete, 1 unchanged.")
        digest = "123456789012.dkr.ecr.us-east-1.amazonaws.com/reporting-seeder@sha256:" + "ab" * 32
        _edit(folder / "reporting_seeder_refresh_all.json", image=digest)
        out = cli_main(capsys, *plan)[1]
        assert f'/tasks/0/image: (unset) → "{digest}"' in out  # an image reference is never cut
        data = json.loads(cli_main(capsys, *plan, "--output", "json")[1])
        assert data["summary"] == {"add": 0, "change": 1, "delete": 0, "unchanged": 1}
        assert data["changes_pending"] is True
        [dag] = data["dags"]
        assert dag["dag_id"] == "reporting_seeder_refresh_all" and dag["action"] == "change"
        assert {"pointer": "/tasks/0/retries", "new": 5} in dag["changes"]
        (folder / "bad.json").write_text("{")
        assert cli_main(capsys, *plan)[0] == 1
        missing_flag = ["plan", "--bucket", bucket, "--dag-path", str(folder), "--detailed-exitcode"]
        env_less = {k: v for k, v in os.environ.items() if k not in ("ENVIRONMENT", "DAG_PACKAGE_NAME")}
        assert subprocess.run([*CLI, *missing_flag], env=env_less, capture_output=True).returncode == 1


class TestConfigErrors:
    """A malformed setting is one line and the config exit code, never a traceback."""

    @pytest.mark.parametrize(
        ("argv", "env", "named"),
        [
            (
                [
                    "publish",
                    "--bucket",
                    "b",
                    "--environment",
                    ENV,
                    "--package-name",
                    PACKAGE,
                    "--dag-path",
                    ".",
                ],
                {"DAGFACTORY_PUBLISHED_BY": " "},
                "DAGFACTORY_PUBLISHED_BY",
            ),
            (
                ["list", "--bucket", "b", "--environment", ENV, "--package-name", PACKAGE],
                {"AWS_ENDPOINT_URL": "not a url"},
                "AWS_ENDPOINT_URL",
            ),
        ],
        ids=["published-by-blank", "endpoint-not-a-url"],
    )
    def test_malformed_setting_is_one_line(self, tmp_path, argv, env, named):
        result = subprocess.run(
            [*CLI, *argv],
            env=aws_env("http://127.0.0.1:9") | env,
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith(f"error: {named}") and len(result.stderr.splitlines()) == 1

    def test_a_variable_is_read_after_parsing_by_the_commands_that_have_it(self, tmp_path):
        """A malformed variable never stops --help, nor a command without that setting."""
        env = os.environ | {"DAGFACTORY_PUBLISHED_BY": " "}
        result = subprocess.run([*CLI, "publish", "--help"], env=env, capture_output=True, text=True)
        assert result.returncode == 0 and "DAGFACTORY_PUBLISHED_BY" in result.stdout, result.stderr
        (tmp_path / f"{GOOD['dag_id']}.json").write_bytes(json.dumps(GOOD).encode())
        argv = ["validate", "--package-name", PACKAGE, "--dag-path", str(tmp_path)]
        result = subprocess.run([*CLI, *argv], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


class TestTimeZones:
    """A cron runs in its manifest's time zone (UTC when none is set): list and plan say which."""

    def test_plan_and_list_show_each_cron_with_its_time_zone(self, s3, bucket, examples_copy, capsys):
        """plan names a new DAG's cron and zone, and a changed one's when either changes; list names each."""
        folder = examples_copy / "reporting_seeder" / "airflow_dags"
        agency = folder / "reporting_seeder_refresh_agency.json"
        agency.write_text(json.dumps({**json.loads(agency.read_text()), "schedule": "0 2 * * *"}))
        plan = ["plan", *target(bucket, "reporting_seeder"), "--dag-path", str(folder)]
        out = cli_main(capsys, *plan)[1]
        assert "  + reporting_seeder_refresh_agency\n      schedule: 0 2 * * * (UTC)\n" in out
        assert "  + reporting_seeder_refresh_all\n      schedule: @daily (Europe/Berlin)\n" in out
        _publish(capsys, bucket, folder)
        listing = ["list", *target(bucket, "reporting_seeder")]
        out = cli_main(capsys, *listing)[1]
        assert "  reporting_seeder_refresh_agency  0 2 * * * (UTC)  " in out
        assert "  reporting_seeder_refresh_all  @daily (Europe/Berlin)  " in out
        dags = json.loads(cli_main(capsys, *listing, "--output", "json")[1])["dags"]
        assert [(d["schedule"], d["timezone"]) for d in dags] == [
            ("0 2 * * *", "UTC"),
            ("@daily", "Europe/Berlin"),
        ]
        everything = folder / "reporting_seeder_refresh_all.json"
        everything.write_text(
            json.dumps({**json.loads(everything.read_text()), "timezone": "America/New_York"})
        )
        agency.write_text(json.dumps({**json.loads(agency.read_text()), "description": "per agency"}))
        out = cli_main(capsys, *plan)[1]
        assert '      /timezone: "Europe/Berlin" → "America/New_York"\n' in out
        assert "      schedule: @daily (America/New_York)\n" in out
        assert "(UTC)" not in out  # the other DAG's schedule did not change: no line for it
        data = json.loads(cli_main(capsys, *plan, "--output", "json")[1])
        assert [d.get("timezone") for d in data["dags"]] == [None, "America/New_York"]

    def test_a_record_without_time_zones_stays_current_and_lists_the_cron_alone(
        self, s3, bucket, examples_copy, capsys
    ):
        """A record written before summaries named the zone: republishing the same files writes nothing,
        list shows the cron alone; the next real change records the zones."""
        folder = examples_copy / "reporting_seeder" / "airflow_dags"
        first = _publish(capsys, bucket, folder)
        client = boto3.client("s3", endpoint_url=s3.upstream)
        key = f"{ENV}/reporting_seeder/metadata.json"
        record = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        for summary in record["dags"].values():
            del summary["timezone"]
        client.put_object(Bucket=bucket, Key=key, Body=json.dumps(record).encode())
        s3.clear()
        again = _publish(capsys, bucket, folder)
        assert again["changed"] is False and again["release_id"] == first["release_id"]
        assert s3.count("PUT") == 0
        listing = ["list", *target(bucket, "reporting_seeder")]
        assert "  reporting_seeder_refresh_all  @daily  " in cli_main(capsys, *listing)[1]
        dags = json.loads(cli_main(capsys, *listing, "--output", "json")[1])["dags"]
        assert [d["timezone"] for d in dags] == [None, None]
        _edit(folder / "reporting_seeder_refresh_all.json", retries=4)
        assert _publish(capsys, bucket, folder)["changed"] is True
        assert "  reporting_seeder_refresh_all  @daily (Europe/Berlin)  " in cli_main(capsys, *listing)[1]


class TestList:
    def test_check_fails_on_inconsistency(self, s3, bucket, examples_copy, capsys):
        """list --check exits 0 when S3 matches the record and 1 when a readable copy is gone."""
        folder = examples_copy / "reporting_seeder" / "airflow_dags"
        _publish(capsys, bucket, folder)
        base = ["list", *target(bucket, "reporting_seeder"), "--check"]
        assert cli_main(capsys, *base)[0] == 0
        boto3.client("s3", endpoint_url=s3.upstream).delete_object(
            Bucket=bucket, Key=f"{ENV}/reporting_seeder/dags/reporting_seeder_refresh_all.py"
        )
        code, out, err = cli_main(capsys, *base)
        assert code == 1 and "missing: dags/reporting_seeder_refresh_all.py" in out
        assert "does not match the release record of reporting_seeder" in err
        code, out, _ = cli_main(capsys, *base, "--output", "json", "--quiet")
        assert code == 1 and json.loads(out)["ok"] is False and json.loads(out)["missing"]
        assert cli_main(capsys, *base[:-1])[0] == 0  # without --check: a report, exit 0

    def test_unknown_package_or_environment_lists_what_exists(self, s3, bucket, examples_copy, capsys):
        """A mistyped package is an error naming the packages there; a mistyped environment names environments."""
        _publish(capsys, bucket, examples_copy / "reporting_seeder" / "airflow_dags")
        code, out, err = cli_main(capsys, "list", *target(bucket, "reporting_seedr"))
        assert code == 2 and out == ""
        assert (
            err.strip()
            == f"error: no package 'reporting_seedr' in s3://{bucket}/dev/; packages there: reporting_seeder"
        )
        code, _, err = cli_main(capsys, "list", "--bucket", bucket, "--environment", "prd", "--all-packages")
        assert code == 2 and f"no packages in s3://{bucket}/prd/; environments in s3://{bucket}/: dev" in err

    def test_history_details_order_and_rollback_to_previous(self, s3, bucket, examples_copy, capsys):
        """--history: newest first in text and JSON, with version, git sha, publisher, DAG count, rollbacks marked."""
        folder = examples_copy / "reporting_seeder" / "airflow_dags"
        first = _publish(
            capsys,
            bucket,
            folder,
            "--package-version",
            "1.0.0",
            "--git-sha",
            "a" * 40,
            "--published-by",
            "alice",
        )
        _edit(folder / "reporting_seeder_refresh_all.json", retries=5)
        second = _publish(capsys, bucket, folder, "--package-version", "1.1.0", "--published-by", "bob")
        rollback = ["rollback", *target(bucket, "reporting_seeder"), "--to", "previous"]
        code, out, err = cli_main(capsys, *rollback)
        assert (
            code == 0 and "dry run: pass --yes to roll back" in err and "/tasks/0/retries: 5 → (unset)" in out
        )
        code, out, err = cli_main(capsys, *rollback, "--yes", "--output", "json", "--published-by", "carol")
        assert code == 0, err
        third = json.loads(out)
        code, out, _ = cli_main(
            capsys, "list", *target(bucket, "reporting_seeder"), "--history", "--output", "json"
        )
        history = json.loads(out)["history"]
        assert [h["release_id"] for h in history] == [
            third["release_id"],
            second["release_id"],
            first["release_id"],
        ]
        assert history[0]["rollback_of"] == first["release_id"] and history[0]["current"] is True
        assert history[1]["rollback_of"] is None and history[1]["package_version"] == "1.1.0"
        assert history[2]["git_sha"] == "a" * 40 and history[2]["dags"] == 2
        assert history[2]["publisher"].startswith("dagfactory-s3 ")
        assert [h["published_by"] for h in history] == ["carol", "bob", "alice"]
        text = cli_main(capsys, "list", *target(bucket, "reporting_seeder"), "--history")[1]
        ids = re.findall(r"^    (\S+)  ", text, re.M)
        assert ids == [h["release_id"] for h in history]
        assert (
            f"(rollback to {first['release_id']}, current)" in text
            and "version 1.0.0  git aaaaaaaaaaaa  by alice  dagfactory-s3 " in text
        )
        assert ", by carol\n" in text.splitlines(keepends=True)[0]

    def test_history_of_a_record_without_published_by(self, s3, bucket, examples_copy, capsys):
        """A record (and history) written before published_by existed lists it as '-' (JSON: null)."""
        folder = examples_copy / "reporting_seeder" / "airflow_dags"
        _publish(capsys, bucket, folder)
        _edit(folder / "reporting_seeder_refresh_all.json", retries=5)
        _publish(capsys, bucket, folder)
        direct = boto3.client("s3", endpoint_url=s3.upstream)
        key = f"{ENV}/reporting_seeder/metadata.json"
        doc = json.loads(direct.get_object(Bucket=bucket, Key=key)["Body"].read())
        for entry in (doc, *doc["history"]):
            assert entry.pop("published_by")
        direct.put_object(Bucket=bucket, Key=key, Body=json.dumps(doc).encode())
        base = ["list", *target(bucket, "reporting_seeder"), "--history"]
        code, out, err = cli_main(capsys, *base, "--output", "json", "--check")
        assert code == 0, err
        data = json.loads(out)
        assert data["published_by"] is None and [h["published_by"] for h in data["history"]] == [None, None]
        text = cli_main(capsys, *base)[1]
        assert text.count("  by -  dagfactory-s3 ") == 2 and ", by " not in text


class TestFlags:
    def test_destructive_commands_are_dry_without_yes(self, s3, bucket, examples_copy, capsys):
        """rollback and retire without --yes print the plan and write nothing: one confirm model."""
        folder = examples_copy / "reporting_seeder" / "airflow_dags"
        first = _publish(capsys, bucket, folder)
        _edit(folder / "reporting_seeder_refresh_all.json", retries=5)
        _publish(capsys, bucket, folder)
        writes = (s3.count("PUT"), s3.count("DELETE"))
        for argv in (["rollback", "--to", first["release_id"]], ["retire"]):
            code, _, err = cli_main(capsys, argv[0], *target(bucket, "reporting_seeder"), *argv[1:])
            assert code == 0 and "dry run: pass --yes" in err
        assert (s3.count("PUT"), s3.count("DELETE")) == writes

    def test_publish_summary_wording(self, s3, bucket, examples_copy, capsys):
        """After a publish: 'added 2', no plan wording, no 'None' anywhere."""
        folder = examples_copy / "reporting_seeder" / "airflow_dags"
        code, out, _ = cli_main(
            capsys, "publish", *target(bucket, "reporting_seeder"), "--dag-path", str(folder)
        )
        assert code == 0 and "(first release)" in out
        assert "  added 2, changed 0, deleted 0, unchanged 0" in out
        assert "None" not in out and "to add" not in out

    @pytest.mark.parametrize("where", ["before", "after"])
    def test_debug_and_quiet_anywhere_on_the_line(self, tmp_path, where):
        """--debug shows the traceback and --quiet silences warnings, before or after the subcommand."""
        path = tmp_path / "nope.json"
        argv = ["validate", "--dag-file", str(path)]
        argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
        result = run(*argv)
        assert result.returncode == 2 and "Traceback" in result.stderr
        folder = tmp_path / "dags"
        folder.mkdir()
        (folder / f"{GOOD['dag_id']}.json").write_text(json.dumps(GOOD))
        argv = ["validate", "--dag-path", str(folder)]
        argv = ["--quiet", *argv] if where == "before" else [*argv, "-q"]
        quiet = run(*argv)
        tasks = len(GOOD.get("tasks", [])) or 1
        plural = "s" if tasks != 1 else ""
        assert quiet.returncode == 0 and quiet.stderr == ""  # -q: one summary line, counts in their form
        assert quiet.stdout == f"ok: 1 DAG, {tasks} task{plural} in {folder}\n"
        full = run("validate", "--dag-path", str(folder)).stdout
        assert full.startswith("ok ") and full.rstrip().endswith(f", {tasks} task{plural})")
        assert "warning: " in run("validate", "--dag-path", str(folder)).stderr

    def test_output_is_a_format_everywhere(self):
        """Every command with --output takes text|json (render: yaml|json); none takes a file."""
        parser = cli.build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for name, p in sub.choices.items():
            for action in p._actions:
                if "--output" in action.option_strings and name not in ("generate", "render"):
                    assert action.choices == ("text", "json"), name


class TestHelp:
    def test_every_command_has_a_summary_and_examples(self):
        """`--help` of every subcommand: a one-line description, and 1-3 runnable examples of itself."""
        parser = cli.build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        summaries = {a.dest: a.help for a in sub._choices_actions}
        for name in sub.choices:
            result = run(name, "--help")
            assert result.returncode == 0
            assert summaries[name] and "\n" not in summaries[name], name
            assert summaries[name] in result.stdout
            examples = result.stdout.split("examples:\n", 1)[1]
            commands = re.findall(rf"^  airflow-dag-publisher {name}\b", examples, re.M)
            assert 1 <= len(commands) <= 3, (name, examples)
            assert "--debug" in result.stdout and "--quiet" in result.stdout

    def test_env_twins_are_shown_as_optional(self):
        """Settings with an environment twin are optional flags shown as [env: X, default: Y], as in the sidecar."""
        help_text = " ".join(run("publish", "--help").stdout.split())
        assert "[--bucket BUCKET]" in help_text and "[--environment ENVIRONMENT]" in help_text
        assert "[env: DAG_BUCKET, default: none]" in help_text
        assert "[env: DAG_PACKAGE_NAME, default: none]" in help_text
        env = {
            k: v for k, v in os.environ.items() if k not in ("DAG_BUCKET", "ENVIRONMENT", "DAG_PACKAGE_NAME")
        }
        result = subprocess.run(
            [*CLI, "list", "--environment", "dev"], env=env, capture_output=True, text=True
        )
        assert result.returncode == 2 and result.stderr == "error: --bucket is required (or set DAG_BUCKET)\n"
        assert "concurrent S3 requests [default: 8]" in help_text


def _many_dags(folder, n: int) -> None:
    folder.mkdir()
    for i in range(n):
        doc = {**GOOD, "dag_id": f"{PACKAGE}_d{i:03d}", "description": "x" * 2000}
        (folder / f"{doc['dag_id']}.json").write_text(json.dumps(doc))
        (folder / f"{doc['dag_id']}.py").write_bytes(stub.render(f"{doc['dag_id']}.json"))


def on_pty(argv: list[str], env: dict[str, str]) -> tuple[int, bytes, str]:
    """Run the CLI with stderr on a pseudo-terminal (stdout a pipe); returns code, stdout, terminal text."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([*CLI, *argv], stdout=subprocess.PIPE, stderr=secondary, env=env)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # EIO: the child closed the pty
            break
        if not chunk:
            break
        chunks.append(chunk)
    out, _ = proc.communicate(timeout=120)
    os.close(primary)
    return proc.returncode, out, b"".join(chunks).decode()


class TestProgress:
    def test_a_terminal_gets_one_updating_line(self, s3, bucket, tmp_path):
        """On a TTY (a pty), publish and plan rewrite one progress line (count, bytes, rate) and end it."""
        folder = tmp_path / "dags"
        _many_dags(folder, 40)
        code, out, err = on_pty(["publish", *target(bucket), "--dag-path", str(folder)], aws_env(s3.url))
        assert code == 0, err
        assert "\r\x1b[Kuploading " in err
        final = err.rsplit("\r\x1b[K", 1)[1]
        assert re.fullmatch(r"uploading 40/40 · \d+\.\d KiB · \d+/s\r?\n", final), repr(final)
        # no platform policy, and the first publish of the environment: each says so, then the
        # progress: one line, rewritten in place
        policy, first, progress = err.split("\n", 2)
        assert policy.startswith(NO_POLICY) and "holds no package yet" in first
        assert progress.count("\n") == 1
        assert b"added 40" in out
        for p in sorted(folder.glob("*.json")):
            p.write_text(json.dumps({**json.loads(p.read_text()), "description": "changed"}))
        code, out, err = on_pty(["plan", *target(bucket), "--dag-path", str(folder)], aws_env(s3.url))
        assert code == 0, err
        assert re.fullmatch(
            r"(\r\x1b\[Kreading \d+/40 [^\r\n]*)+\r\x1b\[Kreading 40/40 [^\r\n]*\r?\n",
            _without_policy_warning(err),
        ), repr(err)
        assert b"Plan: 0 to add, 40 to change" in out

    def test_not_a_terminal_is_line_oriented(self, s3, bucket, tmp_path):
        """Without a TTY: a start line and an end line, no carriage returns; --quiet and json: no progress."""
        folder = tmp_path / "dags"
        _many_dags(folder, 40)
        result = subprocess.run(
            [*CLI, "publish", *target(bucket), "--dag-path", str(folder)],
            capture_output=True,
            text=True,
            env=aws_env(s3.url),
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "\r" not in result.stderr
        lines = [line for line in result.stderr.splitlines() if line.startswith("uploading")]
        assert lines[0] == "uploading 40 objects" and lines[1].startswith("uploading 40/40 · ")
        assert len(lines) == 2
        _edit_all = [(p, json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]
        for p, doc in _edit_all:
            p.write_text(json.dumps({**doc, "description": "y" * 2000}))
        quiet = subprocess.run(
            [*CLI, "publish", *target(bucket), "--dag-path", str(folder), "--quiet", "--output", "json"],
            capture_output=True,
            text=True,
            env=aws_env(s3.url),
            timeout=120,
        )
        assert (
            quiet.returncode == 0
            and quiet.stderr == ""
            and json.loads(quiet.stdout)["summary"]["change"] == 40
        )
