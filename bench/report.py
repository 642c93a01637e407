"""Summaries, ratios, target checks and the markdown section of docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
import shlex
import statistics
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.processor import PARSING_PROCESSES, TIMEOUT_S, CycleResult
from bench.task_parse import TaskParseResult

__all__ = [
    "SECTION",
    "command",
    "cycle_line",
    "cycle_summary",
    "failures",
    "fairness",
    "machine_facts",
    "markdown",
    "summarize_childcost",
    "summarize_cycles",
    "summarize_task_parse",
    "update_docs",
]

SECTION = "## Parse (dag-processor)"
DOC_INTRO = (
    "# Benchmarks\n\nMeasured numbers for dagfactory-s3, each section with the command that produced it.\n"
)
NAMES = {
    "stubs-warm": "stubs as deployed (image's `airflow_local_settings.py`)",
    "stubs": "stubs, plain Airflow",
    "handwritten": "hand-written KPO files",
    "dagfactory": "dag-factory 1.1",
}
# Our variants, first the one the Airflow image ships; each is compared with hand-written and dag-factory.
OURS = ("stubs-warm", "stubs")


def command(argv: list[str]) -> str:
    return " ".join([".venv/bin/python -m bench", *map(shlex.quote, argv)])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts() -> dict[str, Any]:
    mem = "unknown"
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, TypeError):
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "airflow": metadata.version("apache-airflow"),
        "cncf_kubernetes": metadata.version("apache-airflow-providers-cncf-kubernetes"),
        "dag_factory": metadata.version("dag-factory"),
        "jsonschema": metadata.version("jsonschema"),
        "dagfactory_s3": metadata.version("dagfactory-s3"),
        "loadavg_start": os.getloadavg(),
    }


def cycle_line(c: CycleResult) -> str:
    return (
        f"{c.variant}: wall {c.wall_s:.1f}s, window {c.window_s or 0:.1f}s, CPU {c.cpu_s:.1f}s, "
        f"(manager {c.manager_cpu_s:.1f}s), {c.dags} DAGs, {c.tasks} tasks, {c.import_errors} import errors"
    )


def cycle_summary(c: CycleResult) -> dict[str, Any]:
    return {"wall_s": c.wall_s, "window_s": c.window_s, "dags": c.dags, "import_errors": c.import_errors}


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize_cycles(cycles: dict[str, list[CycleResult]]) -> dict[str, Any]:
    """Per variant: every round, then medians; ``net`` subtracts the same round's empty-folder run."""
    empty = cycles["empty"]
    out: dict[str, Any] = {}
    for variant, runs in cycles.items():
        rounds = [
            {
                "wall_s": c.wall_s,
                "net_s": c.wall_s - empty[i].wall_s,
                "window_s": c.window_s,
                "cpu_s": c.cpu_s,
                "net_cpu_s": c.cpu_s - empty[i].cpu_s,
                "manager_cpu_s": c.manager_cpu_s - empty[i].manager_cpu_s,
                "children_cpu_s": c.cpu_s - c.manager_cpu_s,
                "files": c.files,
                "dags": c.dags,
                "tasks": c.tasks,
                "import_errors": c.import_errors,
                "stale": c.stale_or_missing,
                "file_median_s": c.file_median_s,
                "file_sum_s": c.file_sum_s,
            }
            for i, c in enumerate(runs)
        ]
        out[variant] = {
            "rounds": rounds,
            **{k: _median([r[k] for r in rounds if r[k] is not None]) for k in rounds[0] if k.endswith("_s")},
            **{k: rounds[-1][k] for k in ("files", "dags", "tasks", "import_errors", "stale")},
        }
    hand = out["handwritten"]
    for variant in (v for v in out if v not in ("handwritten", "empty")):
        out[variant]["ratio"] = {
            k: out[variant][k] / hand[k]
            for k in ("net_s", "window_s", "net_cpu_s", "manager_cpu_s", "children_cpu_s", "file_median_s")
            if hand[k]
        }
    return out


