"""The dag-processor at 5,000 DAGs (``make bench-scale-processor``): first parse, steady state, publish -> visible.

One run on this machine, real processes: a moto server on 127.0.0.1, ``airflow-dag-sync`` serving the
environment into a dags folder, the real ``airflow dag-processor`` on SQLite. The environment is
bench/scale_bench.py's (seeded): 50 packages of 100 DAGs with 1-5 tasks each, a platform policy, and
one package (``pkg000``) published by the real ``airflow-dag-publisher``. Measured:

* **first full parse**, side by side: ``airflow dag-processor --num-runs 1`` (bench/processor.py's
  cycle, a fresh database each) over the served folder (stubs, with the image's
  ``airflow_local_settings.py``) and over hand-written KubernetesPodOperator files building the same
  DAGs (bench/baseline.py, captured under the same policy); wall, CPU (manager and children), and how
  many DAGs serialize identically;
* **start-up of a long-running dag-processor** with the recommended settings (docs/deploy.md): the
  initial parse of every file, its CPU and the peak RSS of the manager and of one parsing child;
* **steady state**: ``--steady`` seconds of idle with the same settings (CPU seconds per minute of the
  dag-processor with its children, and of the sidecar; DAG versions created; files parsed);
* **publish -> visible**: ``--trials`` changes of a DAG and new DAGs published into ``pkg000``, each
  timed from the start of the publish command until Airflow's database serves exactly that manifest.

    .venv/bin/python -m bench.processor_scale [--packages 50] [--dags 100] [--steady 600] [--trials 5]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from bench import processor, scale_bench
from bench.bundle_bench import BUCKET, ENV
from bench.task_start_bench import publish_policy
from demo.stack import Settings, Stack, StackError, percentile, wait_for

__all__ = ["main", "measure", "report"]

PACKAGE = "pkg000"  # the package the trials publish (scale_bench publishes it with the real publisher)


@dataclass
class Sampled:
    """CPU seconds of a process and every descendant it reaped or still runs."""

    pid: int

    def cpu(self) -> float:
        proc = psutil.Process(self.pid)
        t = proc.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in proc.children(recursive=True):
            try:
                c = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += c.user + c.system  # its own reaped children are in the manager's children_* once reaped
        return total

    def peak_rss_mib(self) -> float:
        """The kernel's high-water mark of the process's resident set (VmHWM)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def child_rss_mib(self) -> float:
        """The largest resident set among its live children now (0 when none)."""
        best = 0
        for child in psutil.Process(self.pid).children(recursive=True):
            try:
                best = max(best, child.memory_info().rss)
            except psutil.NoSuchProcess:
                continue
        return best / 2**20


def handwritten_folder(served: Path, out: Path) -> int:
    """One hand-written KPO file per served manifest, building the same DAG under the served policy."""
    from bench import baseline
    from dagfactory_s3 import manifest as manifests
    from dagfactory_s3.serve import policy as policies

    out.mkdir(parents=True)
    n = 0
    for path in sorted(served.glob("*/dags/*.json")):
        stub_file = path.with_suffix(".py")
        policy = policies.for_stub(str(stub_file))
        checked = manifests.load(path, policy=policy)
        (out / stub_file.name).write_text(baseline.python_source(checked, policy))
        n += 1
    return n


def clone_home(work: Path, home: Path, local_settings: bool) -> None:
    """``home`` with a copy of one freshly migrated database (migrated once per run, under ``work``)."""
    template = work / "home-template"
    if not template.exists():
        processor.prepare_home(template, work / "unused")
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(template / "airflow.db.fresh", home / "airflow.db.fresh")
    shutil.copy(template / "airflow.db.fresh", home / "airflow.db")
    if local_settings:
        (home / "config").mkdir(exist_ok=True)
        (home / "config" / "airflow_local_settings.py").write_text(processor.local_settings_text())


def first_parse(stack: Stack, work: Path) -> dict:
    hand = work / "handwritten"
    files = handwritten_folder(stack.dags, hand)
    rows = {}
    for variant, folder, settings in (
        ("stubs as served (sidecar's folder, image's airflow_local_settings.py)", stack.dags, True),
        ("hand-written KPO files", hand, False),
    ):
        home = work / ("home-" + ("stubs" if settings else "hand"))
        clone_home(work, home, settings)
        result = processor.run_cycle(variant, home, folder)
        rows[variant] = result
    stubs, hand_result = rows.values()
    same = sum(1 for k, v in stubs.dag_shapes.items() if hand_result.dag_shapes.get(k) == v)
    out = {
        "files": files,
        "identical": same,
        "rows": {
            name: {
                "files": r.files,
                "dags": r.dags,
                "tasks": r.tasks,
                "import_errors": r.import_errors,
                "wall_s": round(r.wall_s, 1),
                "window_s": round(r.window_s or 0, 1),
                "cpu_s": round(r.cpu_s, 1),
                "manager_cpu_s": round(r.manager_cpu_s, 1),
                "children_cpu_s": round(r.cpu_s - r.manager_cpu_s, 1),
            }
            for name, r in rows.items()
        },
    }
    for r in rows.values():
        shutil.rmtree(r.log.parent / "logs", ignore_errors=True)
    return out


