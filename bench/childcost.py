"""Per-file cost of a dag-processor child, measured in isolation (``python -m bench.childcost``).

The real dag-processor forks one child per file from a manager that has already imported a few
thousand modules (Airflow, its plugins, and whatever ``_pre_import_airflow_modules`` found in earlier
files) and called ``gc.freeze()``. This script rebuilds that parent — it imports the module list a
probe DAG recorded inside a real dag-processor child, then freezes the GC — and, per file, does what
the manager does: the real ``_pre_import_airflow_modules``, ``fork``, and in the child the real
``_parse_file`` (DagBag + serialization). The child's CPU time comes from ``wait4``.

Stub and hand-written children are forked alternately from the same parent, file by file, so load
on a shared machine hits both alike and their difference is measured pairwise. Then the parent is
warmed (:data:`bench.processor.WARM_CORE`, later ``WARM_ALL``: import ``dagfactory_s3``, build the
schema validator, as an ``airflow_local_settings`` would before the manager's ``gc.freeze()``) and
the same pairs run again: what stub children cost if the manager had those modules already.

``--phases`` instead times the steps inside each child (import of our modules, schema validator
construction, manifest validation, DAG build, serialization) to show where a stub's time goes.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

__all__ = ["main", "run"]

ROOT = Path(__file__).resolve().parent.parent


def run(
    env: dict[str, str],
    modules: Path,
    stubs: Path,
    handwritten: Path,
    files: int,
    out: Path,
    *flags: str,
    root: Path = ROOT,
) -> dict:
    """Run this script in a fresh interpreter with ``env``; its JSON result. ``root``: the checkout
    whose ``bench`` and ``dagfactory_s3`` come first on the path (another one to compare with)."""
    import subprocess

    from bench import bytecode

    bytecode.ensure_compiled()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.childcost",
            "--modules",
            str(modules),
            "--stubs",
            str(stubs),
            "--handwritten",
            str(handwritten),
            "--files",
            str(files),
            "--out",
            str(out),
            *flags,
        ],
        env=env,
        cwd=root,
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if proc.returncode:
        tail = proc.stderr.decode(errors="replace")[-2000:]
        raise RuntimeError(f"bench.childcost {' '.join(flags)} failed ({proc.returncode}):\n{tail}")
    return json.loads(out.read_text())


def _replay(modules: list[str]) -> int:
    """Import what a real dag-processor child already had in sys.modules; how many failed."""
    failed = 0
    for name in modules:
        if name in sys.modules or name.startswith("unusual_prefix_") or name == "__main__":
            continue
        try:
            importlib.import_module(name)
        except Exception:
            failed += 1
    return failed


def _in_child(fn, write_fd: int) -> None:
    try:
        data = fn()
        os.write(write_fd, json.dumps(data).encode())
    finally:
        os._exit(0)


def _fork_measure(fn) -> dict:
    """Run ``fn`` in a forked child; its result plus the child's wall and CPU seconds (fork to exit)."""
    read_fd, write_fd = os.pipe()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _in_child(fn, write_fd)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    _, _, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    result = json.loads(b"".join(chunks) or b"{}")
    result.update(wall_s=wall, cpu_s=usage.ru_utime + usage.ru_stime)
    return result


def _parse(path: Path, folder: Path, log) -> dict:
    from airflow.dag_processing.processor import DagFileParseRequest, _parse_file

    msg = DagFileParseRequest(
        file=str(path), bundle_path=folder, bundle_name="dags-folder", callback_requests=[]
    )
    result = _parse_file(msg, log)
    return {"dags": len(result.serialized_dags), "errors": len(result.import_errors)}


def _phases_stub(path: Path) -> dict:
    from airflow.serialization.serialized_objects import DagSerialization

    marks = [("start", time.process_time())]
    import dagfactory_s3.loader  # noqa: F401

    marks.append(("import dagfactory_s3.loader", time.process_time()))
    from dagfactory_s3 import factory, manifest, schema

    marks.append(("import factory+manifest+schema", time.process_time()))
    schema._validator()
    marks.append(("build schema validator", time.process_time()))
    checked = manifest.load(path.with_suffix(".json"))
    marks.append(("validate manifest", time.process_time()))
    dag = factory.build_dag(checked)
    marks.append(("build DAG", time.process_time()))
    DagSerialization.to_dict(dag)
    marks.append(("serialize", time.process_time()))
    return {"phases": {name: marks[i + 1][1] - marks[i][1] for i, (name, _) in enumerate(marks[1:])}}


def _phases_module(path: Path) -> dict:
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    t0 = time.process_time()
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    t1 = time.process_time()
    for value in vars(module).values():
        if isinstance(value, DAG):
            DagSerialization.to_dict(value)
    t2 = time.process_time()
    return {"phases": {"compile+execute file": t1 - t0, "serialize": t2 - t1}}


def _pairs(stubs: Path, handwritten: Path, files: int) -> list[tuple[Path, Path]]:
    names = sorted(p.name for p in stubs.glob("*.py"))[:files]
    return [(stubs / name, handwritten / name) for name in names]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.childcost", description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=Path, required=True, help="JSON list of modules a real child had")
    parser.add_argument("--stubs", type=Path, required=True, help="dags folder of stubs + manifests")
    parser.add_argument(
        "--handwritten", type=Path, required=True, help="dags folder of the same DAGs hand-written"
    )
    parser.add_argument("--files", type=int, default=40, help="how many DAGs (sorted by file name)")
    parser.add_argument("--phases", action="store_true", help="time the steps inside the child instead")
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    args = parser.parse_args(argv)

    import structlog
    from airflow.dag_processing.processor import _pre_import_airflow_modules

    from bench.processor import WARM_ALL, WARM_CORE

    if "dagfactory_s3" in sys.modules:
        raise RuntimeError("the parent must start without dagfactory_s3, as the dag-processor manager does")
    failed = _replay(json.loads(args.modules.read_text()))
    log = structlog.get_logger(logger_name="bench.childcost")
    gc.freeze()  # as DagFileProcessorManager.before_run does before its parsing loop
    pairs = _pairs(args.stubs, args.handwritten, args.files)
    cases: dict[str, list[dict]] = {}

    def fork_pairs(stub_case: str, hand_case: str) -> None:
        for stub_file, hand_file in pairs:
            for case, path, folder in (
                (stub_case, stub_file, args.stubs),
                (hand_case, hand_file, args.handwritten),
            ):
                _pre_import_airflow_modules(str(path), log)  # what the manager does before each fork
                if args.phases:
                    is_stub = path.with_suffix(".json").exists()
                    work = functools.partial(_phases_stub if is_stub else _phases_module, path)
                else:
                    work = functools.partial(_parse, path, folder, log)
                cases.setdefault(case, []).append(_fork_measure(work))

    fork_pairs("stubs", "handwritten")
    if not args.phases:
        exec(WARM_CORE, {})
        gc.freeze()
        fork_pairs("stubs, Airflow-free dagfactory_s3 pre-imported", "handwritten, same parent")
        exec(WARM_ALL, {})
        gc.freeze()
        fork_pairs("stubs, all of dagfactory_s3 pre-imported", "handwritten, same parent (all)")
    # Logging goes to stdout (structlog), so the result goes to its own file.
    args.out.write_text(json.dumps({"replay_failed": failed, "modules": len(sys.modules), "cases": cases}))


if __name__ == "__main__":
    main()
