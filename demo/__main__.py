"""``python -m demo [--keep-running] [--trials N]``: see :mod:`demo` for what it shows."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from demo.stack import (
    BIN,
    DEMO_USER,
    EXAMPLES,
    POLICY,
    ROOT,
    DagInfo,
    Settings,
    Stack,
    StackError,
    Trial,
    percentile,
    reap_previous,
    wait_for,
)

NEW_DAG = "pipeline_processing_hourly_report"
NEW_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/pipeline-processing:v1.1.0"
CHANGED_DAG = "reporting_seeder_refresh_all"
CHANGED_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/reporting-seeder:2.4.{}"


class Console:
    """Step lines, plus one progress line rewritten in place on a terminal (a line every 5 s in CI logs)."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.t0 = time.monotonic()
        self._progress = False
        self._last_plain = 0.0

    def elapsed(self) -> str:
        return _duration(time.monotonic() - self.t0)

    def line(self, text: str = "") -> None:
        self._clear()
        print(text, flush=True)

    def step(self, label: str, text: str) -> None:
        self.line(f"[{self.elapsed():>6}] {label:<9} {text}")

    def detail(self, text: str) -> None:
        self.line(f"{'':9}{'':9} {text}")

    def progress(self, text: str) -> None:
        if self.tty:
            sys.stdout.write("\r\033[K" + f"{'':18} … {text}")
            sys.stdout.flush()
            self._progress = True
        elif time.monotonic() - self._last_plain >= 5:
            self._last_plain = time.monotonic()
            print(f"{'':18} … {text}", flush=True)

    def _clear(self) -> None:
        if self._progress:
            sys.stdout.write("\r\033[K")
            self._progress = False


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="Publish DAGs to a local S3 and watch a running Airflow 3 pick them up without a restart.",
    )
    parser.add_argument(
        "--keep-running", action="store_true", help="leave everything up at the end, until Ctrl-C"
    )
    parser.add_argument(
        "--trials", type=int, default=1, help="new-DAG and change publishes to time (default: 1)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=ROOT / ".demo", help="where everything lives (default: .demo/)"
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="Airflow UI port; a free one is used if taken (default: 8080)"
    )
    parser.add_argument(
        "--sync-interval",
        type=float,
        default=5.0,
        help="DAG_SYNC_INTERVAL of the sidecar, seconds (default: 5)",
    )
    parser.add_argument(
        "--refresh-interval",
        type=int,
        default=5,
        help="[dag_processor] refresh_interval, seconds (default: 5)",
    )
    parser.add_argument(
        "--no-ui", action="store_true", help="skip the api-server (UI): faster, registration only"
    )
    parser.add_argument(
        "--timeout", type=float, default=300, help="longest wait for any one step, seconds (default: 300)"
    )
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (e.g. from a CI runner) stops the demo like Ctrl-C does: children are cleaned up.
    signal.signal(signal.SIGTERM, _interrupt)
    console = Console()
    workdir: Path = args.workdir.absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    for leftover in reap_previous(workdir):
        console.line(f"stopped {leftover} left over from an earlier demo")
    for sub in ("dags", "airflow", "logs", "packages"):
        shutil.rmtree(workdir / sub, ignore_errors=True)

    from demo.stack import free_port

    port = None if args.no_ui else free_port(args.port)
    stack = Stack(
        workdir,
        Settings(
            sync_interval=args.sync_interval,
            refresh_interval=args.refresh_interval,
            min_file_process_interval=300,
            api_port=port,
        ),
    )
    console.line(
        "dagfactory-s3 demo: a package publishes, and its DAG appears in a running Airflow nobody restarts."
    )
    console.line(
        f"Everything runs on this machine under {_rel(workdir)}/ (logs in {_rel(stack.logs)}/). Ctrl-C stops it all."
    )
    console.line()
    try:
        trials = run(stack, args, console)
        if args.keep_running:
            keep_running(stack, console)
        console.line()
        console.line(
            f"Done in {console.elapsed()}. Stopping everything"
            + ("" if args.keep_running else " (--keep-running leaves it up)")
            + " …"
        )
        if args.trials > 1:
            summarize(trials, console)
        return 0
    except KeyboardInterrupt:
        console.line()
        console.line("Interrupted: stopping everything …")
        return 130
    except StackError as exc:
        console.line()
        console.line(f"demo failed: {exc}")
        proc = exc.proc or next(
            (p for p in stack.procs.values() if not p.alive() and p.popen.returncode), None
        )
        if proc is not None:
            console.line(f"--- last lines of {_rel(proc.log)} ---")
            console.line(proc.tail(25))
        return 1
    finally:
        stack.stop()
        console.line(f"stopped. Logs and state are kept in {_rel(workdir)}/.")