def steady(stack: Stack, expected: int, seconds: float, settle: float) -> dict:
    """Start the long-running dag-processor, wait for its initial parse, then idle for ``seconds``."""
    clone_home(stack.workdir.parent, stack.home, True)
    start = time.monotonic()
    proc = stack.start_dag_processor()
    dp = Sampled(proc.pid)
    child_peak = 0.0

    def parsed() -> bool:
        nonlocal child_peak
        stack.check_alive()
        child_peak = max(child_peak, dp.child_rss_mib())
        rows = stack.db.rows(
            "select count(*) from dag d join serialized_dag s on s.dag_id = d.dag_id where not d.is_stale"
        )
        return bool(rows) and rows[0][0] >= expected

    wait_for(f"the dag-processor's initial parse of {expected} DAGs", parsed, timeout=7200, poll=0.5)
    # The last files' results are written; let the manager's queue run dry (no child for ``settle`` s).
    quiet = time.monotonic()
    while time.monotonic() - quiet < settle:
        child_peak = max(child_peak, dp.child_rss_mib())
        if psutil.Process(dp.pid).children():
            quiet = time.monotonic()
        time.sleep(0.5)
    initial = {"seconds": round(time.monotonic() - start - settle, 1), "cpu_s": round(dp.cpu(), 1)}
    initial["peak_child_rss_mib"] = round(child_peak, 1)

    sync = Sampled(stack.procs["sync"].pid)
    versions = lambda: stack.db.rows("select count(*) from dag_version")[0][0]  # noqa: E731
    parses = lambda: stack.db.rows("select count(*) from dag where last_parsed_time > ?", (cutoff,))[0][0]  # noqa: E731
    cutoff = stack.db.rows("select max(last_parsed_time) from dag")[0][0]
    cpu0, sync0, v0, t0 = dp.cpu(), sync.cpu(), versions(), time.monotonic()
    children = 0.0
    while time.monotonic() - t0 < seconds:
        stack.check_alive()
        children = max(children, dp.child_rss_mib())
        time.sleep(1)
    minutes = (time.monotonic() - t0) / 60
    return {
        "initial": initial,
        "steady": {
            "seconds": round(minutes * 60),
            "cpu_s_per_min": round((dp.cpu() - cpu0) / minutes, 2),
            "sidecar_cpu_s_per_min": round((sync.cpu() - sync0) / minutes, 2),
            "dag_versions_created": versions() - v0,
            "dags_parsed": parses(),
        },
        "peak_manager_rss_mib": round(dp.peak_rss_mib(), 1),
        "peak_sidecar_rss_mib": round(sync.peak_rss_mib(), 1),
    }


def trials(stack: Stack, n: int, seed: int, timeout: float) -> list[dict]:
    """``n`` changes of one DAG and ``n`` new DAGs, alternating, each publish -> visible."""
    folder = stack.package_dir(PACKAGE)
    changed = folder / f"{PACKAGE}_job000.json"
    rng = random.Random(seed)
    out = []
    for i in range(n):
        doc = json.loads(changed.read_bytes())
        doc["description"] = f"changed {i}"
        changed.write_bytes(scale_bench.encode(doc))
        out.append(asdict(stack.measure("change", PACKAGE, f"{PACKAGE}_job000", timeout=timeout)))
        new = scale_bench.manifest(PACKAGE, 900 + i, rng)
        name = f"{new['dag_id']}.json"
        (folder / name).write_bytes(scale_bench.encode(new))
        (folder / name.replace(".json", ".py")).write_bytes(scale_bench.stub.render(name))
        out.append(asdict(stack.measure("new", PACKAGE, new["dag_id"], timeout=timeout)))
    return out


