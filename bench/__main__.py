"""``python -m bench`` (``make bench``): parse cost of stubs vs hand-written DAGs vs dag-factory 1.1.

One run, side by side, same machine and settings:

1. corpus: N manifests + stubs, the same DAGs hand-written, the same DAGs as dag-factory YAML;
2. probe: what a real dag-processor child has imported before it runs a stub's first line;
3. full cycle: ``airflow dag-processor --num-runs 1`` per variant (plus an empty folder for start-up);
4. per-task parse: the worker's load of one DAG file in fresh interpreters;
5. child cost: CPU per dag-processor child, and where a stub child's time goes.

Results: a table on stdout, ``<out>/results.json``, and with ``--update-docs`` the
"## Parse (dag-processor)" section of docs/benchmarks.md (other sections are left alone).
``--render-only`` re-renders an earlier run's ``results.json`` without measuring anything.

The default (N=1,000, one round) takes about 10-15 minutes on 2 cores, more on a busy machine;
``--n 100`` a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bench import bytecode, childcost, corpus, probe, processor, report, task_parse

ROOT = Path(__file__).resolve().parent.parent
CHILDCOST_FILES = 40


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="number of DAGs (default 1000)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out", help="work directory (bench/out)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="full dag-processor cycles per variant (default 1)"
    )
    parser.add_argument("--repeat", type=int, default=10, help="per-task parse runs per variant (default 10)")
    parser.add_argument(
        "--repeat-dagfactory",
        type=int,
        default=3,
        help="per-task parse runs for dag-factory, which builds all N DAGs each time (default 3)",
    )
    parser.add_argument(
        "--repeat-warm",
        type=int,
        default=5,
        help="per-task parse runs with the operator module imported first, stubs and hand-written (default 5)",
    )
    parser.add_argument(
        "--childcost-files", type=int, default=CHILDCOST_FILES, help="files per child-cost profile"
    )
    parser.add_argument(
        "--no-local-settings",
        action="store_true",
        help="skip the stubs-as-deployed variant (the image's airflow_local_settings.py)",
    )
    parser.add_argument(
        "--dagfactory-default-timeouts",
        action="store_true",
        help="also run dag-factory's cycle with Airflow's default import/processor timeouts",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: render <out>/results.json of an earlier run (with --update-docs, into the docs)",
    )
    parser.add_argument(
        "--update-docs", action="store_true", help="rewrite our section of docs/benchmarks.md"
    )
    return parser


def _step(message: str) -> float:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
    return time.perf_counter()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out: Path = args.out.resolve()
    if args.render_only:
        return _render(json.loads((out / "results.json").read_text()), update_docs=args.update_docs)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict = {"n": args.n, "command": report.command(argv if argv is not None else sys.argv[1:])}
    results["machine"] = report.machine_facts()

    _step(f"writing the corpus: {args.n} DAGs x 3 variants")
    c = corpus.write_corpus(out / "corpus", args.n)
    results["expected"] = corpus.expected_counts(args.n)
    folders = {"empty": out / "corpus" / "empty", **c.folders}
    folders["empty"].mkdir(exist_ok=True)
    local_settings = None if args.no_local_settings else processor.local_settings_text()
    if local_settings is not None:
        folders["stubs-warm"] = c.folders[
            "stubs"
        ]  # the same files, in a home with the image's local settings
    homes = {v: out / "homes" / v for v in folders}

    _step("probing what a dag-processor child has pre-imported")
    sample_manifest = c.folders["stubs"] / f"{c.sample_dag_id}.json"
    results["probe"] = asdict(probe.run_probe(out / "probe", sample_manifest, local_settings=local_settings))
    modules_file = out / "probe" / "manager-modules.json"
    modules_file.write_text(json.dumps(results["probe"].pop("modules")))

    _step("migrating one SQLite database per variant")
    for variant, folder in folders.items():
        processor.prepare_home(
            homes[variant], folder, local_settings=local_settings if variant == "stubs-warm" else None
        )

    cycles: dict[str, list[processor.CycleResult]] = {v: [] for v in folders}
    order = list(folders)
    for round_ in range(args.rounds):
        for variant in order[round_ % len(order) :] + order[: round_ % len(order)]:
            _step(f"round {round_ + 1}/{args.rounds}: airflow dag-processor --num-runs 1 over {variant}")
            cycle = processor.run_cycle(variant, homes[variant], folders[variant])
            cycles[variant].append(cycle)
            print(f"[bench]   {report.cycle_line(cycle)}", file=sys.stderr, flush=True)
    results["cycles"] = report.summarize_cycles(cycles)
    results["fairness"] = report.fairness(cycles["stubs"][-1], cycles["handwritten"][-1])
    if args.dagfactory_default_timeouts:
        from airflow.configuration import conf

        defaults = {
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": conf.get_default_value("core", "dagbag_import_timeout"),
            "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": conf.get_default_value(
                "dag_processor", "dag_file_processor_timeout"
            ),
        }
        _step(f"dag-factory again with Airflow's default timeouts {defaults}")
        home = out / "homes" / "dagfactory-default-timeouts"
        processor.prepare_home(home, c.folders["dagfactory"])
        cycle = processor.run_cycle("dagfactory", home, c.folders["dagfactory"], **defaults)
        results["dagfactory_default_timeouts"] = {"settings": defaults, **report.cycle_summary(cycle)}

    _step(
        f"per-task parse: {args.repeat} fresh interpreters per variant ({args.repeat_dagfactory} for dag-factory)"
    )
    ours = ["stubs-warm", "stubs"] if "stubs-warm" in folders else ["stubs"]
    jobs = [
        (v, processor.airflow_env(homes[v], folders[v]), c.sample_file(source), folders[v])
        for v, source in [
            *((v, "stubs") for v in ours),
            ("handwritten", "handwritten"),
            ("dagfactory", "dagfactory"),
        ]
    ]
    repeats = {v: args.repeat for v in [*ours, "handwritten"]} | {"dagfactory": args.repeat_dagfactory}
    parsed = task_parse.measure(jobs, c.sample_dag_id, c.sample_task_id, repeats)
    _step(
        f"per-task parse, operator module imported first: {args.repeat_warm} runs for ours and hand-written"
    )
    warm_repeats = {v: args.repeat_warm for v in [*ours, "handwritten"]}
    warm = task_parse.measure(jobs, c.sample_dag_id, c.sample_task_id, warm_repeats, warm=True)
    results["task_parse"] = report.summarize_task_parse(parsed, warm, c.sample_dag_id, c.sample_task_id)

    _step(
        f"child cost: {args.childcost_files} stub/hand-written pairs of forked children, parent rebuilt from the probe"
    )
    env = processor.airflow_env(homes["stubs"], c.folders["stubs"])
    pair = (modules_file, c.folders["stubs"], c.folders["handwritten"], args.childcost_files)
    raw = childcost.run(env, *pair, out / "childcost.json")
    raw_phases = childcost.run(env, *pair, out / "childcost-phases.json", "--phases")
    results["childcost"] = report.summarize_childcost(raw, raw_phases)

    results["machine"]["loadavg_end"] = os.getloadavg()
    results["stale_bytecode_end"] = bytecode.stale_modules()
    results["elapsed_s"] = time.perf_counter() - started
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    return _render(results, update_docs=args.update_docs)


def _render(results: dict, *, update_docs: bool) -> int:
    section = report.markdown(results)
    print(section)
    if update_docs:
        report.update_docs(ROOT / "docs" / "benchmarks.md", section)
        _step("updated docs/benchmarks.md")
    failures = report.failures(results)
    for failure in failures:
        print(f"[bench] CHECK FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