def fairness(stubs: CycleResult, hand: CycleResult) -> dict[str, int]:
    """How many DAGs serialize identically (folder path aside) from a stub and its hand-written file."""
    same = sum(1 for dag_id, shape in stubs.dag_shapes.items() if hand.dag_shapes.get(dag_id) == shape)
    return {"identical": same, "of": len(stubs.dag_shapes)}


def summarize_task_parse(
    cold: dict[str, TaskParseResult], warm: dict[str, TaskParseResult], dag_id: str, task_id: str
) -> dict[str, Any]:
    """Medians per variant; for each of our variants, ratios to hand-written and dag-factory's time over ours.

    ``beyond_operator``: the file's own cost once the KubernetesPodOperator module is imported (every
    variant imports it, and the task needs it to run). Measured directly for ours and hand-written
    (warm runs); for dag-factory, its cold parse minus the median operator import of the warm runs.
    """
    keys = ("parse_s", "parse_cpu_s", "process_wall_s", "process_cpu_s", "startup_s")
    out: dict[str, Any] = {"dag_id": dag_id, "task_id": task_id}
    for variant, r in cold.items():
        out[variant] = {
            "runs": len(r.runs),
            "ok": r.ok,
            "dags": r.runs[0]["dags"],
            **{k: r.median(k) for k in keys},
        }
    warm_runs = [row for r in warm.values() for row in r.runs]
    operator = {
        "operator_import_s": _median([row["operator_import_s"] for row in warm_runs]),
        "operator_import_cpu_s": _median([row["operator_import_cpu_s"] for row in warm_runs]),
    }
    out["operator_import"] = operator
    beyond = {
        v: {
            "runs": len(r.runs),
            "ok": r.ok,
            "parse_s": r.median("parse_s"),
            "parse_cpu_s": r.median("parse_cpu_s"),
        }
        for v, r in warm.items()
    }
    beyond["dagfactory"] = {
        "runs": out["dagfactory"]["runs"],
        "ok": out["dagfactory"]["ok"],
        "parse_s": out["dagfactory"]["parse_s"] - operator["operator_import_s"],
        "parse_cpu_s": out["dagfactory"]["parse_cpu_s"] - operator["operator_import_cpu_s"],
    }
    out["beyond_operator"] = beyond
    hand, dagf = out["handwritten"], out["dagfactory"]
    own = ("parse_s", "parse_cpu_s")
    out["ours"] = {
        v: {
            "vs_handwritten": {k: out[v][k] / hand[k] for k in keys},
            "dagfactory_over_ours": {k: dagf[k] / out[v][k] for k in keys},
            "own_vs_handwritten": {k: beyond[v][k] / beyond["handwritten"][k] for k in own},
            "own_dagfactory_over_ours": {k: beyond["dagfactory"][k] / beyond[v][k] for k in own},
        }
        for v in OURS
        if v in out and v in beyond
    }
    out["raw"] = {"cold": {v: r.runs for v, r in cold.items()}, "warm": {v: r.runs for v, r in warm.items()}}
    return out


# (stub case, hand-written case forked alternately from the same parent) in the order childcost runs them.
CHILD_PAIRS = (
    ("as the manager is (from the probe)", "stubs", "handwritten"),
    (
        "+ `dagfactory_s3.loader.warm()` (as the image's `airflow_local_settings.py`)",
        "stubs, Airflow-free dagfactory_s3 pre-imported",
        "handwritten, same parent",
    ),
    (
        "+ `dagfactory_s3.factory` imported too",
        "stubs, all of dagfactory_s3 pre-imported",
        "handwritten, same parent (all)",
    ),
)


