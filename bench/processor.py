"""One full parse cycle of the real ``airflow dag-processor --num-runs 1`` per dags folder.

The command is Airflow's own CLI entry point (``airflow.__main__.main``, what the ``airflow`` script
runs) started through ``python -c`` with one addition: an exit hook that writes the manager process's
own CPU time, so a cycle's CPU splits into the manager and the parsing children it forked.

Every variant gets its own AIRFLOW_HOME and SQLite database, migrated once and copied fresh before
each run, so every cycle is a cold "first parse" of all N files with identical settings. A cycle is
measured four ways, all from the same run:

* ``wall``   — the whole command, start-up included (what a fresh dag-processor pod pays);
* ``net``    — ``wall`` minus the same command over an empty folder (start-up and exit removed, in
  :mod:`bench.report`);
* ``window`` — the processor's own log: "Found N files" to "Exiting dag parsing loop";
* ``cpu``    — user+sys of the processor and every child it reaped (``RUSAGE_CHILDREN``), and of the
  manager process alone (the exit hook).

Afterwards the database says whether it worked: every DAG serialized, no import errors, and Airflow's
own per-file parse duration (``dag.last_parse_duration``, fork to result, measured by the manager).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

__all__ = [
    "LOCAL_SETTINGS",
    "WARM_ALL",
    "WARM_CORE",
    "CycleResult",
    "airflow_env",
    "local_settings_text",
    "prepare_home",
    "run_cycle",
]

AIRFLOW = str(Path(sys.executable).parent / "airflow")
PARSING_PROCESSES = 2
# dag-factory builds all N DAGs in one file, in one child: Airflow's defaults (30 s import timeout,
# 50 s processor timeout) would kill it at N=1,000 and it would register nothing. Raised for every
# variant alike so the comparison is of speed, not of who hits a timeout.
TIMEOUT_S = 1800
# The real CLI entry point (what the ``airflow`` console script runs), plus an exit hook that records the
# manager's own CPU time, so a cycle's CPU splits into the manager and its parsing children.
_MANAGER = """\
import atexit, json, os, resource, sys
_pid = os.getpid()
def _record():
    if os.getpid() == _pid:  # forked parsing children inherit the hook
        usage = resource.getrusage(resource.RUSAGE_SELF)
        with open(os.environ["BENCH_MANAGER_RUSAGE"], "w") as out:
            json.dump({"cpu_s": usage.ru_utime + usage.ru_stime}, out)
atexit.register(_record)
sys.argv = ["airflow", *sys.argv[1:]]
from airflow.__main__ import main
sys.exit(main())
"""
_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z")


def airflow_env(home: Path, dags: Path, **extra: str) -> dict[str, str]:
    """The environment of every Airflow process in the benchmark (one place for every setting)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT=str(TIMEOUT_S),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES=str(PARSING_PROCESSES),
        AIRFLOW__DAG_PROCESSOR__FILE_PARSING_SORT_MODE="modified_time",
        AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT=str(TIMEOUT_S),
        # As docs/deploy.md recommends (the check's cost is the same at "warning", Airflow's default).
        AIRFLOW__DAG_PROCESSOR__DAG_VERSION_INFLATION_CHECK_LEVEL="error",
        # dag-factory ships an Airflow plugin with usage telemetry; keep the network out of timings.
        AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY="False",
        DO_NOT_TRACK="1",
        SCARF_NO_ANALYTICS="1",
    )
    env.update(extra)
    return env


# What the Airflow image installs as $AIRFLOW_HOME/config/airflow_local_settings.py: every Airflow
# process imports it at start-up, so the dag-processor manager runs ``dagfactory_s3.loader.warm()``
# (Airflow-free parse modules, schema validator) before it forks its parsing children.
LOCAL_SETTINGS = Path(__file__).resolve().parent.parent / "deploy" / "airflow" / "airflow_local_settings.py"
# The same warm-up as code, for bench.childcost's rebuilt parent; and with the factory (which imports
# the KubernetesPodOperator module) too: the most a parent could hold.
WARM_CORE = "from dagfactory_s3.loader import warm\nwarm()\n"
WARM_ALL = WARM_CORE + "from dagfactory_s3 import factory\n"


def local_settings_text() -> str:
    """The image's airflow_local_settings.py, or the same warm-up if this checkout predates that file."""
    return LOCAL_SETTINGS.read_text() if LOCAL_SETTINGS.exists() else WARM_CORE


