"""`airflow-dag-publisher convert`: hand-written KubernetesPodOperator DAG files in, proven manifests out.

The real CLI in a subprocess, loading real files with real Airflow (its DagBag, in the loader's own
subprocess) and checking each converted stub built by the real factory. To stay inside the suite's
budget, the cases of tests/convert_cases/ load in one run whose result many tests read.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import corpus_summary
import pytest

from dagfactory_s3 import manifest as manifests
from dagfactory_s3 import stub
from dagfactory_s3.publisher import cli

from conftest import ROOT

CLI = [sys.executable, "-m", "dagfactory_s3.publisher.cli", "convert"]
CASES = ROOT / "tests" / "convert_cases"
CORPUS = ROOT / "tests" / "corpus" / "convert"
PACKAGE = "legacy"

pytestmark = pytest.mark.airflow


def convert(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every case file converted in one run (JSON output), from an empty working directory."""
    root = tmp_path_factory.mktemp("convert")
    cwd, out = root / "cwd", root / "out"
    cwd.mkdir()
    before = _tree(CASES)
    done = convert(
        "--dag-folder", str(CASES), "--package-name", PACKAGE, "--out-dir", str(out),
        "--timeout", "3", "--output", "json", cwd=cwd,
    )  # fmt: skip
    return {
        "result": done,
        "data": json.loads(done.stdout),
        "out": out,
        "cwd": cwd,
        "cases_untouched": _tree(CASES) == before,
    }


def _file(cases: dict, name: str) -> dict:
    return next(f for f in cases["data"]["files"] if Path(f["file"]).name == name)


def _dag(cases: dict, file: str, dag_id: str) -> dict:
    return next(d for d in _file(cases, file)["dags"] if d["dag_id"] == dag_id)


def _manifest(cases: dict, dag_id: str) -> dict:
    return json.loads((cases["out"] / f"{dag_id}.json").read_text())


# -- what is written ---------------------------------------------------------------------------


def test_some_refused_exits_1_and_json_says_why(cases):
    """A run with refusals exits 1; --output json is one document with every file and DAG."""
    assert cases["result"].returncode == 1, cases["result"].stderr
    data = cases["data"]
    assert (
        data["ok"] is False and data["converted"] == 7 and data["refused"] == 12
    )  # 8 DAGs refused, 4 files that do not load
    names = sorted(Path(f["file"]).name for f in data["files"])
    assert names == sorted(p.name for p in CASES.glob("*.py"))


def test_writes_manifest_and_canonical_stub_for_each_converted_dag(cases):
    """Each converted DAG gets <dag_id>.json, valid for the project's own checks, and its canonical stub."""
    converted = (
        "exporter",
        "warehouse_nightly",
        "reports_north",
        "reports_south",
        "on_orders",
        "every_six_hours",
        "nightly_intervals",
    )
    written = sorted(p.name for p in cases["out"].iterdir())
    assert written == sorted(f"legacy_{name}.{ext}" for name in converted for ext in ("json", "py"))
    for path in cases["out"].glob("*.json"):
        manifests.load(path, package=PACKAGE, source=True)  # what `validate` runs
        assert path.with_suffix(".py").read_bytes() == stub.render(path.name)


def test_nothing_is_written_outside_out_dir(cases):
    """The working directory stays empty, the input folder unchanged (no __pycache__), no staging left."""
    assert list(cases["cwd"].iterdir()) == []
    assert cases["cases_untouched"]
    assert not [p for p in cases["out"].iterdir() if p.name.startswith(".")]


# -- Airflow 2 files ---------------------------------------------------------------------------


def test_airflow2_file_loads_through_the_compatibility_layer(cases):
    """Old module paths, days_ago, Volume/VolumeMount, resources={...} and is_delete_operator_pod are
    translated, and the file says which translations it needed."""
    translations = _file(cases, "airflow2_nightly.py")["translations"]
    for expected in (
        "import airflow.contrib.operators.kubernetes_pod_operator -> airflow.providers.cncf.kubernetes.operators.pod",
        "import airflow.operators.dummy_operator -> compatibility shim",
        "Volume(name, configs) -> kubernetes V1Volume",
        "KubernetesPodOperator(resources={...}) -> container_resources",
        "KubernetesPodOperator(is_delete_operator_pod=True) -> on_finish_action",
    ):
        assert expected in translations
    assert any(t.startswith("days_ago(2) -> fixed ") for t in translations)


def test_schedule_interval_keeps_airflow2_data_intervals(cases):
    """`schedule_interval="0 3 * * *"` meant a data-interval timetable: the manifest says so."""
    manifest = _manifest(cases, "legacy_warehouse_nightly")
    assert manifest["schedule"] == {"cron": "0 3 * * *", "data_intervals": True}


