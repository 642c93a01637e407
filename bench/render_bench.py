"""``render`` and ``validate`` against their floor: the imports they cannot avoid, in the same run.

Each row is a fresh process, timed from the outside (CPU = user + sys of the child, which a loaded
machine inflates less than wall time), median of ``--repeat`` runs, rows interleaved so load hits
them alike. Run::

    .venv/bin/python -m bench.render_bench [--repeat 7]

The floor of ``render`` is importing the KubernetesPodOperator (whose code builds the pods) and
``airflow.sdk.DAG``; that of ``validate`` is the interpreter with jsonschema. Compare the ratio
column, not the absolute seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples/packages/pipeline_processing/airflow_dags/pipeline_processing_example_job.json"
PUBLISHER = [sys.executable, "-m", "dagfactory_s3.publisher.cli"]
OPERATOR_IMPORT = "from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator; from airflow.sdk import DAG"


def many_tasks(folder: Path, n: int) -> Path:
    """The reporting_seeder example with ``n`` tasks instead of 3."""
    doc = json.loads(
        (
            ROOT / "examples/packages/reporting_seeder/airflow_dags/reporting_seeder_refresh_all.json"
        ).read_text()
    )
    doc["dag_id"] = "reporting_seeder_many"
    doc["tasks"] = [{"task_id": f"t{i:03d}", "command": ["reporting-seeder", str(i)]} for i in range(n)]
    path = folder / "reporting_seeder_many.json"
    path.write_text(json.dumps(doc))
    return path


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one child process (which must exit 0)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.render_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per row (default 7)")
    parser.add_argument("--tasks", type=int, default=100, help="tasks of the large manifest (default 100)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "AIRFLOW_HOME": tmp, "PYTHONPATH": str(ROOT)}
        large = many_tasks(Path(tmp), args.tasks)
        rows = {
            "floor: import KubernetesPodOperator + DAG": [sys.executable, "-c", OPERATOR_IMPORT],
            "render, 1 task": [*PUBLISHER, "render", "--dag-file", str(EXAMPLE)],
            f"render, {args.tasks} tasks": [*PUBLISHER, "render", "--dag-file", str(large)],
            "floor: import jsonschema": [sys.executable, "-c", "import jsonschema"],
            "validate, 1 task": [*PUBLISHER, "validate", "--dag-file", str(EXAMPLE)],
        }
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
        for _ in range(args.repeat):
            for name, command in rows.items():
                samples[name].append(timed(command, env))
    floors = {"render": "floor: import KubernetesPodOperator + DAG", "validate": "floor: import jsonschema"}
    print(f"| what | wall s (median of {args.repeat}) | CPU s (median) | CPU / its floor |")
    print("|---|---:|---:|---:|")
    for name, values in samples.items():
        wall = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        floor = floors.get(name.split(",")[0])
        ratio = cpu / statistics.median(v[1] for v in samples[floor]) if floor else 1.0
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
