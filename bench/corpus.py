"""The benchmark corpus: N job manifests and the same DAGs written three ways.

* ``stubs/``        — our variant: ``<dag_id>.json`` manifest + its canonical stub ``<dag_id>.py``.
* ``handwritten/``  — one ``<dag_id>.py`` per DAG building the same KubernetesPodOperators with the
  same keyword arguments as :mod:`dagfactory_s3.factory`, written out literally (the fair baseline:
  each serializes exactly like its stub's DAG, which the benchmark checks in the database).
* ``dagfactory/``   — dag-factory 1.1: one YAML config per DAG under ``configs/`` and a single loader
  ``.py`` that calls ``load_yaml_dags`` for all of them (the way dag-factory is usually deployed).

Everything is a pure function of ``n``: no clock, no randomness, so two runs compare the same bytes.
The manifests go through :func:`dagfactory_s3.manifest.parse`, so every generated DAG is valid.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import baseline
from dagfactory_s3 import stub
from dagfactory_s3.manifest import parse

__all__ = ["VARIANTS", "Corpus", "expected_counts", "manifest_document", "write_corpus"]

VARIANTS = ("stubs", "handwritten", "dagfactory")
REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
PACKAGES = tuple(f"pkg{p:02d}" for p in range(20))
SCHEDULES = ("0 3 * * *", "@daily", "*/15 * * * *", None, "@hourly", "30 2 * * 1-5", "0 */6 * * *")
OWNERS = ("data-eng", "analytics", "platform", "reporting-team")
DAGFACTORY_LOADER = "dagfactory_loader.py"


@dataclass(frozen=True)
class Corpus:
    """Where each variant's dags folder is, and one (dag_id, task_id, file) to start a task from."""

    root: Path
    n: int
    folders: dict[str, Path]
    sample_dag_id: str
    sample_task_id: str

    def sample_file(self, variant: str) -> Path:
        if variant == "dagfactory":
            return self.folders[variant] / DAGFACTORY_LOADER
        return self.folders[variant] / f"{self.sample_dag_id}.py"


def manifest_document(i: int) -> dict[str, Any]:
    """Manifest number ``i``: 1-3 tasks, schedules, env kinds and pod options varied by ``i``."""
    package = PACKAGES[i % len(PACKAGES)]
    dag_id = f"{package}_job{i:05d}"
    image = f"{REGISTRY}/{package.replace('_', '-')}:v1.{i % 7}.{i % 13}"
    doc: dict[str, Any] = {
        "schema_version": 1,
        "package": package,
        "dag_id": dag_id,
        "description": f"Benchmark job {i} of package {package}.",
        "owner": OWNERS[i % len(OWNERS)],
        "schedule": SCHEDULES[i % len(SCHEDULES)],
        "start_date": f"2024-{1 + i % 12:02d}-01",
        "catchup": False,
        "max_active_runs": 1 + i % 2,
        "tags": sorted({package, "bench", ("hourly" if i % 3 == 0 else "daily")}),
    }
    if i % 4 == 0:
        doc["dagrun_timeout"] = "2h"
    env: dict[str, Any] = {"LOG_LEVEL": "INFO", "JOB_INDEX": str(i)}
    if i % 2 == 0:
        env["DB_PASSWORD"] = {"secret": {"name": f"{package.replace('_', '-')}-db", "key": "password"}}
    if i % 3 == 0:
        env["FEATURE_FLAGS"] = {"config_map": {"name": "job-config", "key": "flags"}}
    defaults: dict[str, Any] = {
        "image": image,
        "env": env,
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": f"{1 + i % 4}Gi"}},
        "retries": i % 3,
        "retry_delay": "5m" if i % 2 else "10m",
    }
    if i % 5 == 0:
        defaults["service_account"] = package.replace("_", "-")
    if i % 6 == 0:
        defaults["node_selector"] = {"workload": "etl"}
        defaults["tolerations"] = [
            {"key": "dedicated", "operator": "Equal", "value": "etl", "effect": "NoSchedule"}
        ]
    if i % 7 == 0:
        defaults["labels"] = {"team": OWNERS[i % len(OWNERS)]}
        defaults["annotations"] = {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
    n_tasks = 1 + i % 3
    steps = ("extract", "transform", "load")[:n_tasks] if n_tasks > 1 else ("run",)
    tasks = []
    for k, step in enumerate(steps):
        task: dict[str, Any] = {
            "task_id": step,
            "command": ["python", "-m", f"{package}.jobs.{step}"],
            "arguments": ["--date", "{{ ds }}", "--job", str(i)],
        }
        if k:
            task["depends_on"] = [steps[k - 1]]
        if step == "transform":
            task["resources"] = {"limits": {"cpu": "2", "memory": "4Gi"}}
            task["execution_timeout"] = "90m"
        tasks.append(task)
    if n_tasks == 1 and i % 2 == 0:
        # Half of the single-task DAGs use the `job` shorthand, as most real packages do.
        job = {
            **defaults,
            **{k: v for k, v in tasks[0].items() if k != "task_id"},
            "name": tasks[0]["task_id"],
        }
        doc["job"] = job
    else:
        doc["task_defaults"] = defaults
        doc["tasks"] = tasks
    return doc


def write_corpus(root: Path, n: int) -> Corpus:
    """(Re)write the three dags folders for ``n`` DAGs under ``root``."""
    folders = {v: root / v for v in VARIANTS}
    for folder in folders.values():
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    configs = folders["dagfactory"] / "configs"
    configs.mkdir()
    for i in range(n):
        document = manifest_document(i)
        dag_id = document["dag_id"]
        raw = (json.dumps(document, indent=2) + "\n").encode()
        manifest = parse(raw, file=f"{dag_id}.json")
        (folders["stubs"] / f"{dag_id}.json").write_bytes(raw)
        (folders["stubs"] / f"{dag_id}.py").write_bytes(stub.render(f"{dag_id}.json"))
        (folders["handwritten"] / f"{dag_id}.py").write_text(baseline.python_source(manifest))
        (configs / f"{dag_id}.yml").write_text(baseline.dagfactory_yaml(manifest))
    (folders["dagfactory"] / DAGFACTORY_LOADER).write_text(_DAGFACTORY_LOADER)
    sample = manifest_document(n // 2)
    sample_task = sample["job"]["name"] if "job" in sample else sample["tasks"][-1]["task_id"]
    return Corpus(root=root, n=n, folders=folders, sample_dag_id=sample["dag_id"], sample_task_id=sample_task)


# Safe-mode discovery needs the words "airflow" and "dag" in the file; dag-factory's docs loader has them.
_DAGFACTORY_LOADER = """\
# dag-factory 1.1 loader (benchmark baseline): one airflow DAG file builds every DAG from configs/*.yml.
from pathlib import Path

from dagfactory import load_yaml_dags

load_yaml_dags(globals_dict=globals(), dags_folder=str(Path(__file__).parent / "configs"))
"""


def expected_counts(n: int) -> dict[str, int]:
    """How many DAGs and tasks every variant must register for ``n`` manifests."""
    docs = [manifest_document(i) for i in range(n)]
    return {"dags": n, "tasks": sum(1 if "job" in d else len(d["tasks"]) for d in docs)}
