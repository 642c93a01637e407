"""What a worker pays to load one DAG when a task starts, per variant, in fresh interpreters.

Airflow 3.3's task runner (``airflow.sdk.execution_time.task_runner.parse``) loads the task's DAG
file with ``BundleDagBag(dag_folder=<file>, safe_mode=False, load_op_links=False, bundle_path=...)``
and logs the time as ``dag_file_parse_ms``. Each run here is a new interpreter (``python -m
bench.task_parse --child ...``) that imports the task runner and ``BundleDagBag`` (the worker's own,
variant-independent start-up, reported separately), then does exactly that call and looks the task up.

For dag-factory the task's file is the one loader, so a worker builds all N DAGs to run one task.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TaskParseResult", "measure"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class TaskParseResult:
    variant: str
    runs: list[dict]

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.runs)

    @property
    def ok(self) -> bool:
        return all(r["found"] and not r["errors"] for r in self.runs)


def _one(env: dict[str, str], file: Path, folder: Path, dag_id: str, task_id: str, warm: bool) -> dict:
    from bench import bytecode  # here, not at the top: the child must not have dagfactory_s3 imported

    bytecode.ensure_compiled()
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.task_parse",
                *(["--warm"] if warm else []),
                "--child",
                str(file),
                str(folder),
                dag_id,
                task_id,
                out.name,
            ],
            env=env,
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        row = json.loads(Path(out.name).read_text())
    row.update(
        process_wall_s=wall,
        process_cpu_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
    )
    return row


def measure(
    jobs: list[tuple[str, dict[str, str], Path, Path]],
    dag_id: str,
    task_id: str,
    repeats: dict[str, int],
    *,
    warm: bool = False,
) -> dict[str, TaskParseResult]:
    """Interleave the variants' runs (round-robin) so background load hits them alike.

    ``warm``: the child imports the KubernetesPodOperator module (timed as ``operator_import_s``)
    before parsing, so ``parse_s`` is the file's own cost beyond the operator every variant needs.
    """
    results = {variant: TaskParseResult(variant, []) for variant, *_ in jobs if repeats.get(variant)}
    for round_ in range(max(repeats.values())):
        for variant, env, file, folder in jobs:
            if round_ < repeats.get(variant, 0):
                results[variant].runs.append(_one(env, file, folder, dag_id, task_id, warm))
    return results


def _child(file: str, folder: str, dag_id: str, task_id: str, out: str, warm: bool) -> None:
    """Runs in the fresh interpreter: the task runner's parse of one file, timed."""
    if "dagfactory_s3" in sys.modules:
        raise RuntimeError("the per-task child must start without dagfactory_s3 imported")
    t0, c0 = time.perf_counter(), time.process_time()
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.sdk.execution_time import task_runner  # noqa: F401  (the worker process has it loaded)

    t1, c1 = time.perf_counter(), time.process_time()
    operator_import_s = operator_import_cpu_s = None
    if warm:
        import airflow.providers.cncf.kubernetes.operators.pod  # noqa: F401

        operator_import_s, operator_import_cpu_s = time.perf_counter() - t1, time.process_time() - c1
        t1, c1 = time.perf_counter(), time.process_time()
    bag = BundleDagBag(
        dag_folder=file,
        safe_mode=False,
        load_op_links=False,
        bundle_path=Path(folder),
        bundle_name="dags-folder",
    )
    found = dag_id in bag.dags and task_id in bag.dags[dag_id].task_dict
    t2, c2 = time.perf_counter(), time.process_time()
    Path(out).write_text(
        json.dumps(
            {
                "startup_s": t1 - t0,
                "parse_s": t2 - t1,
                "parse_cpu_s": c2 - c1,
                "startup_cpu_s": c1 - c0,
                "dags": len(bag.dags),
                "errors": len(bag.import_errors),
                "found": found,
                "operator_import_s": operator_import_s,
                "operator_import_cpu_s": operator_import_cpu_s,
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.task_parse")
    parser.add_argument(
        "--child", nargs=5, metavar=("FILE", "FOLDER", "DAG_ID", "TASK_ID", "OUT"), required=True
    )
    parser.add_argument("--warm", action="store_true", help="import the operator module before parsing")
    args = parser.parse_args()
    _child(*args.child, warm=args.warm)
