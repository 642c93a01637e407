"""The compatibility matrix: Airflow 3.0-3.3 x Python 3.10-3.13, one pinned environment per cell.

    python3 constraints/compat.py generate [CELL ...]   # resolve constraints/<cell>.txt from PyPI
    python3 constraints/compat.py test [CELL ...]       # what `make test-compat` runs
    python3 constraints/compat.py hashes [CELL ...]     # dag_hash of every example in each Airflow cell
    python3 constraints/compat.py list                  # the cells, one per line

`generate` resolves each cell with pip in a scratch virtualenv of the cell's Python
(`pip install --dry-run --ignore-installed --report`): the package with its extras plus the cell's
Airflow minor and caps, newest versions PyPI offers, written as `name==version` lines. Airflow's own
constraint files are not used, so every pin here comes from the registry's metadata at generation time;
a cap stands in for one of their pins only where a newer release is proven to break that Airflow.

`test` builds `.compat/<cell>/` (git-ignored) with the cell's Python, installs the package under the
cell's constraints, and runs the cell's tests. A venv is rebuilt only when its constraints file
changes (the stamp holds its hash), and the package reinstalled when pyproject.toml changes. Only the standard library is used, so any Python >= 3.10
runs this file. Interpreters are found as `python3.X` on PATH or under ~/.pyenv/versions; a missing one
is an error, never a skipped cell. Adding an Airflow minor is one line in CELLS plus `generate`.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "constraints"
VENVS = ROOT / ".compat"
# pip itself is pinned too: resolution and installation behave the same in every cell and run.
PIP = "pip==25.3"


class Cell(NamedTuple):
    name: str
    python: str  # "3.X"
    airflow: str | None  # Airflow minor ("3.0"), or None for a base (Airflow-free) cell
    # Requirements added to the resolution where the newest release of a dependency breaks the cell's
    # Airflow: the cap Airflow's own constraint file for that release would impose, with the evidence.
    caps: tuple[str, ...] = ()


# The default cell (Airflow 3.3 x Python 3.11) is constraints.txt itself: `make test` runs the whole
# suite there.
CELLS = [
    Cell("airflow-3.0-py3.10", "3.10", "3.0"),
    Cell("airflow-3.1-py3.11", "3.11", "3.1"),
    # Airflow 3.2.2 declares `fastapi>=0.129.0` only, and its execution API (which its dag-processor
    # builds in process) annotates a union with `Field(discriminator=<function>)`, which pydantic rejects.
    # fastapi <= 0.156.0 let `Body()` overwrite that discriminator with None; from 0.156.1 it reaches
    # pydantic and `airflow dag-processor` dies building TITerminalStatePayload's schema. Airflow 3.3
    # declares `fastapi<0.137.0` itself; 3.2.2 shipped when 0.136.3 was the newest fastapi.
    Cell("airflow-3.2-py3.12", "3.12", "3.2", caps=("fastapi<0.137",)),
    Cell("airflow-3.3-py3.13", "3.13", "3.3"),
    Cell("base-py3.10", "3.10", None),
    Cell("base-py3.13", "3.13", None),
]

# What each kind of cell runs. Airflow cells: every test marked `compat` (DagBag of every example, the
# real dag-processor, the determinism probe, render goldens, the bad-input corpus through the loader,
# the wheel not moving Airflow), from the files that hold them. Base cells: the publisher and sidecar suites, Airflow's tests deselected
# by their `airflow` marker.
AIRFLOW_TESTS = [
    "-m",
    "compat",
    "tests/test_factory.py",
    "tests/test_loader.py",
    "tests/test_dag_processor.py",
    "tests/test_bundle.py",
    "tests/test_cli.py",
    "tests/test_stub.py",
    "tests/test_packaging.py",
]
BASE_TESTS = [
    "-m",
    "not airflow",
    "tests/test_manifest.py",
    "tests/test_stub.py",
    "tests/test_cli.py",
    "tests/test_publish.py",
    "tests/test_sync.py",
    "tests/test_sync_process.py",
    "tests/test_packaging.py",
    "tests/test_boundaries.py",
]


def extras(cell: Cell) -> str:
    return "airflow,test" if cell.airflow else "test"


def requirements(cell: Cell) -> list[str]:
    reqs = [f".[{extras(cell)}]"]
    if cell.airflow:
        reqs.append(f"apache-airflow=={cell.airflow}.*")
    return reqs + list(cell.caps)


def find_python(version: str) -> str:
    """The interpreter for ``3.X``: ``python3.X`` on PATH, else ~/.pyenv/versions/3.X.*; checked by running it."""
    candidates = [shutil.which(f"python{version}")]
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(f"{pyenv}/versions/{version}.*/bin/python{version}"), reverse=True)
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    sys.exit(f"compat: no Python {version} found (python{version} on PATH or {pyenv}/versions/{version}.*)")


def constraints_file(cell: Cell) -> Path:
    return HERE / f"{cell.name}.txt"


def run(cmd: list[str], **kwargs) -> None:
    subprocess.run(cmd, check=True, **kwargs)


def make_venv(python: str, path: Path) -> Path:
    run([python, "-m", "venv", str(path)])
    bin_python = path / "bin" / "python"
    run([str(bin_python), "-m", "pip", "install", "-q", "--disable-pip-version-check", PIP])
    return bin_python


def generate(cell: Cell) -> None:
    python = find_python(cell.python)
    with tempfile.TemporaryDirectory(prefix=f"compat-{cell.name}-") as scratch:
        venv_python = make_venv(python, Path(scratch) / "venv")
        report = Path(scratch) / "report.json"
        run(
            [
                str(venv_python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--dry-run",
                "--ignore-installed",
                "--report",
                str(report),
                *requirements(cell),
            ],
            cwd=ROOT,
        )
        installs = json.loads(report.read_text())["install"]
    pins = sorted(
        (item["metadata"]["name"], item["metadata"]["version"])
        for item in installs
        if item["metadata"]["name"] != "dagfactory-s3"
    )
    header = [
        f"# Cell {cell.name}: Python {cell.python}, "
        + (f"Airflow {cell.airflow}" if cell.airflow else "no Airflow"),
        "# Generated by `python3 constraints/compat.py generate " + cell.name + "` from PyPI; do not edit.",
        "# Resolved: " + " ".join(requirements(cell)),
    ]
    lines = header + [f"{name}=={version}" for name, version in pins]
    constraints_file(cell).write_text("\n".join(lines) + "\n")
    print(f"compat: wrote {constraints_file(cell).relative_to(ROOT)} ({len(pins)} pins)", flush=True)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def venv_for(cell: Cell) -> Path:
    """``.compat/<cell>/bin/python``: rebuilt from scratch when the cell's constraints change, the package
    reinstalled (cheap: every pin is already there) when only pyproject.toml changed, else reused."""
    path = VENVS / cell.name
    stamp = path / ".installed"
    if not constraints_file(cell).exists():
        sys.exit(f"compat: {constraints_file(cell).relative_to(ROOT)} is missing; run generate")
    want = [digest(constraints_file(cell)), digest(ROOT / "pyproject.toml")]
    have = stamp.read_text().split() if stamp.exists() else []
    venv_python = path / "bin" / "python"
    if have == want:
        return venv_python
    if have[:1] != want[:1]:
        shutil.rmtree(path, ignore_errors=True)
        make_venv(find_python(cell.python), path)
    # --no-compile: byte-compiling all of Airflow costs minutes of CPU; tests compile what they import.
    cmd = [str(venv_python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile"]
    run([*cmd, "-c", str(constraints_file(cell)), "-e", f".[{extras(cell)}]"], cwd=ROOT)
    # Like the Makefile: an editable install gets no bytecode; compile it as a wheel install would.
    run([str(venv_python), "-m", "compileall", "-q", "dagfactory_s3"], cwd=ROOT)
    stamp.write_text(" ".join(want))
    return venv_python


def test(cell: Cell, pytest_args: list[str]) -> bool:
    venv_python = venv_for(cell)
    selection = AIRFLOW_TESTS if cell.airflow else BASE_TESTS
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # A test that skips in a cell is a failure there: the cell must prove, not pass by omission.
    env["COMPAT_FORBID_SKIPS"] = "1"
    # What a test that builds its own venv pins it with (tests/test_packaging.py): this cell's versions.
    env["COMPAT_CONSTRAINTS"] = str(constraints_file(cell))
    env["PATH"] = f"{venv_python.parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        [str(venv_python), "-m", "pytest", "-p", "no:cacheprovider", *selection, *pytest_args],
        cwd=ROOT,
        env=env,
    )
    return result.returncode == 0


def hashes(cells: list[Cell]) -> None:
    """Print the dag_hash each Airflow cell computes for every example (tests/airflow_probe.py, the
    processor's own parse and hash), so differences between minors are measured, not guessed."""
    table: dict[str, dict[str, str]] = {}
    for cell in cells:
        if not cell.airflow:
            continue
        venv_python = venv_for(cell)
        # One fixed folder for every cell: Airflow serializes the dags folder's path into the DAG.
        tmp = VENVS / "hash-probe"
        shutil.rmtree(tmp, ignore_errors=True)
        dags, home = tmp / "dags", tmp / "home"
        dags.mkdir(parents=True)
        home.mkdir()
        for path in (ROOT / "examples" / "packages").glob("*/airflow_dags/*.*"):
            shutil.copy(path, dags / path.name)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHONPATH"))}
        env.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__DAGS_FOLDER=str(dags),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        )
        out = home / "probe.json"
        run([str(venv_python), str(ROOT / "tests" / "airflow_probe.py"), str(dags), str(out)], env=env)
        for dag_id, value in json.loads(out.read_text())["hashes"].items():
            table.setdefault(dag_id, {})[cell.name] = value
    names = [cell.name for cell in cells if cell.airflow]
    print("| dag_id | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for dag_id, row in sorted(table.items()):
        print(f"| {dag_id} | " + " | ".join(f"`{row.get(name, '-')}`" for name in names) + " |")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="constraints/compat.py", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["generate", "test", "hashes", "list"])
    parser.add_argument("cells", nargs="*", help="cell names (default: all)")
    parser.add_argument("--pytest-args", default="", help="extra pytest arguments, space separated")
    args = parser.parse_args(argv)
    by_name = {cell.name: cell for cell in CELLS}
    unknown = [name for name in args.cells if name not in by_name]
    if unknown:
        parser.error(f"unknown cell(s) {', '.join(unknown)}; cells: {', '.join(by_name)}")
    cells = [by_name[name] for name in args.cells] or CELLS
    if args.command == "list":
        print("\n".join(cell.name for cell in cells))
        return 0
    if args.command == "hashes":
        hashes(cells)
        return 0
    if args.command == "generate":
        for cell in cells:
            generate(cell)
        return 0
    # Build (or check) every venv first, two at a time: installing is mostly download and unpacking.
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(venv_for, cells))
    print(f"compat: {len(cells)} venvs ready in {time.monotonic() - start:.0f} s", flush=True)
    results = []
    for cell in cells:
        print(f"\n=== compat: {cell.name} ===", flush=True)
        start = time.monotonic()
        ok = test(cell, args.pytest_args.split())
        results.append((cell.name, ok, time.monotonic() - start))
    print("\ncompat summary:")
    for name, ok, seconds in results:
        print(f"  {name:22} {'pass' if ok else 'FAIL'}  {seconds:6.0f} s")
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