def run(stack: Stack, args: argparse.Namespace, console: Console) -> list[Trial]:
    timeout = args.timeout
    # 1. S3, and the Airflow DB migration in the background meanwhile (the slowest start-up step).
    migrate = stack.start_migrate()
    started = time.monotonic()
    stack.start_s3()
    console.step(
        "S3",
        f"moto server on {stack.s3_url}, bucket s3://{stack.bucket} (versioned, public access blocked) "
        f"[{time.monotonic() - started:.1f}s]",
    )

    # 2. The platform publishes its policy to the bucket; then the examples are published exactly as a
    # package's CI job would, checked against that policy.
    argv, policy_id = stack.publish_policy()
    console.step("policy", f"$ {shlex.join(argv)}".replace(str(POLICY), _rel(POLICY)))
    console.detail(
        f"policy {policy_id} in s3://{stack.bucket}/{stack.environment}/_platform/: what CI checks against "
        "and what the sidecar serves to Airflow"
    )
    stack.copy_examples()
    git_sha = _git_sha()
    for package in sorted(p.name for p in EXAMPLES.iterdir() if (p / "airflow_dags").is_dir()):
        extra = ("--package-version", "demo", *(("--git-sha", git_sha) if git_sha else ()))
        published = stack.publish(package, *extra)
        command = f"$ {shlex.join(published.argv)}".replace(str(stack.workdir), _rel(stack.workdir))
        console.step("publish", command)
        changes = len(published.result.get("add", [])) + len(published.result.get("update", []))
        console.detail(
            f"release {published.release_id}: {changes} files uploaded, metadata.json written last "
            f"[{published.seconds:.1f}s]"
        )

    # 3. The sidecar, continuously.
    started = time.monotonic()
    stack.start_sync()
    files = sorted(
        p.relative_to(stack.dags) for p in stack.dags.rglob("*.json") if not p.parent.name.startswith(".")
    )
    console.step(
        "sync",
        f"airflow-dag-sync every {args.sync_interval:g}s → {_rel(stack.dags)}/ "
        f"({len(files)} manifests + stubs after the first sync, {time.monotonic() - started:.1f}s)",
    )
    console.detail(f"metrics {stack.metrics_url}/metrics · health {stack.metrics_url}/readyz")

    # 4. Airflow: migrate (already running), then the dag-processor and the UI.
    wait_for(
        "airflow db migrate",
        lambda: migrate.popen.poll() is not None,
        timeout=timeout,
        progress=lambda e: console.progress(f"airflow db migrate (SQLite) [{_duration(e)}]"),
    )
    stack.wait_migrate(migrate)
    console.step(
        "airflow",
        f"db migrate done (SQLite at {_rel(stack.db.path)}) [{_duration(time.monotonic() - migrate.started)}]",
    )
    password = stack.write_password()
    processor = stack.start_dag_processor()
    api = stack.start_api_server() if stack.settings.api_port else None
    console.step(
        "airflow",
        f"dag-processor pid {processor.pid}"
        + (f", api-server pid {api.pid} on {stack.api_url}" if api else "")
        + f" · refresh_interval={args.refresh_interval}s, min_file_process_interval=300s, sort=modified_time",
    )
    console.detail(
        "(the settings docs/deploy.md recommends, the platform policy served by the sidecar; "
        "the intervals are shortened for the demo)"
    )

    # 5. Wait for the three example DAGs (and the UI), then show them.
    expected = {p.stem for p in EXAMPLES.glob("*/airflow_dags/*.json")}
    start = time.monotonic()
    token: list[str] = []

    def registered() -> dict[str, DagInfo] | None:
        stack.check_alive()
        active = stack.db.active()
        if not expected <= set(active):
            return None
        if api:
            if not stack.api_healthy():
                return None
            if not token:
                got = stack.api_token(password)
                if not got:
                    return None
                token.append(got)
            listed = stack.api_dag_ids(token[0])
            if listed is None or not expected <= listed:
                return None
        return active

    def waiting(elapsed: float) -> None:
        done = len(expected & set(stack.db.active()))
        ui = "" if not api else (" · UI up" if stack.api_healthy() else " · UI starting")
        console.progress(
            f"waiting for Airflow to register the example DAGs: {done}/{len(expected)}{ui} [{_duration(elapsed)}]"
        )

    dags = wait_for(
        "the example DAGs to be registered", registered, timeout=timeout, poll=0.5, progress=waiting
    )
    console.step(
        "airflow",
        f"{len(expected)} DAGs registered {_duration(time.monotonic() - start)} after the dag-processor started"
        + (" (listed by the REST API too)" if api else ""),
    )
    print_table([dags[d] for d in sorted(expected)], console)
    if api:
        console.line()
        console.line(
            f"    Airflow UI  {stack.api_url}   user {DEMO_USER}   password {password}   ({_rel(stack.home / 'passwords.json')})"
        )
    console.line()

    # 6. The scheduler: a DAG that arrives unpaused (paused_on_create false) gets its run, no click.
    scheduler = stack.start_scheduler()
    started = time.monotonic()

    def scheduled() -> tuple[str, str, str, str] | None:
        stack.check_alive()
        return next((r for r in stack.db.runs() if r[2] == "scheduled"), None)

    run_row = wait_for(
        "the scheduler to create a DAG run",
        scheduled,
        timeout=timeout,
        poll=0.5,
        progress=lambda e: console.progress(f"waiting for the scheduler's first DAG run [{_duration(e)}]"),
    )
    paused = stack.db.paused()
    console.step(
        "schedule",
        f"airflow scheduler pid {scheduler.pid} created run {run_row[1]} of {run_row[0]} "
        f"{_duration(time.monotonic() - started)} after it started",
    )
    console.detail(
        "arrived unpaused (paused_on_create false, the manifest's or the policy's): "
        + ", ".join(sorted(d for d, p in paused.items() if not p))
        + "; paused: "
        + (", ".join(sorted(d for d, p in paused.items() if p)) or "none")
    )
    console.detail("no Kubernetes cluster here: the default pool has 0 slots, so the run's pods never start")
    console.line()

    # 7. Publish a new DAG and a change while Airflow keeps running.
    trials: list[Trial] = []
    for i in range(args.trials):
        suffix = "" if i == 0 else f"_{i + 1}"
        trials.append(publish_new(stack, console, NEW_DAG + suffix, timeout))
        trials.append(publish_change(stack, console, i, timeout))
    jobs = stack.db.processor_jobs()
    restarted = not processor.alive() or len(jobs) != 1 or (api is not None and not api.alive())
    console.step("restarts", "none" if not restarted else "UNEXPECTED")
    console.detail(
        f"dag-processor pid {processor.pid} running for {_duration(time.monotonic() - processor.started)}; "
        f"Airflow recorded {len(jobs)} dag-processor job(s)"
        + (f"; api-server pid {api.pid} running" if api else "")
    )
    if restarted:
        raise StackError("Airflow restarted during the demo", processor)
    return trials