def summarize_childcost(raw: dict[str, Any], raw_phases: dict[str, Any]) -> dict[str, Any]:
    """Medians per case; per parent state, the paired stub-minus-hand-written difference (same file name)."""
    cases = raw["cases"]
    out: dict[str, Any] = {
        "files": len(cases["stubs"]),
        "cases": {
            name: {
                "cpu_s": _median([r["cpu_s"] for r in rows]),
                "wall_s": _median([r["wall_s"] for r in rows]),
                "dags": sum(r.get("dags", 0) for r in rows),
                "errors": sum(r.get("errors", 0) for r in rows),
            }
            for name, rows in cases.items()
        },
        "pairs": [
            {
                "parent": label,
                "stub_cpu_s": _median([r["cpu_s"] for r in cases[stub]]),
                "hand_cpu_s": _median([r["cpu_s"] for r in cases[hand]]),
                "diff_cpu_s": _median(
                    [a["cpu_s"] - b["cpu_s"] for a, b in zip(cases[stub], cases[hand], strict=True)]
                ),
            }
            for label, stub, hand in CHILD_PAIRS
        ],
        "phases": {
            variant: {step: _median([r["phases"][step] for r in rows]) for step in rows[0]["phases"]}
            for variant, rows in raw_phases["cases"].items()
        },
    }
    return out


def failures(results: dict[str, Any]) -> list[str]:
    """Correctness, not speed: every variant registered every DAG and task with no import error."""
    problems = []
    expected = results["expected"]
    for variant in results["cycles"]:
        if variant == "empty":
            continue
        c = results["cycles"][variant]
        if c["dags"] != expected["dags"] or c["tasks"] != expected["tasks"]:
            problems.append(f"{variant}: {c['dags']} DAGs / {c['tasks']} tasks, expected {expected}")
        if c["import_errors"] or c["stale"]:
            problems.append(f"{variant}: {c['import_errors']} import errors, {c['stale']} stale DAGs")
        tp = results["task_parse"]
        if variant in tp and (
            not tp[variant]["ok"] or not tp["beyond_operator"].get(variant, {"ok": True})["ok"]
        ):
            problems.append(f"{variant}: a per-task parse did not find {results['task_parse']['dag_id']}")
    for name, entry in results["childcost"]["cases"].items():
        if entry["errors"] or entry["dags"] != results["childcost"]["files"]:
            problems.append(f"child cost {name}: {entry['dags']} DAGs, {entry['errors']} import errors")
    if results["probe"]["stub_dags"] != 1 or results["probe"]["stub_import_errors"]:
        problems.append("probe: the stub with a sys.modules snapshot did not load")
    return problems


