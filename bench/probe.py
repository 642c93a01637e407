"""What a real dag-processor child already has imported when it starts executing a DAG file.

Two one-file dags folders go through the real ``airflow dag-processor --num-runs 1``, each in its own
home so nothing else was parsed before: a canonical stub with a snapshot of ``sys.modules`` taken in
front of its first line, and a control file with the same snapshot but no ``airflow.*`` import. If the
manager pre-imports the stub's top-level ``import airflow.providers.cncf.kubernetes.operators.pod``
before forking, the stub's snapshot has the module and the control's does not.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench import processor
from dagfactory_s3 import stub

__all__ = ["WATCHED", "ProbeResult", "run_probe"]

WATCHED = (
    "airflow.providers.cncf.kubernetes.operators.pod",
    "kubernetes.client",
    "airflow.sdk",
    "dagfactory_s3",
    "dagfactory_s3.manifest",
    "dagfactory_s3.factory",
    "jsonschema",
    "yaml",
    "dagfactory",
)

_SNAPSHOT = """\
import json as _bench_json, os as _bench_os, sys as _bench_sys
with open(_bench_os.environ["BENCH_PROBE_OUT"], "w") as _bench_f:
    _bench_json.dump(sorted(_bench_sys.modules), _bench_f)
"""
# Safe-mode discovery reads the file for the words "airflow" and "dag": the control has them in a comment.
_CONTROL = "# airflow dag probe without airflow imports\n"


@dataclass(frozen=True)
class ProbeResult:
    with_stub: dict[str, bool]
    control: dict[str, bool]
    warmed: dict[str, bool] | None  # the stub again, with the image's airflow_local_settings.py
    stub_dags: int  # the probed stub still builds its DAG (1) without import errors (0)
    stub_import_errors: int
    modules: list[str]  # the control child's sys.modules: the manager's state before any pre-import


def _run(
    root: Path, name: str, files: dict[str, bytes], local_settings: str | None = None
) -> tuple[list[str], processor.CycleResult]:
    dags, home = root / name / "dags", root / name / "home"
    if dags.exists():
        shutil.rmtree(dags)
    dags.mkdir(parents=True)
    for file_name, content in files.items():
        (dags / file_name).write_bytes(content)
    out = root / name / "modules.json"
    out.unlink(missing_ok=True)
    processor.prepare_home(home, dags, local_settings=local_settings)
    cycle = processor.run_cycle(name, home, dags, BENCH_PROBE_OUT=str(out))
    return json.loads(out.read_text()), cycle


def run_probe(root: Path, manifest: Path, *, local_settings: str | None = None) -> ProbeResult:
    """Run the probes; ``manifest`` is any valid manifest (the stub builds its DAG from a copy).

    ``local_settings``: also probe the stub in a home with this ``airflow_local_settings.py``.
    """
    stub_name = manifest.with_suffix(".py").name
    stub_files = {
        manifest.name: manifest.read_bytes(),
        stub_name: _SNAPSHOT.encode() + stub.render(manifest.name),
    }
    with_stub, cycle = _run(root, "probe-stub", stub_files)
    control, _ = _run(root, "probe-control", {"probe_control.py": _CONTROL.encode() + _SNAPSHOT.encode()})
    warmed = _run(root, "probe-warm", stub_files, local_settings)[0] if local_settings is not None else None
    return ProbeResult(
        with_stub={m: m in with_stub for m in WATCHED},
        control={m: m in control for m in WATCHED},
        warmed={m: m in warmed for m in WATCHED} if warmed is not None else None,
        stub_dags=cycle.dags,
        stub_import_errors=cycle.import_errors,
        modules=control,
    )
