"""A mapped task really expands: one DagRun of the example reporting_seeder_agency_rebuild through
Airflow's own scheduler and task runner, on a real SQLite metadata DB, with no cluster.

The real ``airflow dag-processor`` writes the serialized DAG; tests/airflow_run.py then triggers a run
for the 04:30 slot of 2024-03-05 and drives it to the end, wave by wave, with Airflow's own scheduler
functions and task runner (its docstring lists every step). Not run: the operator's ``execute`` past
building the pod (creating it needs a cluster); list_agencies' return value is given instead, and
pushed by the task runner as it pushes any task's result.
What is asserted is read back from Airflow's own tables (task_instance, task_map, xcom,
rendered_task_instance_fields) and from the pod each task instance's rendered operator builds.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("airflow", reason="needs the [airflow] extra")
pytest.importorskip("kubernetes_validate")

import kubernetes_validate

from dagfactory_s3 import k8s, manifest

from airflow_env import dags_folder_with_examples, migrate, process_once, run_dag
from conftest import REBUILD

pytestmark = [pytest.mark.airflow]

MANIFEST = REBUILD
DAG_ID = "reporting_seeder_agency_rebuild"
LOGICAL_DATE = "2024-03-05T04:30:00+00:00"  # the schedule's ("30 4 * * *") slot that day
RUN_ID = f"manual__{LOGICAL_DATE}"
DS = "2024-03-05"
DATA_INTERVAL_START = "2024-03-05 04:30:00+00:00"
STATIC = ["north", "south", "east"]  # extract's arguments and verify's AGENCY, as in the manifest
# What list_agencies' pod returns: four agencies, not the three of the static lists, so the count of
# rebuild's task instances can only come from this value. The last item carries a template: a value
# from an XCom reaches the pod as it is, never rendered (Airflow renders only what the DAG file wrote).
AGENCIES = [["--agency", name] for name in ("north", "south", "east")] + [["--agency", "west", "{{ ds }}"]]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The example alone in a dags folder, parsed by the real dag-processor, then one run of it."""
    root = tmp_path_factory.mktemp("mapping")
    home, dags = root / "home", root / "dags"
    home.mkdir()
    dags_folder_with_examples(dags, [MANIFEST])
    migrate(home, dags)
    process_once(home, dags)
    return run_dag(home, dags, DAG_ID, LOGICAL_DATE, {"list_agencies": AGENCIES})


def _indexes(rows, task_id):
    return [row[1] for row in rows if row[0] == task_id]


def _env(env_vars) -> dict[str, str]:
    return {e["name"]: e["value"] for e in env_vars}


def test_static_lists_expand_when_the_run_is_created(run):
    """Creating the DagRun (verify_integrity) gives extract and verify one task instance per list item;
    rebuild, mapped over an XCom nobody has pushed yet, has only its placeholder (map index -1)."""
    assert run["dag_run"]["logical_date"] == LOGICAL_DATE
    created = run["created"]
    assert _indexes(created, "extract") == [0, 1, 2]
    assert _indexes(created, "verify") == [0, 1, 2]
    assert _indexes(created, "rebuild") == [-1]
    assert _indexes(created, "list_agencies") == _indexes(created, "cleanup") == [-1]


def test_xcom_mapped_task_expands_to_the_pushed_length(run):
    """list_agencies' result is recorded as Airflow records it (an XCom and a TaskMap row of its
    length); once extract is done the scheduler expands rebuild to exactly that many task instances."""
    assert run["xcom"] == [["list_agencies", -1, "return_value", AGENCIES]]
    assert run["task_map"] == [["list_agencies", -1, len(AGENCIES)]]
    assert _indexes(run["tis"], "rebuild") == [0, 1, 2, 3]
    assert {state for _task, _index, state in run["tis"]} == {"success"}
    assert len(run["tis"]) == 1 + 3 + 4 + 3 + 1
    assert run["dag_run"]["state"] == "success"


def test_scheduler_queues_in_dependency_order_within_the_manifests_limits(run):
    """The scheduler queues each wave after the one it depends on, and extract's
    max_active_tis_per_dagrun (2) splits its three instances; rebuild's (4) lets all four go at once."""
    assert run["waves"] == [
        [["list_agencies", -1]],
        [["extract", 0], ["extract", 1]],
        [["extract", 2]],
        [["rebuild", 0], ["rebuild", 1], ["rebuild", 2], ["rebuild", 3]],
        [["verify", 0], ["verify", 1], ["verify", 2]],
        [["cleanup", -1]],
    ]