# --- markdown ------------------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _x(value: float) -> str:
    return f"{value:.2f}×"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _check(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _variants(table: dict[str, Any]) -> list[str]:
    return [v for v in NAMES if v in table]


def markdown(results: dict[str, Any]) -> str:
    m, cyc, tp, cc, pr = (results[k] for k in ("machine", "cycles", "task_parse", "childcost", "probe"))
    n = results["n"]
    rounds = len(cyc["handwritten"]["rounds"])
    command = results["command"]
    args = command.split(" -m bench", 1)[1].strip()
    lines = [
        SECTION,
        "",
        f"N = {n:,} DAGs ({results['expected']['tasks']:,} KubernetesPodOperator tasks, 1–3 per DAG), the same DAGs "
        "three ways, measured side by side in one run: our stubs + manifests, hand-written KPO files building the "
        "same operators with the same arguments, and dag-factory 1.1 (one loader `.py`, one YAML per DAG, "
        "objects via `__type__`). Our stubs run twice: as the Airflow image ships them, with "
        "`deploy/airflow/airflow_local_settings.py` calling `dagfactory_s3.loader.warm()`, and on plain Airflow.",
        "",
        "```",
        f"make bench BENCH_ARGS='{args}'" if args else "make bench",
        f"# = {command}",
        "```",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, {m['os']}; Python {m['python']}, "
        f"apache-airflow {m['airflow']}, cncf-kubernetes provider {m['cncf_kubernetes']}, dag-factory "
        f"{m['dag_factory']}, jsonschema {m['jsonschema']}, dagfactory-s3 {m['dagfactory_s3']}. Run on {m['date']}; "
        f"load average {m['loadavg_start'][0]:.1f} at start, {m['loadavg_end'][0]:.1f} at end (a shared VM: wall "
        "times carry that noise, CPU seconds less but still some — compare within a run, and across rounds). "
        f"Whole run: {results['elapsed_s'] / 60:.1f} min. `dagfactory_s3` bytecode is recompiled where stale before "
        "each measurement, as a wheel install has it (this checkout runs with `PYTHONDONTWRITEBYTECODE=1`)"
        + (
            f"; stale again at the end: {', '.join(results['stale_bytecode_end'])}."
            if results.get("stale_bytecode_end")
            else "."
        ),
        "",
        "Settings for every variant (each with its own `AIRFLOW_HOME` and a freshly migrated SQLite DB per run): "
        f"`[core] load_examples=False`, `[dag_processor] parsing_processes={PARSING_PROCESSES}`, "
        "`file_parsing_sort_mode=modified_time`, `dag_version_inflation_check_level=error` (as docs/deploy.md), "
        "`parsing_pre_import_modules=True` (default); "
        f"`[core] dagbag_import_timeout` and `[dag_processor] dag_file_processor_timeout` raised to {TIMEOUT_S} s "
        "for all, because dag-factory builds all N DAGs in one file and the defaults (30 s / 50 s) would kill it.",
        "",
        f"### Full cycle: `airflow dag-processor --num-runs 1` ({rounds} round{'s' if rounds > 1 else ''}, median)",
        "",
        "| variant | files | DAGs registered | tasks | import errors | wall s | net s | processor window s | "
        "CPU s (net) | manager CPU s | children CPU s | per-file s (median) | window / hand-written | "
        "CPU / hand-written |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for variant in _variants(cyc):
        c = cyc[variant]
        ratio = c.get("ratio", {"window_s": 1.0, "net_cpu_s": 1.0})
        lines.append(
            f"| {NAMES[variant]} | {c['files']} | {c['dags']:,} | {c['tasks']:,} | {c['import_errors']} | "
            f"{_s(c['wall_s'])} | {_s(c['net_s'])} | {_s(c['window_s'])} | {_s(c['net_cpu_s'])} | "
            f"{_s(c['manager_cpu_s'])} | {_s(c['children_cpu_s'])} | {_s(c['file_median_s'])} | "
            f"{_x(ratio['window_s'])} | {_x(ratio['net_cpu_s'])} |"
        )
    e = cyc["empty"]
    spread = "; ".join(
        f"{NAMES[v]} "
        + ", ".join(f"{r['window_s']:.0f} s / {r['net_cpu_s']:.0f} s" for r in cyc[v]["rounds"])
        for v in _variants(cyc)
    )
    lines += [
        f"| empty folder (start-up) | 0 | 0 | 0 | 0 | {_s(e['wall_s'])} | – | {_s(e['window_s'])} | "
        f"({_s(e['cpu_s'])} total) | | | – | | |",
        "",
        "*wall*: the whole command; *net*: wall minus the empty-folder run of the same round; *processor window*: "
        "the processor's own log, `Found N files` to `Exiting dag parsing loop`; *CPU*: user+sys of the processor "
        "and all its parsing children (from `rusage`), minus the empty run, split into the manager process itself "
        "(minus the empty run's) and its forked parsing children; *per-file*: Airflow's "
        "`dag.last_parse_duration` (fork to result, as the manager measures it). DAG, task and import-error "
        "counts are read from each run's database (`serialized_dag`, `import_error`).",
        "",
        f"Each round, processor window / CPU: {spread}. The spread between rounds of one variant is the noise "
        "to read the ratios against.",
        "",
        f"Fair comparison: {results['fairness']['identical']:,} of {results['fairness']['of']:,} stub DAGs serialize "
        "byte-identically to their hand-written twin (the serialized DAG from the database, folder path aside).",
        "",
        f"### Per-task parse: one DAG loaded the way a worker's task runner does ({tp['dag_id']}.{tp['task_id']})",
        "",
        "A fresh interpreter imports the task runner and `BundleDagBag` (and with it Airflow's settings, so "
        "`airflow_local_settings.py` where the home has one), then runs "
        "`BundleDagBag(dag_folder=<file>, safe_mode=False, load_op_links=False, bundle_path=...)` exactly as "
        "`task_runner.parse()` does; *parse* is that call (Airflow logs it as `dag_file_parse_ms`), *process* the "
        "whole interpreter. Median of the runs.",
        "",
        "| variant | runs | DAGs built | parse s | parse CPU s | process wall s | process CPU s | parse / hand-written "
        "| parse CPU / hand-written |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    hand_t = tp["handwritten"]
    for variant in _variants(tp):
        t = tp[variant]
        lines.append(
            f"| {NAMES[variant]} | {t['runs']} | {t['dags']:,} | {_s(t['parse_s'])} | {_s(t['parse_cpu_s'])} | "
            f"{_s(t['process_wall_s'])} | {_s(t['process_cpu_s'])} | {_x(t['parse_s'] / hand_t['parse_s'])} | "
            f"{_x(t['parse_cpu_s'] / hand_t['parse_cpu_s'])} |"
        )
    bo, op = tp["beyond_operator"], tp["operator_import"]
    lines += [
        "",
        "Most of a cold parse is importing the KubernetesPodOperator module (kubernetes client and all), which every "
        "variant needs and the task needs to run anyway: "
        f"{_s(op['operator_import_s'])} s ({_s(op['operator_import_cpu_s'])} s CPU) when imported on its own. "
        "The file's own cost once that module is loaded (the child imports it first, then parses; for dag-factory, "
        "its cold parse minus that import):",
        "",
        "| variant | runs | file's own parse s | CPU s | / hand-written (wall) | / hand-written (CPU) |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for variant in _variants(bo):
        b = bo[variant]
        lines.append(
            f"| {NAMES[variant]}{' (derived)' if variant == 'dagfactory' else ''} | {b['runs']} | "
            f"{b['parse_s']:.3f} | {b['parse_cpu_s']:.3f} | {_x(b['parse_s'] / bo['handwritten']['parse_s'])} | "
            f"{_x(b['parse_cpu_s'] / bo['handwritten']['parse_cpu_s'])} |"
        )
    lines += ["", "### Targets (issue 2), ratios from this run", "", "| target | variant | wall | | CPU | |"]
    lines.append("|---|---|--:|---|--:|---|")
    for v in (v for v in OURS if v in cyc and v in tp["ours"]):
        rc, rt = cyc[v]["ratio"], tp["ours"][v]
        name = NAMES[v]
        lines += [
            f"| full cycle ≤ 1.0× hand-written | {name} | {_x(rc['window_s'])} (window; net {_x(rc['net_s'])}) | "
            f"{_check(rc['window_s'] <= 1.0)} | {_x(rc['net_cpu_s'])} | {_check(rc['net_cpu_s'] <= 1.0)} |",
            f"| per-task parse ≤ 1.05× hand-written | {name} | {_x(rt['vs_handwritten']['parse_s'])} | "
            f"{_check(rt['vs_handwritten']['parse_s'] <= 1.05)} | {_x(rt['vs_handwritten']['parse_cpu_s'])} | "
            f"{_check(rt['vs_handwritten']['parse_cpu_s'] <= 1.05)} |",
            f"| per-task parse ≥ 100× faster than dag-factory | {name} | "
            f"{rt['dagfactory_over_ours']['parse_s']:.0f}× | {_check(rt['dagfactory_over_ours']['parse_s'] >= 100)} | "
            f"{rt['dagfactory_over_ours']['parse_cpu_s']:.0f}× | "
            f"{_check(rt['dagfactory_over_ours']['parse_cpu_s'] >= 100)} |",
            f"| … the file's own cost, beyond the operator import | {name} | "
            f"{rt['own_dagfactory_over_ours']['parse_s']:.0f}× | "
            f"{_check(rt['own_dagfactory_over_ours']['parse_s'] >= 100)} | "
            f"{rt['own_dagfactory_over_ours']['parse_cpu_s']:.0f}× | "
            f"{_check(rt['own_dagfactory_over_ours']['parse_cpu_s'] >= 100)} |",
            f"| (the file's own cost vs hand-written) | {name} | {_x(rt['own_vs_handwritten']['parse_s'])} | | "
            f"{_x(rt['own_vs_handwritten']['parse_cpu_s'])} | |",
            f"| (whole worker process, dag-factory / ours) | {name} | "
            f"{rt['dagfactory_over_ours']['process_wall_s']:.1f}× | | "
            f"{rt['dagfactory_over_ours']['process_cpu_s']:.1f}× | |",
        ]
    warmed = pr.get("warmed")
    lines += [
        "",
        "### What a dag-processor child has already imported",
        "",
        "A real `airflow dag-processor` run over a one-file folder: the canonical stub with a snapshot of "
        "`sys.modules` taken before its first line, and a control file with no `airflow.*` import.",
        "",
        "| module | in the stub's child | in the control child |"
        + (" in the stub's child, with the image's `airflow_local_settings.py` |" if warmed else ""),
        "|---|---|---|" + ("---|" if warmed else ""),
        *(
            f"| `{mod}` | {_yes(pr['with_stub'][mod])} | {_yes(pr['control'][mod])} |"
            + (f" {_yes(warmed[mod])} |" if warmed else "")
            for mod in pr["with_stub"]
        ),
        "",
        f"### Cost of one dag-processor child ({cc['files']} stub/hand-written pairs, median)",
        "",
        "A parent rebuilt from the probe's `sys.modules` with `gc.freeze()`, the real `_pre_import_airflow_modules`, "
        "`fork`, and the real `_parse_file` in the child; CPU from `wait4`. Stub and hand-written children of the "
        "same DAG are forked one after the other from the same parent; then the parent is warmed "
        "(`dagfactory_s3.loader.warm()`, later also `import dagfactory_s3.factory`) and the pairs run again.",
        "",
        "| parent | stub child CPU ms | hand-written child CPU ms | stub − hand-written, paired, ms |",
        "|---|--:|--:|--:|",
        *(
            f"| {p['parent']} | {p['stub_cpu_s'] * 1000:.1f} | {p['hand_cpu_s'] * 1000:.1f} | "
            f"{p['diff_cpu_s'] * 1000:+.1f} |"
            for p in cc["pairs"]
        ),
        "",
        "| step inside a child (CPU ms, median) | stub | hand-written |",
        "|---|--:|--:|",
    ]
    sp, hp = cc["phases"]["stubs"], cc["phases"]["handwritten"]
    for step in sp:
        other = f"{hp[step] * 1000:.1f}" if step in hp else ""
        lines.append(f"| {step} | {sp[step] * 1000:.1f} | {other} |")
    for step in hp:
        if step not in sp:
            lines.append(f"| {step} | | {hp[step] * 1000:.1f} |")
    lines += ["", *_findings(results), ""]
    return "\n".join(lines)


def _findings(results: dict[str, Any]) -> list[str]:
    """Plain statements computed from this run's numbers."""
    cyc, tp, cc, pr, n = (results[k] for k in ("cycles", "task_parse", "childcost", "probe", "n"))
    hand, stubs, dagf = cyc["handwritten"], cyc["stubs"], cyc["dagfactory"]
    kpo = "airflow.providers.cncf.kubernetes.operators.pod"
    cold, core, full = cc["pairs"]
    sp, hp = cc["phases"]["stubs"], cc["phases"]["handwritten"]
    imports = (sp["import dagfactory_s3.loader"] + sp["import factory+manifest+schema"]) * 1000

    def per_dag(c: dict, key: str) -> float:
        return c[key] / c["dags"] * 1000

    out = [
        "### Findings",
        "",
        f"- Pre-import: the stub's top-level `import {kpo}` "
        + (
            "**is** pre-imported by the dag-processor manager (`_pre_import_airflow_modules`) before it forks the "
            "stub's child"
            if pr["with_stub"][kpo] and not pr["control"][kpo]
            else "is **not** pre-imported as intended"
        )
        + ". `dagfactory_s3` is "
        + ("not" if not pr["with_stub"]["dagfactory_s3"] else "")
        + " (only `airflow.*` names are pre-imported), so on plain Airflow every child imports it; `jsonschema` "
        + (
            "is already in the manager (Airflow imports it), so it costs a child nothing."
            if pr["control"]["jsonschema"]
            else "is not in the manager, so every child imports it."
        ),
        f"- One stub child costs {cold['stub_cpu_s'] * 1000:.1f} ms CPU against {cold['hand_cpu_s'] * 1000:.1f} ms "
        f"for a hand-written file ({cold['diff_cpu_s'] * 1000:+.1f} ms paired). Importing `dagfactory_s3` (loader, "
        f"factory, manifest, schema modules) is {imports:.1f} ms of the child, building the schema validator "
        f"{sp['build schema validator'] * 1000:.1f} ms, validating the manifest {sp['validate manifest'] * 1000:.1f} "
        f"ms; building the DAG takes {sp['build DAG'] * 1000:.1f} ms where the hand-written file takes "
        f"{hp['compile+execute file'] * 1000:.1f} ms to compile and execute. After `dagfactory_s3.loader.warm()` in "
        f"the parent the paired difference is {core['diff_cpu_s'] * 1000:+.1f} ms; importing "
        f"`dagfactory_s3.factory` there too, {full['diff_cpu_s'] * 1000:+.1f} ms.",
        f"- Where a full cycle goes: the manager process itself spends {per_dag(hand, 'manager_cpu_s'):.0f} ms CPU "
        f"per DAG file (hand-written) / {per_dag(stubs, 'manager_cpu_s'):.0f} ms (stubs) on its side of each parse "
        "(pre-import scan, process supervision, receiving the result, writing the serialized DAG, its version and "
        f"code to the database); the parsing children {per_dag(hand, 'children_cpu_s'):.0f} / "
        f"{per_dag(stubs, 'children_cpu_s'):.0f} ms. With 2 cores for one manager and 2 parsing processes the "
        "cycle is CPU-bound, so extra CPU in the children shows in the wall time too.",
    ]
    if "stubs-warm" in cyc:
        warm = cyc["stubs-warm"]
        out.append(
            "- As deployed (the image's `airflow_local_settings.py`, imported by every Airflow process at start-up, "
            "calls `dagfactory_s3.loader.warm()`, so the manager holds the parse modules and the validator before it "
            f"forks): full cycle {warm['ratio']['window_s']:.2f}× hand-written (window), "
            f"{warm['ratio']['net_cpu_s']:.2f}× (CPU); children {per_dag(warm, 'children_cpu_s'):.0f} ms CPU per DAG "
            f"against {per_dag(stubs, 'children_cpu_s'):.0f} ms on plain Airflow and "
            f"{per_dag(hand, 'children_cpu_s'):.0f} ms hand-written."
        )
    out.append(
        f"- dag-factory's one-file cycle takes {dagf['ratio']['window_s']:.2f}× the hand-written window (its manager "
        f"spends {per_dag(dagf, 'manager_cpu_s'):.0f} ms per DAG: per-file overhead is paid once), but every task "
        f"start then rebuilds all {n:,} DAGs: {tp['dagfactory']['parse_s']:.1f} s per task against "
        f"{tp['stubs']['parse_s']:.2f} s for a stub."
    )
    checked = results.get("dagfactory_default_timeouts")
    if checked:
        settings = ", ".join(f"`{k}={v}`" for k, v in checked["settings"].items())
        out.append(
            f"- dag-factory's single file took {dagf['file_median_s']:.1f} s in the dag-processor. Run again with "
            f"Airflow's defaults ({settings}): {checked['dags']:,} DAGs registered, "
            f"{checked['import_errors']} import error(s)."
        )
    elif dagf["file_median_s"] > 30:
        out.append(
            f"- dag-factory's single file took {dagf['file_median_s']:.1f} s in the dag-processor, over Airflow's "
            "default `[core] dagbag_import_timeout` of 30 s (not re-run here with the defaults)."
        )
    return out


def update_docs(path: Path, section: str) -> None:
    """Replace our section (up to the next ``## `` heading) or append it; create the file if needed."""
    text = path.read_text() if path.exists() else DOC_INTRO
    start = text.find(SECTION + "\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        nxt = text.find("\n## ", start + len(SECTION))
        rest = text[nxt + 1 :] if nxt != -1 else ""
        text = text[:start] + section + ("\n" + rest if rest else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n")