def measure(args: argparse.Namespace, work: Path) -> dict:
    settings = Settings(
        sync_interval=args.sync_interval,
        refresh_interval=args.refresh_interval,
        min_file_process_interval=args.min_file_process_interval,
        min_serialized_dag_update_interval=0,
    )
    stack = Stack(work / "stack", settings=settings, bucket=BUCKET, environment=ENV)
    result: dict = {
        "settings": asdict(settings),
        "packages": args.packages,
        "dags": args.packages * args.dags,
    }
    try:
        stack.start_s3()
        client = stack.s3_client()
        scale_bench.seed_packages(client, args.packages, args.dags, args.seed)
        publish_policy(client)
        scale_bench.write_package(stack.package_dir(PACKAGE), PACKAGE, args.dags, args.seed)
        stack.publish(PACKAGE)
        t = time.monotonic()
        stack.start_sync(timeout=1800)
        result["cold_sync_s"] = round(time.monotonic() - t, 1)
        if not args.skip_first_parse:
            result["first_parse"] = first_parse(stack, work)
        result.update(steady(stack, result["dags"], args.steady, args.settle))
        result["trials"] = trials(stack, args.trials, args.seed, timeout=args.trial_timeout)
        result["processor_jobs"] = len(stack.db.processor_jobs())
    except StackError as exc:
        tail = exc.proc.tail(40) if exc.proc else ""
        sys.exit(f"processor_scale: {exc}\n{tail}")
    finally:
        stack.stop()
    return result


def report(result: dict) -> str:
    lines = [f"{result['dags']:,} DAGs ({result['packages']} packages); settings {result['settings']}", ""]
    first = result.get("first_parse")
    if first:
        hand = first["rows"]["hand-written KPO files"]
        lines += [
            "| first full parse (`--num-runs 1`) | files | DAGs | import errors | wall s | window s | CPU s | manager CPU s | children CPU s | CPU / hand-written |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for name, r in first["rows"].items():
            lines.append(
                f"| {name} | {r['files']} | {r['dags']:,} | {r['import_errors']} | {r['wall_s']} | {r['window_s']} "
                f"| {r['cpu_s']} | {r['manager_cpu_s']} | {r['children_cpu_s']} | {r['cpu_s'] / hand['cpu_s']:.2f}x |"
            )
        lines += [
            "",
            f"{first['identical']:,} of {first['files']:,} DAGs serialize identically to their hand-written twin.",
            "",
        ]
    s, i = result["steady"], result["initial"]
    lines += [
        "| long-running dag-processor | value |",
        "|---|--:|",
        f"| initial parse at start-up: seconds | {i['seconds']} |",
        f"| initial parse at start-up: CPU s (manager and children) | {i['cpu_s']} |",
        f"| steady state: window | {s['seconds']} s |",
        f"| steady state: dag-processor CPU s per minute | {s['cpu_s_per_min']} |",
        f"| steady state: sidecar CPU s per minute | {s['sidecar_cpu_s_per_min']} |",
        f"| steady state: DAG versions created | {s['dag_versions_created']} |",
        f"| steady state: DAG files parsed | {s['dags_parsed']} |",
        f"| peak RSS: dag-processor manager | {result['peak_manager_rss_mib']} MiB |",
        f"| peak RSS: one parsing child | {i['peak_child_rss_mib']} MiB |",
        f"| peak RSS: sidecar | {result['peak_sidecar_rss_mib']} MiB |",
        f"| sidecar cold sync (to /readyz) | {result['cold_sync_s']} s |",
        "",
        "| publish → visible | n | p50 s | p95 s | max s | p50 published / on disk |",
        "|---|--:|--:|--:|--:|---|",
    ]
    for kind in ("change", "new"):
        rows = [t for t in result["trials"] if t["kind"] == kind]
        if not rows:
            continue
        vis = [t["visible"] for t in rows]
        lines.append(
            f"| {kind} | {len(rows)} | {percentile(vis, 50):.1f} | {percentile(vis, 95):.1f} | {max(vis):.1f} "
            f"| {statistics.median(t['published'] for t in rows):.1f} / {statistics.median(t['on_disk'] for t in rows):.1f} |"
        )
    lines += ["", f"dag-processor jobs recorded (1 = never restarted): {result['processor_jobs']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=50)
    parser.add_argument("--dags", type=int, default=100, help="DAGs per package")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--steady", type=float, default=600, help="seconds of idle measured")
    parser.add_argument(
        "--settle", type=float, default=10, help="seconds without a parsing child that end the start-up"
    )
    parser.add_argument("--trials", type=int, default=5, help="changes and new DAGs, each")
    parser.add_argument("--trial-timeout", type=float, default=300)
    parser.add_argument("--sync-interval", type=float, default=30)
    parser.add_argument("--refresh-interval", type=int, default=30)
    parser.add_argument("--min-file-process-interval", type=int, default=86400)
    parser.add_argument("--skip-first-parse", action="store_true", help="no side-by-side first parse")
    parser.add_argument("--json", type=Path, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="processor-scale-") as tmp:
        result = measure(args, Path(tmp))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
