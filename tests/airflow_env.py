"""Helpers for tests that run real Airflow processes: an isolated AIRFLOW_HOME with our settings."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from dagfactory_s3 import stub

from timing import timed

ROOT = Path(__file__).resolve().parent.parent
PROBE = Path(__file__).resolve().parent / "airflow_probe.py"
RUN = Path(__file__).resolve().parent / "airflow_run.py"
AIRFLOW = str(Path(sys.executable).parent / "airflow")


def dag_bag(folder: Path | str) -> Any:
    """A DagBag over ``folder``, from wherever this Airflow minor keeps the class (examples are off in
    conftest: [core] load_examples=False, which every minor honours; 3.3 dropped ``include_examples``)."""
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow >= 3.2
    except ImportError:
        from airflow.models.dagbag import DagBag
    return DagBag(dag_folder=str(folder))


def airflow_env(home: Path, dags: Path, **extra: str) -> dict[str, str]:
    """Environment for an Airflow process with the settings docs/deploy.md recommends."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__DAG_PROCESSOR__DAG_VERSION_INFLATION_CHECK_LEVEL="error",
        AIRFLOW__DAG_PROCESSOR__FILE_PARSING_SORT_MODE="modified_time",
        AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="2",
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def dags_folder_with_examples(dest: Path, manifests: list[Path]) -> Path:
    """Copy manifests into ``dest`` and write their canonical stubs next to them."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in manifests:
        shutil.copy(path, dest / path.name)
        (dest / path.with_suffix(".py").name).write_bytes(stub.render(path.name))
    return dest


@timed("Airflow parse probe (fresh interpreter)")
def probe(dags: Path, home: Path, *, cwd: Path | None = None, **env: str) -> dict:
    """Parse ``dags`` in a fresh interpreter like the dag-processor does; hashes and import errors."""
    out = home / "probe.json"
    subprocess.run(
        [sys.executable, str(PROBE), str(dags), str(out)],
        env=airflow_env(home, dags, **env),
        cwd=cwd or home,
        check=True,
        capture_output=True,
    )
    return json.loads(out.read_text())


@timed("Airflow DAG run (scheduler + task runner)")
def run_dag(
    home: Path,
    dags: Path,
    dag_id: str,
    logical_date: str,
    xcom: dict[str, Any],
    *run: str,
    **env: str,
) -> dict:
    """One DagRun of ``dag_id`` through Airflow's scheduler and task runner (tests/airflow_run.py), in a
    fresh interpreter on the migrated DB in ``home``; ``xcom``: what each do_xcom_push task returns;
    ``run``: its optional ``run_id`` and ``waves`` arguments; ``env``: more settings."""
    (home / "xcom.json").write_text(json.dumps(xcom))
    out = home / "run.json"
    argv = [sys.executable, str(RUN), dag_id, logical_date, str(home / "xcom.json"), str(out), *run]
    run_airflow(home, dags, *argv, **env)
    return json.loads(out.read_text())


def run_airflow(home: Path, dags: Path, *argv: str, **env: str) -> None:
    """``argv`` with this Airflow home's settings (and ``env``), in ``home``; it must succeed."""
    result = subprocess.run(
        argv, env=airflow_env(home, dags, **env), cwd=home, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, (result.stderr or result.stdout)[-3000:]


@timed("dag-processor run")
def process_once(home: Path, dags: Path, **env: str) -> None:
    """One cycle of the real ``airflow dag-processor`` over ``dags``."""
    run_airflow(home, dags, AIRFLOW, "dag-processor", "-n", "1", **env)


def db_rows(home: Path, query: str) -> list[tuple]:
    with sqlite3.connect(home / "airflow.db") as conn:
        return conn.execute(query).fetchall()


@timed("Airflow DB migrate")
def migrate(home: Path, dags: Path) -> None:
    subprocess.run([AIRFLOW, "db", "migrate"], env=airflow_env(home, dags), check=True, capture_output=True)