def test_each_mapped_task_instance_renders_its_item_and_the_run(run):
    """Airflow's record of each task instance's rendered fields holds its own item (a list item, or
    the XCom's item for rebuild, verbatim) and this run's dates: {{ data_interval_start }} in extract's
    command, {{ ds }} in every RUN_DATE, {{ run_id }} in cleanup's command."""
    rendered = run["rendered"]
    assert len(rendered) == len(run["tis"])
    for i, agency in enumerate(STATIC):
        fields = rendered[f"extract/{i}"]
        assert fields["arguments"] == ["--agency", agency]
        assert fields["cmds"] == ["reporting-seeder", "extract", "--since", DATA_INTERVAL_START]
        assert _env(fields["env_vars"]) == {"REPORTING_ENV": "dev", "RUN_DATE": DS}
        fields = rendered[f"verify/{i}"]
        assert fields["arguments"] == []
        assert _env(fields["env_vars"]) == {"REPORTING_ENV": "dev", "RUN_DATE": DS, "AGENCY": agency}
    for i, arguments in enumerate(AGENCIES):
        fields = rendered[f"rebuild/{i}"]
        assert fields["arguments"] == arguments
        assert fields["cmds"] == ["reporting-seeder", "rebuild"]
        assert _env(fields["env_vars"]) == {"REPORTING_ENV": "dev", "RUN_DATE": DS}
    assert rendered["list_agencies/-1"]["cmds"][2:4] == ["--date", DS]
    assert rendered["cleanup/-1"]["cmds"] == ["reporting-seeder", "cleanup", "--run", RUN_ID]


def test_each_mapped_task_instance_builds_a_valid_pod_of_its_own(run):
    """The pod each task instance's rendered operator builds carries its item, the run's date, its map
    index and run, and passes kubernetes-validate (strict) and the API server's rules."""
    version = kubernetes_validate.utils.latest_version()
    expected = {
        **{f"extract/{i}": (["--agency", a], {}) for i, a in enumerate(STATIC)},
        **{f"rebuild/{i}": (args, {}) for i, args in enumerate(AGENCIES)},
        **{f"verify/{i}": ([], {"AGENCY": a}) for i, a in enumerate(STATIC)},
    }
    assert sorted(run["pods"]) == sorted([*expected, "list_agencies/-1", "cleanup/-1"])
    for key, pod in run["pods"].items():
        kubernetes_validate.validate(pod, version, strict=True)
        assert k8s.pod_problems(pod) == []
        task_id, index = key.split("/")
        labels = pod["metadata"]["labels"]
        assert labels["dagfactory-s3/task-id"] == labels["task_id"] == task_id
        assert labels.get("map_index", "-1") == index  # Airflow labels only mapped instances
        assert labels["run_id"].startswith("manual__2024-03-05T0430")
        if key in expected:
            container = pod["spec"]["containers"][0]
            args, env = expected[key]
            assert container["args"] == args
            assert _env(container["env"]) == {"REPORTING_ENV": "dev", "RUN_DATE": DS, **env}


def _instances(name: str) -> list[str]:
    """The map indexes a name `render` prints stands for: task[i] is i, task[*] every one, task -1."""
    task_id, _, index = name.partition("[")
    if not index:
        return [f"{task_id}/-1"]
    if index == "*]":
        return [f"{task_id}/{i}" for i in range(len(AGENCIES))]
    return [f"{task_id}/{index[:-1]}"]


def test_render_shows_the_pod_airflow_builds_for_each_map_index(run):
    """`render`'s pod for task[i] is the pod Airflow builds for map index i once the run's values fill
    its templates (same spec; Airflow adds a name suffix and its own labels); rebuild[*], mapped over an
    XCom, is every instance's pod but the arguments."""
    from dagfactory_s3 import factory

    m = manifest.parse(MANIFEST.read_bytes(), file=MANIFEST.name)
    text = json.dumps({name: pod for _task, name, pod in factory.render_pods(m)})
    for template, value in (
        ("{{ ds }}", DS),
        ("{{ data_interval_start }}", DATA_INTERVAL_START),
        ("{{ run_id }}", RUN_ID),
    ):
        text = text.replace(template, value)
    shown = json.loads(text)
    assert sorted(key for name in shown for key in _instances(name)) == sorted(run["pods"])
    for name, pod in shown.items():
        for key in _instances(name):
            real = run["pods"][key]
            if name.endswith("[*]"):
                real = json.loads(json.dumps(real))
                real["spec"]["containers"][0]["args"] = pod["spec"]["containers"][0]["args"]
            assert real["spec"] == pod["spec"], key
            assert real["metadata"]["name"].rsplit("-", 1)[0] == pod["metadata"]["name"]
            assert pod["metadata"]["labels"].items() <= real["metadata"]["labels"].items()