def test_airflow2_pod_fields_are_converted(cases):
    """Secret env vars, the PVC volume and mount, resources, owner and default_args retries arrive; the
    EmptyOperator start is contracted away."""
    manifest = _manifest(cases, "legacy_warehouse_nightly")
    extract, load = manifest["tasks"]
    assert manifest["owner"] == "data-eng"
    assert extract["env"] == {"DB_PASSWORD": {"secret": {"key": "password", "name": "warehouse-db"}}}
    assert extract["volumes"] == [
        {"name": "data", "persistent_volume_claim": {"claim_name": "warehouse-data"}}
    ]
    assert extract["volume_mounts"] == [{"mount_path": "/data", "name": "data", "read_only": True}]
    assert extract["resources"] == {
        "limits": {"memory": "1Gi"},
        "requests": {"memory": "512Mi", "cpu": "250m"},
    }
    assert (extract["retries"], extract["retry_delay"]) == (2, "10m")
    assert extract["arguments"] == ["--date", "{{ ds }}"]  # a template, never rendered
    assert "depends_on" not in extract and load["depends_on"] == ["extract"]
    assert load["execution_timeout"] == "1h"


# -- Airflow 3 files ---------------------------------------------------------------------------


def test_dags_built_in_a_loop_are_each_converted(cases):
    """A helper function called in a loop builds two DAGs: both are read from the DAG objects."""
    dags = [d["dag_id"] for d in _file(cases, "airflow3_reports.py")["dags"]]
    assert dags == ["reports_north", "reports_south"]
    assert _manifest(cases, "legacy_reports_south")["params"] == {
        "region": {"type": "string", "default": "south"}
    }


