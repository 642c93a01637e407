"""The `airflow-dag-publisher` local commands, run as a user runs them: a subprocess."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from dagfactory_s3 import stub

from bad_inputs import CASES, PACKAGE
from conftest import EXAMPLES, example_manifests

CLI = [sys.executable, "-m", "dagfactory_s3.publisher.cli"]


def run(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


class TestGenerate:
    def test_seed_command_writes_manifest_and_stub(self, tmp_path):
        """The seed's generate flags write x.json then the canonical x.py; the result validates."""
        out = tmp_path / "dag.py"
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
            str(out),
            "--start-date",
            "2024-01-01",
            "--schedule",
            "@daily",
        )
        assert result.returncode == 0, result.stderr
        manifest = json.loads((tmp_path / "dag.json").read_text())
        assert manifest["job"] == {
            "name": "example_job",
            "image": "123.dkr.ecr.us-east-1.amazonaws.com/pp:v1.0.0",
        }
        assert manifest["start_date"] == "2024-01-01" and manifest["schedule"] == "@daily"
        assert out.read_bytes() == stub.render("dag.json")
        assert (
            run("validate", "--package-name", "pipeline_processing", "--dag-file", str(out)).returncode == 0
        )

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
            "--output",
            str(tmp_path / "dag.py"),
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
            "--output",
            str(tmp_path / "pp_a.py"),
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

    @pytest.mark.parametrize(("case", "raw", "pointer", "text"), CASES, ids=[c[0] for c in CASES])
    def test_bad_manifest_exit_code_and_message(self, tmp_path, case, raw, pointer, text):
        """Each bad input exits 1 and prints `file: pointer: reason` lines, no traceback."""
        path = tmp_path / f"{case}.json"
        path.write_bytes(raw)
        result = run("validate", "--package-name", PACKAGE, "--dag-file", str(path))
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert any(
            line.startswith(f"{path}: {pointer}: ") and text in line for line in result.stderr.splitlines()
        ), result.stderr

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

    @pytest.mark.parametrize("path", example_manifests(), ids=lambda p: p.name)
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

    def test_invalid_affinity_is_reported_not_dropped(self, tmp_path):
        """An affinity the Kubernetes client would silently drop fails with its pointer instead."""
        doc = json.loads(
            (EXAMPLES / "reporting_seeder/airflow_dags/reporting_seeder_refresh_agency.json").read_text()
        )
        doc["job"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": "x"
        }
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
