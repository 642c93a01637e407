"""The package itself: the wheel ships schema and stub template, and the base install has no Airflow."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import EXAMPLES, ROOT

# Modules that must import with Airflow absent: everything but the adapter and the DAG bundle.
_MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for p in (ROOT / "dagfactory_s3").rglob("*.py")
    if p.stem not in ("factory", "bundle")
)
AIRFLOW_FREE = [m for m in _MODULES if m != "dagfactory_s3.sync.observe"] + ["dagfactory_s3.sync.observe"]

_BLOCK_AIRFLOW = """
import importlib.abc, sys
class _NoAirflow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "airflow" or name.startswith("airflow."):
            raise ModuleNotFoundError("No module named 'airflow' (blocked by the test)")
sys.meta_path.insert(0, _NoAirflow())
"""


def test_airflow_free_modules_import_without_airflow():
    """Every module except the factory and the bundle imports with Airflow unimportable, and none loads it."""
    code = (
        _BLOCK_AIRFLOW
        + "".join(f"import {m}\n" for m in AIRFLOW_FREE)
        + ("assert not any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules)\n")
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(AIRFLOW_FREE) >= 25 and "dagfactory_s3.publisher.transaction" in AIRFLOW_FREE


def test_render_without_airflow_names_the_extra():
    """Without Airflow, render fails with one line naming the [render] extra."""
    code = _BLOCK_AIRFLOW + "from dagfactory_s3.publisher.cli import main; sys.exit(main(sys.argv[1:]))"
    manifest = EXAMPLES / "reporting_seeder/airflow_dags/reporting_seeder_refresh_all.json"
    result = subprocess.run(
        [sys.executable, "-c", code, "render", "--dag-file", str(manifest)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "pip install 'dagfactory-s3[render]'" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    return next(out.glob("dagfactory_s3-*.whl"))


def test_wheel_ships_schema_template_and_entry_points(wheel):
    """The wheel contains the JSON Schema, the stub template and both console scripts."""
    names = zipfile.ZipFile(wheel).namelist()
    assert "dagfactory_s3/schemas/job-manifest.v1.json" in names
    assert "dagfactory_s3/loader/stub.py.tmpl" in names
    entry_points = (
        zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    )
    assert "airflow-dag-publisher = dagfactory_s3.publisher.cli:main" in entry_points
    assert "airflow-dag-sync = dagfactory_s3.sync.main:main" in entry_points


def test_base_install_runs_the_publisher_without_airflow(wheel, tmp_path):
    """A fresh venv with only the base install validates, generates and answers both CLIs' --help;
    Airflow is not there."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-c",
            os.environ.get("COMPAT_CONSTRAINTS", str(ROOT / "constraints.txt")),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    assert subprocess.run([str(py), "-c", "import airflow"], capture_output=True).returncode != 0
    publisher = str(venv / "bin" / "airflow-dag-publisher")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for package in ("pipeline_processing", "reporting_seeder"):
        result = subprocess.run(
            [
                publisher,
                "validate",
                "--package-name",
                package,
                "--dag-path",
                str(EXAMPLES / package / "airflow_dags"),
                "--output",
                "json",
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["ok"] is True
    # The base install refuses what the Airflow image refuses: a template escape, an integer host flag,
    # another team's Secret (with the platform's policy), by the same code the factory runs at parse.
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    doc = json.loads(
        (EXAMPLES / "pipeline_processing/airflow_dags/pipeline_processing_example_job.json").read_text()
    )
    doc["job"]["arguments"] = ["{{ macros.uuid.os.popen('id').read() }}"]
    doc["job"]["pod_override"] = {"spec": {"hostNetwork": 1}}
    doc["job"]["env"]["DB_PASSWORD"] = {"secret": {"name": "reporting-db", "key": "password"}}
    (hostile / "pipeline_processing_example_job.json").write_text(json.dumps(doc))
    policy = ROOT / "deploy/airflow/dagfactory-policy.json"
    argv = [publisher, "validate", "--package-name", "pipeline_processing", "--dag-path", str(hostile)]
    result = subprocess.run([*argv, "--policy", str(policy)], capture_output=True, text=True, env=env)
    assert result.returncode == 1, result.stderr
    for pointer in (
        "/job/arguments/0",
        "/job/pod_override/spec/hostNetwork",
        "/job/env/DB_PASSWORD/secret/name",
    ):
        assert f"pipeline_processing_example_job.json: {pointer}: " in result.stderr, result.stderr
    result = subprocess.run(
        [
            publisher,
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
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "pp_a.json").exists() and (tmp_path / "pp_a.py").exists()
    # Both console scripts answer --help in the base install; the sidecar names its extra when run.
    for script in ("airflow-dag-publisher", "airflow-dag-sync"):
        result = subprocess.run(
            [str(venv / "bin" / script), "--help"], capture_output=True, text=True, env=env, timeout=60
        )
        assert result.returncode == 0 and result.stdout.startswith(f"usage: {script}"), result.stderr
    result = subprocess.run(
        [str(venv / "bin" / "airflow-dag-sync"), "--once"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2 and "pip install 'dagfactory-s3[sidecar]'" in result.stderr


def test_warm_imports_no_airflow_and_prepares_the_validator():
    """loader.warm() (for airflow_local_settings.py) loads the parse modules without Airflow."""
    code = _BLOCK_AIRFLOW + (
        "from dagfactory_s3.loader import warm\nwarm()\n"
        "from dagfactory_s3 import schema\n"
        "assert schema._validator.cache_info().currsize == 1\n"
        "assert 'dagfactory_s3.manifest' in sys.modules and 'kubernetes' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.airflow
@pytest.mark.compat
def test_airflow_extra_never_moves_the_installed_airflow(wheel, tmp_path):
    """`pip install <wheel>[airflow]` into this environment (each compat cell's pinned Airflow) would
    install nothing but dagfactory-s3 itself: the Airflow the image already has stays as it is."""
    from importlib.metadata import version

    installed = version("apache-airflow")
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--disable-pip-version-check",
            "--report",
            str(report),
            f"{wheel}[airflow]",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    would_install = {
        i["metadata"]["name"]: i["metadata"]["version"] for i in json.loads(report.read_text())["install"]
    }
    assert set(would_install) <= {"dagfactory-s3"}, (
        f"Airflow {installed} here, pip would install {would_install}"
    )


def test_every_compat_cell_has_its_pinned_constraints_file():
    """The matrix (constraints/compat.py) and constraints/*.txt match one to one, each file was generated
    from its cell's current requirements (a cap added to a cell without regenerating fails here), and
    each Airflow cell's file pins the Airflow minor its name promises and no dagfactory-s3."""
    spec = importlib.util.spec_from_file_location("compat", ROOT / "constraints" / "compat.py")
    compat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compat)
    files = {p.stem for p in (ROOT / "constraints").glob("*.txt")}
    assert files == {cell.name for cell in compat.CELLS}
    for cell in compat.CELLS:
        text = (ROOT / "constraints" / f"{cell.name}.txt").read_text()
        assert "# Resolved: " + " ".join(compat.requirements(cell)) in text.splitlines(), cell.name
        pins = dict(
            line.lower().split("==", 1) for line in text.splitlines() if line and not line.startswith("#")
        )
        assert "dagfactory-s3" not in pins
        if cell.airflow:
            assert pins["apache-airflow"].startswith(f"{cell.airflow}."), cell.name
            assert "apache-airflow-providers-cncf-kubernetes" in pins
        else:
            assert not any(name.startswith("apache-airflow") for name in pins), cell.name
