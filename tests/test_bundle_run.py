"""A DagRun keeps its release through Airflow's own scheduler loop and task runner (Airflow 3.3: the
task runner's start-up as tests/airflow_run.py drives it is 3.3's), with the versioned bundle."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("airflow", reason="needs the [airflow] extra")

from test_bundle import ENV, IMAGE, SEEDER, package_dir, publish

from airflow_env import db_rows, migrate, process_once, run_dag
from s3server import aws_env

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def test_a_run_keeps_its_release_through_airflows_scheduler_and_task_runner(s3, bucket, tmp_path):
    """R1 is published and parsed by the real dag-processor; a run starts and its first task runs on a
    worker; R2 (a new image) is published and parsed while the run is in progress; the run's other tasks
    and then a new run are scheduled and run. Airflow's own records say: the first run's bundle version
    is R1's and every one of its tasks rendered R1's image; the next run's are R2's.

    Scheduler and worker are Airflow's own code (tests/airflow_run.py lists each step): the
    SchedulerJobRunner's loop queues each task instance on the executor, and the worker side starts the
    task runner with the workload's bundle name and version (``initialize()`` at that version on a
    fresh disk of its own, then the parse of the stub). Not run: the pod (no cluster); the task ends
    after the operator built it.
    """
    home = tmp_path / "home"
    home.mkdir()
    unused = home / "unused-dags"
    config = [
        {
            "name": "etl",
            "classpath": "dagfactory_s3.bundle.S3ReleaseDagBundle",
            "kwargs": {"bucket": bucket, "environment": ENV},
        }
    ]
    settings = {
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(config),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "0",
        "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "0",  # else a DAG written <30 s ago stays
        **{k: v for k, v in aws_env(s3.url).items() if k.startswith("AWS_")},
    }
    processor = {**settings, "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(tmp_path / "processor")}
    worker = {**settings, "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(tmp_path / "worker")}
    migrate(home, unused)
    dag_id, day = "reporting_seeder_refresh_all", "2024-03-05T00:00:00+00:00"

    publish(bucket, package_dir(tmp_path, SEEDER), SEEDER)
    process_once(home, unused, **processor)
    first = run_dag(home, unused, dag_id, day, {}, "run_on_r1", "1", **worker)
    assert first["waves"] == [[["extract", -1]]] and first["dag_run"]["state"] == "running"

    publish(bucket, package_dir(tmp_path, SEEDER, "2.4.2"), SEEDER)
    process_once(home, unused, **processor)
    rest = run_dag(home, unused, dag_id, day, {}, "run_on_r1", **worker)  # the same run, resumed
    assert rest["waves"] == [[["refresh_tables", -1]], [["publish_summary", -1]]]
    assert rest["dag_run"]["state"] == "success"
    after = run_dag(home, unused, dag_id, "2024-03-06T00:00:00+00:00", {}, "run_on_r2", **worker)
    assert after["dag_run"]["state"] == "success"

    (v1, data1), (v2, data2) = db_rows(
        home,
        f"select bundle_version, version_data from dag_version where dag_id = '{dag_id}' order by version_number",
    )
    assert json.loads(data1)["releases"][SEEDER] != json.loads(data2)["releases"][SEEDER]
    runs = dict(db_rows(home, f"select run_id, bundle_version from dag_run where dag_id = '{dag_id}'"))
    assert runs == {"run_on_r1": v1, "run_on_r2": v2}
    rendered = db_rows(
        home,
        f"select run_id, task_id, rendered_fields from rendered_task_instance_fields where dag_id = '{dag_id}'",
    )
    images = {(run, task): json.loads(fields)["image"] for run, task, fields in rendered}
    tasks = ["extract", "refresh_tables", "publish_summary"]
    assert images == {
        **{("run_on_r1", task): IMAGE + "2.4.1" for task in tasks},
        **{("run_on_r2", task): IMAGE + "2.4.2" for task in tasks},
    }
    states = db_rows(home, f"select distinct state from task_instance where dag_id = '{dag_id}'")
    assert states == [("success",)]
    # The worker's fresh disk: both versions, each with the one manifest its tasks ran.
    for version in (v1, v2):
        dags = tmp_path / "worker" / "etl" / "versions" / version / SEEDER / "dags"
        assert sorted(p.name for p in dags.glob("*.json")) == [f"{dag_id}.json"]
