"""``python -m bench.check_bound``: the worst cost of checking one manifest, at the limits.

A manifest is checked wherever it is read (validate, plan, publish, the sidecar, the loader). Its
limits -- 256 KiB, ``MAX_EVALUATED_VALUES`` JSON values counted once per pass (the manifest and each
environment), patterns that cannot backtrack -- bound that work. This builds hostile manifests that sit
at or just under those limits, and one far over them, and times ``manifest.parse`` on each (best of
``--rounds``), side by side with the shipped example it grows from, in one run.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dagfactory_s3 import manifest
from dagfactory_s3.errors import ManifestError
from dagfactory_s3.manifest.model import MAX_EVALUATED_VALUES

EXAMPLE = Path(__file__).resolve().parent.parent / "examples/packages/pipeline_processing/airflow_dags"
PACKAGE = "pipeline_processing"


def _base() -> dict[str, Any]:
    return json.loads((EXAMPLE / "pipeline_processing_example_job.json").read_bytes())


def _tasks(n: int, env_vars: int = 0) -> dict[str, Any]:
    doc = _base()
    job = doc.pop("job")
    job.pop("outlets")
    doc["task_defaults"] = {k: v for k, v in job.items() if k not in ("name", "command", "arguments")}
    doc["tasks"] = [
        {
            "task_id": f"t{i}",
            "command": ["x"],
            "depends_on": [f"t{i - 1}"] if i else [],
            **({"env": {f"V{j}": "x" for j in range(env_vars)}} if env_vars else {}),
        }
        for i in range(n)
    ]
    return doc


def _largest(make: Callable[[int], dict[str, Any]], hi: int = 100_000) -> dict[str, Any]:
    """The largest ``make(n)`` that is still accepted for checking (within the byte and value bounds)."""

    def fits(n: int) -> bool:
        doc = make(n)
        raw = json.dumps(doc).encode()
        values, passes = manifest.evaluated_values(doc)
        return len(raw) <= manifest.MAX_BYTES and values * passes <= MAX_EVALUATED_VALUES

    lo = 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return make(lo)


def _with_envs(n: int) -> dict[str, Any]:
    doc = _tasks(200, env_vars=n)
    overlay = {"task_defaults": {"resources": {"limits": {"cpu": "2", "memory": "8Gi"}}}}
    doc["environments"] = {f"e{i}": copy.deepcopy(overlay) for i in range(20)}
    return doc


def _pattern(n: int) -> dict[str, Any]:
    doc = _base()
    doc["params"] = {"p": {"type": "string", "pattern": "^[a-z]*x$", "default": "a" * n}}
    return doc


def _overlays(n: int) -> dict[str, Any]:
    doc = _base()
    doc["environments"] = {f"e{i}": {"job": {"env": {"A": "b"}}} for i in range(n)}
    return doc


CASES: dict[str, Callable[[], dict[str, Any]]] = {
    "the example (1 task)": _base,
    "200 tasks (the task cap)": lambda: _tasks(200),
    "tasks at the value bound": lambda: _largest(lambda n: _tasks(n)),
    "200 tasks x 20 environments at the value bound": lambda: _largest(_with_envs, hi=200),
    "a 200 KiB default against a param pattern": lambda: _pattern(200_000),
    "6,700 environments (over the value bound: refused first)": lambda: _overlays(6_700),
}


def _unbounded(doc: Any, file: str) -> None:
    return None


def measure(rounds: int) -> list[dict[str, Any]]:
    rows = []
    cases = dict(CASES)
    cases["6,700 environments, value bound switched off (as before it)"] = CASES[
        "6,700 environments (over the value bound: refused first)"
    ]
    for name, make in cases.items():
        bounded = manifest._work_problem
        if "switched off" in name:
            manifest._work_problem = _unbounded  # what the check cost before the bound, in the same run
            rounds_here = 1
        else:
            rounds_here = rounds
        doc = copy.deepcopy(make())
        raw = json.dumps(doc).encode()
        best = float("inf")
        outcome = "accepted"
        for _ in range(rounds_here):
            start = time.perf_counter()
            try:
                manifest.parse(raw, file="m.json", package=PACKAGE)
            except ManifestError as exc:
                first = str(exc).splitlines()[0]
                outcome = "refused: " + first.split(": ", 2)[-1][:70]
            finally:
                manifest._work_problem = bounded
            best = min(best, time.perf_counter() - start)
        values, passes = manifest.evaluated_values(doc)
        rows.append(
            {
                "case": name,
                "bytes": len(raw),
                "values": values * passes,
                "ms": best * 1000,
                "outcome": outcome,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"| manifest | bytes | values checked | check (best of {args.rounds}) | outcome |")
    print("|---|---:|---:|---:|---|")
    for row in measure(args.rounds):
        print(
            f"| {row['case']} | {row['bytes']:,} | {row['values']:,} | {row['ms']:.0f} ms | {row['outcome']} |"
        )


if __name__ == "__main__":
    main()
