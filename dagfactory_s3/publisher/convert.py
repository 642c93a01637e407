"""``airflow-dag-publisher convert``: hand-written KubernetesPodOperator DAG files -> manifests and stubs.

This process never imports Airflow: the files are loaded, mapped and checked in a subprocess
(``python -m dagfactory_s3.convert.load``, :mod:`dagfactory_s3.convert`), which Airflow's own import
timeout and ours bound. Here: the flags, the subprocess, and writing what it proved into ``--out-dir``
(nothing else is written; a refused DAG or a file that fails writes nothing). docs/migration.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from dagfactory_s3 import manifest as manifests
from dagfactory_s3 import naming, platform, stub
from dagfactory_s3.errors import ConfigError
from dagfactory_s3.fs import atomic_write
from dagfactory_s3.publisher.terminal import add_output, add_setting, command, count, emit, log, require

__all__ = ["register"]

_LOADER = "dagfactory_s3.convert.load"
# Seconds the loading subprocess may take beyond its files' import timeouts (start-up, building pods,
# loading the converted stubs).
_SLACK = 60.0


def register(sub: argparse._SubParsersAction) -> None:
    p = command(
        sub,
        "convert",
        "turn hand-written KubernetesPodOperator DAG files into manifests, proven against the originals "
        "([airflow] extra)",
        [
            "airflow-dag-publisher convert --dag-folder legacy_dags --package-name reporting --out-dir airflow_dags",
            "airflow-dag-publisher convert --dag-file a.py --dag-file b.py --package-name reporting "
            "--out-dir airflow_dags --output json",
        ],
        "Loads each file the way Airflow does, in a subprocess (Airflow 2 files through a compatibility\n"
        "layer), and writes <out-dir>/<dag_id>.json and its stub for each DAG it can express, after\n"
        "loading the stub next to the original and comparing pods and Airflow fields (--check, on by\n"
        "default). One line per refused DAG: DAG, task, reason. Exit 0 all converted, 1 some refused,\n"
        "2 bad flags. docs/migration.md.",
    )
    p.add_argument(
        "--dag-file",
        type=Path,
        action="append",
        dest="dag_files",
        default=[],
        metavar="FILE",
        help="a DAG file (repeatable)",
    )
    p.add_argument("--dag-folder", type=Path, metavar="DIR", help="every .py file under this folder")
    add_setting(p, "package_name", help="package the manifests belong to (dag ids become <package>_<name>)")
    p.add_argument(
        "--out-dir",
        type=Path,
        metavar="DIR",
        help="directory the manifests and stubs are written to (required)",
    )
    add_setting(
        p,
        "policy",
        help="a platform policy file (its grants, namespaces, registries ...) the manifests are checked "
        "against and the stubs built under (convert reads no bucket: without it, the built-in policy)",
    )
    p.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="load each converted stub with the real factory and compare it with the original; a "
        "difference refuses the DAG [default: on; --no-check writes unproven manifests]",
    )
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=60.0,
        help="seconds one file may take to load (Airflow's import timeout) [default: 60]",
    )
    add_output(p)
    p.set_defaults(handler=cmd_convert)


def _files(args: argparse.Namespace) -> list[Path]:
    files = list(args.dag_files)
    if args.dag_folder is not None:
        if not args.dag_folder.is_dir():
            raise ConfigError(f"{args.dag_folder}: --dag-folder is not a directory")
        out = args.out_dir.resolve()  # an --out-dir inside the folder holds stubs, never sources
        files += sorted(
            p
            for p in args.dag_folder.rglob("*.py")
            if not any(part.startswith((".", "__")) for part in p.relative_to(args.dag_folder).parts)
            and not p.resolve().is_relative_to(out)
        )
    if not files:
        raise ConfigError("convert needs --dag-file FILE (repeatable) or --dag-folder DIR")
    for f in files:
        if not f.is_file():
            raise ConfigError(f"{f}: no such file")
    return files


def _run(files: list[Path], args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """The loader's description of ``files``: one subprocess for all, else one per file (so a file that
    kills or hangs its process is reported alone, with its error). ``work`` (inside --out-dir) holds
    the subprocess's AIRFLOW_HOME and, with --check, the converted files it loads."""
    stage = work / "stage" if args.check else None
    command = [
        sys.executable,
        "-m",
        _LOADER,
        "--package-name",
        args.package_name,
        "--timeout",
        str(args.timeout),
    ]
    command += ["--airflow-home", str(work / "airflow")]
    if stage is not None:
        command += ["--stage", str(stage)]
    # The user's Airflow settings apply (e.g. [core] default_timezone); the loader sets its home.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # no __pycache__ next to the user's files
    env.pop(platform.POLICY_ENV, None)
    if args.policy:  # the loader checks the manifests and builds the stubs under it (the image's override)
        env[platform.POLICY_ENV] = os.path.abspath(args.policy)

    def run(batch: list[Path]) -> tuple[list[dict[str, Any]] | None, str]:
        for folder in (work / "airflow", stage):  # fresh for every run: a killed run leaves its files
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
        try:
            done = subprocess.run(
                [*command, *map(str, batch)],
                capture_output=True,
                env=env,
                timeout=args.timeout * len(batch) + _SLACK,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None, f"loading took longer than {args.timeout:g}s and was stopped"
        try:
            return orjson.loads(done.stdout)["files"], ""
        except (orjson.JSONDecodeError, KeyError, TypeError):
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            return None, f"the loading process exited with code {done.returncode}: {tail[0][:500]}"

    files_out, error = run(files)
    if files_out is not None:
        return files_out
    if len(files) == 1:
        return [{"file": str(files[0]), "error": error, "dags": []}]
    out = []
    for f in files:
        one, error = run([f])
        out += one if one is not None else [{"file": str(f), "error": error, "dags": []}]
    return out


def _airflow_installed() -> bool:
    """Whether Airflow can be imported, without importing it here."""
    try:
        return importlib.util.find_spec("airflow") is not None
    except (ImportError, ValueError):
        return False


def cmd_convert(args: argparse.Namespace) -> int:
    require(args, "package_name")
    problem = naming.check_package(args.package_name)
    if problem:
        raise ConfigError(problem)
    if args.out_dir is None:
        raise ConfigError("convert needs --out-dir DIR (nothing is written anywhere else)")
    files = _files(args)
    if args.policy:
        platform.load(args.policy)  # a policy that cannot be used is an error here, before any loading
    if not _airflow_installed():
        raise ConfigError("convert needs Airflow: pip install 'dagfactory-s3[airflow]'")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    # Everything the run writes stays under --out-dir: this folder, removed when it ends.
    work = Path(tempfile.mkdtemp(prefix=".convert-", dir=args.out_dir.resolve()))  # Airflow wants absolute
    try:
        loaded = _run(files, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report, lines, refused = _write(loaded, args.out_dir)
    if args.output != "json":  # notes are for people: stderr (--quiet hides them), results on stdout
        for line in lines:
            if line.startswith("note: "):
                log(args, line)
        lines = [line for line in lines if not line.startswith("note: ")]
    converted = sum(1 for f in report for d in f["dags"] if d.get("manifest"))
    summary = (
        f"{count(converted, 'DAG')} converted, {count(refused, 'refusal')}, from {count(len(files), 'file')}"
    )
    emit(
        args,
        "\n".join([*lines, summary]),
        {"ok": refused == 0, "files": report, "converted": converted, "refused": refused},
    )
    return 1 if refused else 0


def _write(loaded: list[dict[str, Any]], out_dir: Path) -> tuple[list[dict[str, Any]], list[str], int]:
    """Write each converted DAG (its manifest first, then its stub); the report and its text lines."""
    ids: dict[str, int] = {}
    for file in loaded:
        for dag in file["dags"]:
            manifest = (dag.get("result") or {}).get("manifest")
            if manifest:
                ids[manifest["dag_id"]] = ids.get(manifest["dag_id"], 0) + 1
    report, lines, refused = [], [], 0
    for file in loaded:
        entry: dict[str, Any] = {
            "file": file["file"],
            "error": file.get("error"),
            "translations": file.get("translations", []),
            "dags": [],
        }
        for translation in entry["translations"]:
            lines.append(f"note: {file['file']}: translated {translation}")
        if file.get("error"):
            lines.append(f"{file['file']}: cannot load: {file['error']}")
            refused += 1
        elif not file["dags"]:  # a helper module, as Airflow sees it: nothing to convert, nothing refused
            lines.append(f"note: {file['file']}: no DAG in this file")
        for dag in file["dags"]:
            result = dag.get("result") or {"refusals": [f"DAG {dag['dag_id']!r}: {dag.get('error')}"]}
            manifest = result.get("manifest")
            item: dict[str, Any] = {
                "dag_id": dag["dag_id"],
                "operators": sorted({t["operator"].rsplit(".", 1)[-1] for t in dag.get("tasks", [])}),
                "notes": result.get("notes", []),
                "refusals": list(result.get("refusals", [])),
                "differences": result.get("differences", []),
            }
            if manifest and ids[manifest["dag_id"]] > 1:
                item["refusals"].append(
                    f"DAG {dag['dag_id']!r}: another DAG converts to {manifest['dag_id']!r} too"
                )
                manifest = None
            if manifest:
                path = out_dir / naming.manifest_name(manifest["dag_id"])
                stub_path = out_dir / naming.stub_of(path.name)
                atomic_write(path, manifests.dumps(manifest))
                atomic_write(stub_path, stub.render(path.name))
                item.update(manifest=str(path), stub=str(stub_path), converted_dag_id=manifest["dag_id"])
                lines.append(
                    f"converted DAG {dag['dag_id']!r} -> {path} ({count(len(manifest['tasks']), 'task')})"
                )
                lines += [f"note: {n}" for n in item["notes"]]
            else:
                refused += 1
                lines += item["refusals"]
            entry["dags"].append(item)
        report.append(entry)
    return report, lines, refused