def test_groups_mapping_timezone_and_pod_settings_are_converted(cases):
    """Task group (ids without the prefix), expand over a list and over an XCom, the time zone, and the
    pod's env, ConfigMap, Secret env_from, volumes, affinity, tolerations, node selector, security
    contexts, init container, image pull settings and grace period, all proven equal."""
    manifest = _manifest(cases, "legacy_reports_north")
    assert (manifest["schedule"], manifest["timezone"], manifest["start_date"]) == (
        "30 6 * * 1-5",
        "Europe/Berlin",
        "2025-01-06",
    )
    tasks = {t["task_id"]: t for t in manifest["tasks"]}
    assert sorted(tasks) == ["extract", "per_table", "publish", "shard"]
    assert tasks["shard"]["group"] == "build"
    assert tasks["shard"]["expand"] == {"arguments": [["shard", "0"], ["shard", "1"], ["shard", "2"]]}
    assert tasks["per_table"]["expand"] == {"arguments": {"from_task": "extract"}}
    assert tasks["publish"]["depends_on"] == ["per_table", "shard"]  # through the EmptyOperator join
    assert tasks["publish"]["trigger_rule"] == "all_done"
    extract = tasks["extract"]
    assert extract["env"]["API_URL"] == {"config_map": {"key": "api_url", "name": "reports-config"}}
    assert extract["env_from"] == [{"secret": "reports-env"}]
    assert extract["node_selector"] == {"pool": "batch"}
    assert extract["tolerations"] == [
        {"effect": "NoSchedule", "key": "batch", "operator": "Equal", "value": "true"}
    ]
    assert extract["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert extract["startup_timeout"] == "5m" and extract["do_xcom_push"] is True
    assert extract["pod_security_context"] == {"fs_group": 1000, "run_as_non_root": True, "run_as_user": 1000}
    assert extract["security_context"] == {
        "allow_privilege_escalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert extract["init_containers"][0]["arguments"] == ["--host", "db"]
    assert (extract["image_pull_secrets"], extract["image_pull_policy"]) == (
        ["registry-creds"],
        "IfNotPresent",
    )
    assert extract["termination_grace_period"] == "1m"
    assert _dag(cases, "airflow3_reports.py", "reports_north")["differences"] == []


@pytest.mark.parametrize(
    ("dag_id", "schedule"),
    [
        ("on_orders", {"assets": ["s3://etl-data/orders", "s3://etl-data/refunds"], "require": "any"}),
        ("every_six_hours", {"every": "6h"}),
        ("nightly_intervals", {"cron": "0 2 * * *", "data_intervals": True}),
    ],
)
def test_airflow3_schedules_keep_their_timetable(cases, dag_id, schedule):
    """An asset condition, a timedelta (a trigger timetable) and a data-interval timetable object."""
    assert _manifest(cases, f"legacy_{dag_id}")["schedule"] == schedule


def test_custom_timetable_is_refused(cases):
    """A timetable the manifest has no schedule for is a refusal naming it."""
    dag = _dag(cases, "schedules.py", "on_events")
    assert dag["refusals"][0].startswith("DAG 'on_events': custom timetable EventsTimetable")


def test_pod_template_and_full_pod_spec_become_fields_and_pod_override(cases):
    """A pod_template_file's image and labels become manifest fields, the rest of its pod (dnsConfig, a
    sidecar, the container's ports) pod_override; so does a full_pod_spec's; both proven equal."""
    from_template, full_spec = _manifest(cases, "legacy_exporter")["tasks"]
    assert from_template["image"] == "registry.example.com/exporter:3.1.0"
    assert from_template["labels"] == {"app": "exporter"}
    override = from_template["pod_override"]["spec"]
    assert override["dnsConfig"] == {"options": [{"name": "ndots", "value": "2"}]}
    assert override["containers"] == [
        {"name": "base", "ports": [{"containerPort": 8080, "name": "metrics"}]},
        {"image": "registry.example.com/proxy:1.2.3", "name": "proxy"},
    ]
    assert full_spec["pod_override"] == {
        "spec": {"dnsPolicy": "Default", "containers": [{"name": "base", "workingDir": "/work"}]}
    }
    assert _dag(cases, "pod_template.py", "exporter")["differences"] == []


# -- refusals and bad files --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "dag_id", "reason"),
    [
        (
            "python_notify.py",
            "notify_after",
            "DAG 'notify_after': PythonOperator task 'notify': not a pod job",
        ),
        (
            "callback.py",
            "with_callback",
            "DAG 'with_callback' task 'job': on_failure_callback is Python: name a platform notifier instead (alerts)",
        ),
        (
            "refusals.py",
            "dag_callback",
            "DAG 'dag_callback': on_success_callback is Python: name a platform notifier instead (alerts)",
        ),
        (
            "refusals.py",
            "skips_on_exit",
            "DAG 'skips_on_exit' task 'job': KubernetesPodOperator field(s) with no manifest equivalent: "
            "skip_on_exit_code=[100]",
        ),
        (
            "refusals.py",
            "nested_groups",
            "DAG 'nested_groups' task 'outer.inner.job': nested task group 'outer.inner': the manifest has one "
            "level of groups",
        ),
        (
            "refusals.py",
            "any_of_join",
            "DAG 'any_of_join': EmptyOperator task 'join': trigger_rule one_success joins its upstream tasks in "
            "a way a dependency cannot express",
        ),
    ],
)
def test_refused_dag_names_dag_task_and_reason(cases, file, dag_id, reason):
    """A DAG the manifest cannot express is one line naming the DAG, the task and why (a setting with no
    manifest field is named); nothing is written for it."""
    dag = _dag(cases, file, dag_id)
    assert reason in dag["refusals"]
    assert "manifest" not in dag
    assert reason in cases["result"].stdout


@pytest.mark.parametrize(
    ("file", "error"),
    [
        ("raises.py", "RuntimeError: this DAG file is broken on purpose (line 3)"),
        ("missing_import.py", "ModuleNotFoundError: No module named 'company_internal_helpers' (line 5)"),
        ("sleeps.py", "DagBag import timeout"),
        ("loops.py", "DagBag import timeout"),
    ],
)
def test_bad_file_is_reported_with_its_error(cases, file, error):
    """A file that raises, imports something missing, sleeps or loops: its error, within the timeout."""
    entry = _file(cases, file)
    assert error in entry["error"] and entry["dags"] == []


def test_check_catches_what_the_mapper_cannot_see(cases):
    """A backoff multiplier of 3 becomes `retry_exponential_backoff: true`; loading the stub next to the
    original shows the difference, field by field, and the DAG is refused."""
    (dag,) = _file(cases, "backoff.py")["dags"]
    assert dag["refusals"] == [
        "DAG 'backoff_job' task 'job': fidelity check: retry_exponential_backoff: original 3.0, converted True"
    ]
    assert not (cases["out"] / "legacy_backoff_job.json").exists()


def test_text_output_and_exit_0_when_all_convert(tmp_path):
    """Text output: one line per converted DAG; exit 0. --no-check writes what the check would refuse."""
    files = ["--dag-file", str(CASES / "airflow2_nightly.py"), "--dag-file", str(CASES / "backoff.py")]
    done = convert(
        *files, "--package-name", PACKAGE, "--out-dir", str(tmp_path / "out"), "--no-check", cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        f"converted DAG 'backoff_job' -> {tmp_path / 'out' / 'legacy_backoff_job.json'} (1 task)"
        in done.stdout
    )
    assert done.stdout.rstrip().endswith("2 DAGs converted, 0 refusals, from 2 files")


def test_file_that_kills_the_loader_is_reported_alone(tmp_path):
    """A file that ends the loading process itself (os._exit) is reported with the exit code; the other
    files, loaded again one per process, are reported as usual."""
    (tmp_path / "exits.py").write_text('"""Ends the process."""\n\nimport os\n\nos._exit(3)\n')
    files = ["--dag-file", str(tmp_path / "exits.py"), "--dag-file", str(CASES / "callback.py")]
    done = convert(*files, "--package-name", PACKAGE, "--out-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 1
    assert f"{tmp_path / 'exits.py'}: cannot load: the loading process exited with code 3" in done.stdout
    assert "DAG 'with_callback' task 'job': on_failure_callback is Python" in done.stdout
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--package-name", PACKAGE, "--out-dir", "o"],
            "convert needs --dag-file FILE (repeatable) or --dag-folder DIR",
        ),
        (
            ["--dag-file", "missing.py", "--package-name", PACKAGE, "--out-dir", "o"],
            "missing.py: no such file",
        ),
        (["--dag-file", "x.py", "--package-name", "Bad-Name", "--out-dir", "o"], "Bad-Name"),
        (["--dag-file", "x.py", "--package-name", PACKAGE], "convert needs --out-dir DIR"),
    ],
)
def test_usage_errors_exit_2(tmp_path, monkeypatch, capsys, argv, message):
    """Bad flags are one line and exit 2, before anything is loaded or written."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.py").write_text("")
    assert cli.main(["convert", *argv]) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.py"]


def test_needs_the_airflow_extra(tmp_path, monkeypatch, capsys):
    """Without Airflow importable, convert says which extra to install (exit 2) and writes nothing."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "airflow", None)  # what Python does for a module that is not installed
    shutil.copy(CASES / "callback.py", tmp_path / "callback.py")
    argv = ["convert", "--dag-file", "callback.py", "--package-name", PACKAGE, "--out-dir", "out"]
    assert cli.main(argv) == 2
    assert "convert needs Airflow: pip install 'dagfactory-s3[airflow]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# -- the corpus of public DAG files ------------------------------------------------------------