def publish_new(stack: Stack, console: Console, dag_id: str, timeout: float) -> Trial:
    folder = stack.package_dir("pipeline_processing")
    generate = [
        "generate",
        "--package-name",
        "pipeline_processing",
        "--dag-id",
        dag_id,
        "--job-name",
        "hourly_report",
        "--image-tag",
        NEW_IMAGE,
        "--schedule",
        "@hourly",
        "--start-date",
        "2024-01-01",
        "--command",
        "python -m pipeline_processing.jobs.hourly_report",
        "--output",
        str(folder / f"{dag_id}.py"),
    ]
    stack.cli(*generate)
    console.step(
        "new DAG",
        f"{dag_id}: written with `airflow-dag-publisher generate`, then publish pipeline_processing",
    )
    trial = stack.measure(
        "new",
        "pipeline_processing",
        dag_id,
        timeout=timeout,
        progress=lambda stage, e: console.progress(f"{dag_id}: {stage} [{_duration(e)}]"),
    )
    report(console, trial)
    return trial


def publish_change(stack: Stack, console: Console, i: int, timeout: float) -> Trial:
    path = stack.package_dir("reporting_seeder") / f"{CHANGED_DAG}.json"
    document = json.loads(path.read_text())
    old = document["task_defaults"]["image"]
    new = CHANGED_IMAGE.format(2 + i)
    path.write_text(path.read_text().replace(json.dumps(old), json.dumps(new)))
    console.step(
        "change",
        f"{CHANGED_DAG}: image {old.rsplit('/', 1)[-1]} → {new.rsplit('/', 1)[-1]}, then publish reporting_seeder",
    )
    trial = stack.measure(
        "change",
        "reporting_seeder",
        CHANGED_DAG,
        timeout=timeout,
        progress=lambda stage, e: console.progress(f"{CHANGED_DAG}: {stage} [{_duration(e)}]"),
    )
    info = stack.db.dags()[CHANGED_DAG]
    report(console, trial, extra=f"Airflow now runs {', '.join(i.rsplit('/', 1)[-1] for i in info.images)}")
    return trial


