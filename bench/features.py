"""Parse cost of the example manifests, task-level features included (``python -m bench.features``).

The examples (``examples/packages/*/airflow_dags/*.json`` and ``examples/features/``) are copied ``--copies`` times each under new
dag_ids; each copy is written twice, as a manifest + canonical stub and as the hand-written DAG file
that builds the same operators (:func:`bench.baseline.python_source`: ``partial().expand()``,
``TaskGroup``, ``.output`` included, so both serialize identically). Then :mod:`bench.childcost`
forks a stub child and a hand-written child per copy, alternately, from one parent rebuilt from a real
dag-processor child's modules (the probe), and reports the median CPU per child for each example.

``--baseline-root DIR`` also runs the child-cost step from an older checkout (its ``bench.childcost``
and its ``dagfactory_s3``) on the examples that checkout can parse, so the stub-over-hand-written
ratio of today's code and of the older one come from the same run, side by side.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

from bench import baseline, childcost, probe, processor
from dagfactory_s3 import manifest, stub

ROOT = Path(__file__).resolve().parent.parent


def write_folders(out: Path, copies: int, examples: Path = ROOT / "examples") -> tuple[Path, Path]:
    stubs, hand = out / "stubs", out / "handwritten"
    for folder in (stubs, hand):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    paths = sorted(examples.glob("packages/*/airflow_dags/*.json"))
    for path in [*paths, *sorted(examples.glob("features/airflow_dags/*.json"))]:
        document = json.loads(path.read_bytes())
        for i in range(copies):
            dag_id = f"{document['dag_id'][:56]}_c{i:02d}"
            raw = json.dumps({**document, "dag_id": dag_id}).encode()
            m = manifest.parse(raw, file=f"{dag_id}.json")
            (stubs / f"{dag_id}.json").write_bytes(raw)
            (stubs / f"{dag_id}.py").write_bytes(stub.render(f"{dag_id}.json"))
            (hand / f"{dag_id}.py").write_text(baseline.python_source(m))
    return stubs, hand


def child_cost(root: Path, env: dict[str, str], modules: Path, stubs: Path, hand: Path, out: Path) -> dict:
    files = len(list(stubs.glob("*.py")))
    return childcost.run(env, modules, stubs, hand, files, out, root=root)


def by_example(raw: dict, stubs: Path) -> dict[str, dict[str, float]]:
    """Median child CPU (ms) per example, stub and hand-written (the as-deployed-without-warm parent)."""
    names = sorted(p.name for p in stubs.glob("*.py"))
    rows: dict[str, dict[str, list[float]]] = {}
    for name, s, h in zip(names, raw["cases"]["stubs"], raw["cases"]["handwritten"], strict=True):
        example = name.rsplit("_c", 1)[0]
        entry = rows.setdefault(example, {"stub": [], "hand": [], "diff": []})
        entry["stub"].append(s["cpu_s"] * 1000)
        entry["hand"].append(h["cpu_s"] * 1000)
        entry["diff"].append((s["cpu_s"] - h["cpu_s"]) * 1000)
        if s.get("errors") or h.get("errors"):
            raise RuntimeError(f"{name}: import errors in a child: {s} {h}")
    return {
        example: {k: round(statistics.median(v), 1) for k, v in entry.items()} | {"n": len(entry["stub"])}
        for example, entry in rows.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.features", description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10, help="copies of each example (default 10)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "features")
    parser.add_argument("--baseline-root", type=Path, help="an older checkout to compare with")
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    stubs, hand = write_folders(out, args.copies)
    one = next(stubs.glob("*.json"))
    modules = out / "modules.json"
    modules.write_text(json.dumps(probe.run_probe(out / "probe", one).modules))
    env = processor.airflow_env(out / "home", stubs)
    results = {"today": by_example(child_cost(ROOT, env, modules, stubs, hand, out / "today.json"), stubs)}
    if args.baseline_root:
        # the older checkout's own examples (today's use fields it cannot read), through both versions
        old_stubs, old_hand = write_folders(out / "baseline", args.copies, args.baseline_root / "examples")
        env = processor.airflow_env(out / "home-baseline", old_stubs)
        # today's code on the same files, then the older checkout's, back to back
        results["today, examples of the baseline"] = by_example(
            child_cost(ROOT, env, modules, old_stubs, old_hand, out / "today-old.json"), old_stubs
        )
        results["baseline"] = by_example(
            child_cost(args.baseline_root, env, modules, old_stubs, old_hand, out / "baseline.json"),
            old_stubs,
        )
    print(json.dumps(results, indent=2))
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