def test_corpus_every_dag_is_converted_without_difference_or_refused_with_a_reason(tmp_path):
    """The public DAG files of tests/corpus/convert/ (docs/benchmarks.md): every file is reported, every
    DAG is converted with zero differences or refused with a reason, and at least 80 % of the DAGs made
    of KubernetesPodOperators (and EmptyOperator joins) convert with zero differences."""
    if not CORPUS.is_dir():
        pytest.skip("no corpus")
    out = tmp_path / "out"
    done = convert(
        "--dag-folder", str(CORPUS), "--package-name", "corpus", "--out-dir", str(out), "--timeout", "20",
        "--policy", str(CASES / "corpus_policy.json"), "--output", "json", cwd=tmp_path,
    )  # fmt: skip
    data = json.loads(done.stdout)
    assert len(data["files"]) == len(list(CORPUS.glob("*.py")))
    for file in data["files"]:
        for dag in file["dags"]:
            if "manifest" in dag:
                assert dag["differences"] == [] and Path(dag["manifest"]).exists()
            else:
                assert dag["refusals"], (file["file"], dag["dag_id"])
    written = {p.name for p in out.glob("*.json")}
    assert written == {Path(d["manifest"]).name for f in data["files"] for d in f["dags"] if "manifest" in d}
    numbers = corpus_summary.summary(data)
    assert numbers["pod_only_proven"] >= 0.8 * numbers["pod_only"], numbers


def test_an_out_dir_inside_the_dag_folder_is_not_read_as_sources(tmp_path: Path):
    """Converting a folder into a folder inside it (and so again and again), both given as relative
    paths: the stubs already there are outputs, not DAG files to convert; only the source file is
    loaded, and it converts."""
    src = tmp_path / "dags"
    src.mkdir()
    shutil.copy(CASES / "airflow2_nightly.py", src)
    out = src / "airflow_dags"
    args = (
        "--dag-folder",
        "dags",
        "--package-name",
        PACKAGE,
        "--out-dir",
        "dags/airflow_dags",
        "--output",
        "json",
    )
    first = convert(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert list(out.glob("*.py")), "the first run wrote stubs into the folder it converts"
    again = convert(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert [Path(f["file"]).name for f in json.loads(again.stdout)["files"]] == ["airflow2_nightly.py"]