def report(console: Console, trial: Trial, extra: str = "") -> None:
    console.detail(
        f"visible in Airflow {trial.visible:.1f}s after publish started "
        f"(publish {trial.published:.1f}s → in dags folder {trial.on_disk:.1f}s → parsed {trial.visible:.1f}s)"
        + (f"; {extra}" if extra else "")
    )


def print_table(dags: list[DagInfo], console: Console) -> None:
    rows = [("DAG_ID", "SCHEDULE", "TASKS", "IMAGE")]
    for info in dags:
        tasks = " → ".join(t for t, _ in info.tasks) if len(info.tasks) <= 3 else f"{len(info.tasks)} tasks"
        rows.append((info.dag_id, str(info.schedule), tasks, ", ".join(info.images)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        console.line(
            "    " + "  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
        )


def summarize(trials: list[Trial], console: Console) -> None:
    for kind in ("new", "change"):
        values = [t.visible for t in trials if t.kind == kind]
        if values:
            console.line(
                f"publish → visible, {kind:>6}: n={len(values)} p50 {percentile(values, 50):.1f}s "
                f"p95 {percentile(values, 95):.1f}s max {max(values):.1f}s"
            )


def keep_running(stack: Stack, console: Console) -> None:
    env = stack.aws_env()
    exports = " ".join(
        f"{k}={shlex.quote(env[k])}"
        for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    )
    publish = shlex.join(["airflow-dag-publisher", *stack.publish_argv("reporting_seeder")])
    console.line()
    console.line(
        "Everything keeps running. Edit a manifest under "
        + _rel(stack.packages)
        + "/ and publish it from another terminal:"
    )
    console.line(f"    {exports} \\\n      {_rel(BIN)}/{publish}")
    console.line("Press Ctrl-C to stop.")
    while True:
        stack.check_alive()
        time.sleep(2)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