def prepare_home(home: Path, dags: Path, *, local_settings: str | None = None) -> None:
    """Create ``home`` with a freshly migrated database, kept as ``airflow.db.fresh`` for every run."""
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    if local_settings is not None:
        (home / "config").mkdir()
        (home / "config" / "airflow_local_settings.py").write_text(local_settings)
    subprocess.run(
        [AIRFLOW, "db", "migrate"], env=airflow_env(home, dags), check=True, capture_output=True, cwd=home
    )
    shutil.copy(home / "airflow.db", home / "airflow.db.fresh")


@dataclass
class CycleResult:
    variant: str
    wall_s: float
    window_s: float | None
    files: int | None
    dags: int
    tasks: int
    import_errors: int
    stale_or_missing: int
    cpu_s: float
    manager_cpu_s: float
    file_durations_s: list[float] = field(repr=False)
    dag_shapes: dict[str, str] = field(repr=False)
    log: Path = field(repr=False)

    @property
    def file_sum_s(self) -> float:
        return sum(self.file_durations_s)

    @property
    def file_median_s(self) -> float:
        return statistics.median(self.file_durations_s) if self.file_durations_s else 0.0


def _window(log: Path) -> tuple[float | None, int | None]:
    start = end = None
    files = None
    for line in log.read_text(errors="replace").splitlines():
        match = _TS.match(line)
        if not match:
            continue
        if start is None and "Found " in line and " files for bundle" in line:
            start = datetime.fromisoformat(match[1])
            files = int(re.search(r"Found (\d+) files", line)[1])
        elif "Exiting dag parsing loop" in line:
            end = datetime.fromisoformat(match[1])
    if start is None or end is None:
        return None, files
    return (end - start).total_seconds(), files


def _query(db: Path) -> dict:
    with sqlite3.connect(db) as conn:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "dags": one("SELECT COUNT(DISTINCT dag_id) FROM serialized_dag"),
            "tasks": one(
                "SELECT COALESCE(SUM(json_array_length(data, '$.dag.tasks')), 0) FROM serialized_dag"
            ),
            "import_errors": one("SELECT COUNT(*) FROM import_error"),
            "stale": one("SELECT COUNT(*) FROM dag WHERE is_stale"),
            # One duration per file: dag-factory's single loader file carries all N DAGs.
            "durations": [
                r[0]
                for r in conn.execute(
                    "SELECT MAX(last_parse_duration) FROM dag WHERE last_parse_duration IS NOT NULL GROUP BY fileloc"
                )
            ],
            "shapes": {
                dag_id: _shape(data)
                for dag_id, data in conn.execute(
                    "SELECT dag_id, data FROM serialized_dag WHERE data IS NOT NULL"
                )
            },
        }


def _shape(data: str) -> str:
    """Digest of a serialized DAG without where its file is (the variants live in different folders)."""
    document = json.loads(data)
    for key in ("fileloc", "relative_fileloc", "_processor_dags_folder"):
        document["dag"].pop(key, None)
    for task in document["dag"].get("tasks", []):  # the stub's operator is the provider's, checked at render
        var = task.get("__var", task)
        for key in ("_task_type", "task_type"):  # the key's name differs between Airflow versions
            if var.get(key) == "ManifestPodOperator":
                var[key] = "KubernetesPodOperator"
                var["_task_module"] = "airflow.providers.cncf.kubernetes.operators.pod"
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def run_cycle(variant: str, home: Path, dags: Path, **env: str) -> CycleResult:
    """Run ``airflow dag-processor --num-runs 1`` over ``dags`` on a fresh copy of the home's database."""
    from bench import bytecode  # imports dagfactory_s3: keep it out of bench.childcost's parent

    bytecode.ensure_compiled()
    shutil.copy(home / "airflow.db.fresh", home / "airflow.db")
    log = home / "dag-processor.log"
    manager_usage = home / "manager-rusage.json"
    manager_usage.unlink(missing_ok=True)
    with open(log, "wb") as out:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _MANAGER, "dag-processor", "--num-runs", "1"],
            env=airflow_env(home, dags, BENCH_MANAGER_RUSAGE=str(manager_usage), **env),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=home,
            check=False,
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"dag-processor for {variant} exited {proc.returncode}; see {log}")
    window, files = _window(log)
    db = _query(home / "airflow.db")
    return CycleResult(
        variant=variant,
        wall_s=wall,
        window_s=window,
        files=files,
        dags=db["dags"],
        tasks=db["tasks"],
        import_errors=db["import_errors"],
        stale_or_missing=db["stale"],
        # The manager reaps its parsing children, so their CPU is in its rusage and then in ours.
        cpu_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        manager_cpu_s=json.loads(manager_usage.read_text())["cpu_s"],
        file_durations_s=db["durations"],
        dag_shapes=db["shapes"],
        log=log,
    )
