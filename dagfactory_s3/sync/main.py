"""``airflow-dag-sync``: keep an Airflow dags folder equal to what packages publish in S3.

The contract (see ``sidecar/README.md``): the dags folder holds ``<package>/dags/<dag_id>.json`` and
its canonical stub ``<dag_id>.py``, and the environment's platform policy in ``_platform/``, nothing
else; a package with a release record is served exactly as recorded (verified by sha256) or not
changed at all; no file is ever seen half-written, no stub without its manifest; nothing is deleted
after a failed listing or beyond the mass-delete guard.

Push delivery (``--queue-url``): between full reconciles the loop long-polls the sidecar's SQS queue
of S3 event notifications (:mod:`dagfactory_s3.sync.push`) and reconciles the packages they name at
once, scoped to them; the full reconcile every interval stays as the backstop.

Configuration: every flag has an environment twin, from the one table in :mod:`dagfactory_s3.settings`.
S3 is reached only through the standard AWS chain (``AWS_ENDPOINT_URL``, profiles, pod identity).
Nothing in ``dagfactory_s3.sync`` imports Airflow or the publisher.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dagfactory_s3 import __version__, fs, settings
from dagfactory_s3 import s3 as s3support
from dagfactory_s3.errors import ConfigError, DagFactoryError
from dagfactory_s3.naming import check_environment
from dagfactory_s3.settings import OPTIONS, flag_help

if TYPE_CHECKING:
    from dagfactory_s3.sync.observe import HealthServer, Log, Metrics
    from dagfactory_s3.sync.push import Push
    from dagfactory_s3.sync.reconcile import CycleReport, Scope

__all__ = ["SETTINGS", "Config", "main", "next_delay", "resolve"]

STATE_DIRNAME = ".dagfactory-sync"
# The full reconcile's interval when a queue delivers changes and DAG_SYNC_INTERVAL is not set: the
# backstop for lost events. Without a queue (or while it does not answer), the table's 30 s.
QUEUE_INTERVAL = 300.0
POLL_INTERVAL: float = OPTIONS["interval"].default


# The sidecar's rows of the settings table, in --help order.
SETTINGS = (
    "bucket",
    "environment",
    "interval",
    "queue_url",
    "dags_folder",
    "state_dir",
    "metrics_addr",
    "max_delete_fraction",
    "allow_python",
    "mirror_unreleased",
    "once",
    "dag_id",
    "workers",
    "max_backoff",
)


@dataclass(frozen=True)
class Config:
    bucket: str
    environment: str
    interval: float
    queue_url: str | None
    dags_folder: Path
    state_dir: Path
    metrics_addr: tuple[str, int] | None
    max_delete_fraction: float
    allow_python: bool
    mirror_unreleased: bool
    once: bool
    dag_id: str | None
    workers: int
    max_backoff: float
    warnings: tuple[str, ...] = ()


_EXAMPLES = """\
Every flag has an environment variable twin, shown in brackets; a flag wins over its variable.

examples:
  # the long-running sidecar next to the dag-processor (the Helm values set these variables)
  DAG_BUCKET=etl-airflow-dags-prod ENVIRONMENT=prod DAGS_FOLDER=/opt/airflow/dags airflow-dag-sync
  # push delivery: changes served on S3 events from this sidecar's own queue, a full reconcile every 300 s
  DAG_SYNC_QUEUE_URL=https://sqs.eu-west-1.amazonaws.com/123456789012/dags-prod-dag-processor airflow-dag-sync
  # one cycle and exit (an init container): 0 when S3 was listed, 1 when it failed, 2 configuration
  airflow-dag-sync --once --bucket etl-airflow-dags-dev --environment dev --dags-folder /tmp/dags
  # a KubernetesExecutor worker pod's init container: its one DAG (4 requests, whatever the size)
  airflow-dag-sync --once --dag-id reporting_seeder_refresh_all --bucket b --environment prod
  # against a local S3 (moto): the standard AWS chain, AWS_ENDPOINT_URL included
  AWS_ENDPOINT_URL=http://127.0.0.1:5000 airflow-dag-sync --once --bucket b --environment dev
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airflow-dag-sync",
        description="Keep an Airflow dags folder in sync with s3://<bucket>/<environment>/ (see sidecar/README.md).",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for name in SETTINGS:
        opt = OPTIONS[name]
        if opt.switch:  # the raw string "true" goes through the same parser as the variable
            parser.add_argument(opt.flag, dest=name, action="store_const", const="true", help=flag_help(opt))
        else:
            parser.add_argument(opt.flag, dest=name, metavar=opt.env, help=flag_help(opt))
    for alias in settings.ALIASES:  # deprecated names: accepted with a warning, not shown in --help
        parser.add_argument(alias.flag, dest=f"alias:{alias.flag}", help=argparse.SUPPRESS)
    parser.add_argument("--version", action="version", version=f"airflow-dag-sync {__version__}")
    return parser


def resolve(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Config:
    """Flags, then environment variables, then defaults. Raises ConfigError naming the setting."""
    parsed = vars(_parser().parse_args(argv))
    aliased = {k.removeprefix("alias:"): parsed.pop(k) for k in list(parsed) if k.startswith("alias:")}
    flags, environ, deprecated = settings.apply_aliases(parsed, aliased, environ)
    values = settings.resolve(SETTINGS, flags, environ)
    if not values["bucket"]:
        raise ConfigError("no bucket: set DAG_BUCKET or --bucket")
    if not values["environment"]:
        raise ConfigError("no environment: set ENVIRONMENT or --environment")
    if values["dag_id"] and not values["once"]:
        raise ConfigError("DAG_SYNC_DAG_ID/--dag-id serves one DAG for one task: it needs --once")
    why = check_environment(values["environment"])
    if why:
        raise ConfigError(f"ENVIRONMENT/--environment: {why}")
    interval_given = flags.get("interval") or environ.get(OPTIONS["interval"].env or "")
    if values["queue_url"] and not interval_given:
        values["interval"] = QUEUE_INTERVAL
    # The operator's own links (DAGS_FOLDER itself a symlink) are resolved once; below it, none is followed.
    values["dags_folder"] = Path(os.path.realpath(values["dags_folder"]))
    if values["state_dir"] is None:
        values["state_dir"] = values["dags_folder"] / STATE_DIRNAME
    values["state_dir"] = Path(values["state_dir"]).absolute()
    return Config(**values, warnings=(*deprecated, *settings.unknown_variables(environ)))


def check_folders(cfg: Config) -> None:
    """Before any S3 request: the dags folder exists and this uid can write it, and the state directory
    is a real directory on the same filesystem. Raises ConfigError with the fix, in one line."""
    dags, state = cfg.dags_folder, cfg.state_dir
    uid = os.getuid()
    if not dags.is_dir():
        what = "is not a directory" if dags.exists() else "does not exist"
        raise ConfigError(
            f"DAGS_FOLDER {dags} {what}: mount the dags volume there or set DAGS_FOLDER/--dags-folder"
        )
    _check_writable(dags, "DAGS_FOLDER", uid)
    if state.is_relative_to(dags):
        why = fs.escape(dags, state)
        if why:
            raise ConfigError(
                f"DAG_SYNC_STATE_DIR: {why}; remove the link (the sidecar recreates the directory)"
            )
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"DAG_SYNC_STATE_DIR {state}: cannot create it ({exc.strerror}) as uid {uid}"
        ) from None
    _check_writable(state, "DAG_SYNC_STATE_DIR", uid)
    if state.stat().st_dev != dags.stat().st_dev:
        raise ConfigError(
            f"DAG_SYNC_STATE_DIR {state} is on another filesystem than DAGS_FOLDER {dags}: the state describes "
            "the files beside it and must live and die with them; put it on the dags volume (the default)"
        )


def _check_writable(directory: Path, setting: str, uid: int) -> None:
    """Create and remove a file: the one test that also catches read-only mounts and ACLs."""
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".dagsync-probe.", suffix=fs.TEMP_SUFFIX)
    except OSError as exc:
        raise ConfigError(
            f"{setting} {directory} is not writable by uid {uid} ({exc.strerror}): fix the volume's "
            "ownership/permissions (e.g. the pod's securityContext fsGroup) or the path"
        ) from None
    os.close(fd)
    os.unlink(tmp)


def next_delay(
    interval: float, failures: int, max_backoff: float, rand: Callable[[], float] = random.random
) -> float:
    """Seconds until the next cycle: the interval (±10 %) when healthy, else exponential with jitter."""
    if failures <= 0:
        return interval * (0.9 + 0.2 * rand())
    ceiling = min(max_backoff, interval * 2 ** (failures - 1))
    return ceiling * (0.5 + 0.5 * rand())


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from dagfactory_s3.sync.observe import HealthServer, Log, Metrics
    except ModuleNotFoundError as exc:  # prometheus-client is the [sidecar] extra
        _parser().parse_args(argv)  # --help and --version need no extra (they exit here)
        print(f"airflow-dag-sync needs {exc.name}: pip install 'dagfactory-s3[sidecar]'", file=sys.stderr)
        return ConfigError.exit_code
    log = Log()
    try:
        cfg = resolve(argv, os.environ)
    except ConfigError as exc:
        log("error", level="error", kind="config", error=str(exc))
        return exc.exit_code
    for warning in cfg.warnings:
        log("config_warning", level="warning", warning=warning)
    try:
        check_folders(cfg)
    except ConfigError as exc:
        log("error", level="error", kind="config", error=str(exc))
        return exc.exit_code
    metrics_addr = (
        None if cfg.once or not cfg.metrics_addr else f"{cfg.metrics_addr[0]}:{cfg.metrics_addr[1]}"
    )
    log(
        "start",
        version=__version__,
        bucket=cfg.bucket,
        environment=cfg.environment,
        dags_folder=str(cfg.dags_folder),
        state_dir=str(cfg.state_dir),
        interval=cfg.interval,
        queue_url=cfg.queue_url and ("ignored: --once" if cfg.once else cfg.queue_url),
        once=cfg.once,
        allow_python=cfg.allow_python,
        max_delete_fraction=cfg.max_delete_fraction,
        metrics_addr=metrics_addr or "off",
    )

    metrics = Metrics(queue=bool(cfg.queue_url) and not cfg.once)
    health: HealthServer | None = None
    if metrics_addr and cfg.metrics_addr:
        host, port = cfg.metrics_addr
        try:
            health = HealthServer(
                port, metrics, stale_after=max(3 * cfg.interval, 3 * cfg.max_backoff), host=host
            )
        except OSError as exc:
            error = f"DAG_SYNC_METRICS_ADDR {metrics_addr}: cannot listen ({exc.strerror or exc})"
            log("error", level="error", kind="config", error=error)
            return ConfigError.exit_code
        health.start()
        log.listeners.append(health.hear)  # /readyz repeats a standing warning (an empty environment)
        log("listening", metrics_addr=f"{host}:{health.port}")

    if cfg.dag_id:
        return _serve_one(cfg, log)
    try:
        return _serve(cfg, log, metrics, health)
    finally:
        if health:
            health.stop()


def _serve_one(cfg: Config, log: Log) -> int:
    """``--once --dag-id``: the one DAG a worker pod's task runs (:mod:`dagfactory_s3.sync.one`)."""
    from dagfactory_s3.sync.one import fetch_dag

    start = time.monotonic()
    try:
        client = s3support.client(max_pool_connections=2)
        got = fetch_dag(client, cfg.bucket, cfg.environment, cfg.dags_folder, cfg.dag_id or "")
    except ConfigError as exc:
        log("error", level="error", kind="config", error=str(exc))
        return exc.exit_code
    except DagFactoryError as exc:  # not served, S3 failing, or refused: the task cannot start
        log("error", level="error", kind="dag", dag_id=cfg.dag_id, error=str(exc))
        return 1
    log(
        "dag",
        dag_id=cfg.dag_id,
        package=got.package,
        release_id=got.release_id,
        policy_id=got.policy_id or None,
        requests=got.requests,
        seconds=round(time.monotonic() - start, 3),
    )
    return 0


def _serve(cfg: Config, log: Log, metrics: Metrics, health: HealthServer | None) -> int:
    """The loop: a full cycle every interval (backing off after failures) until SIGTERM/SIGINT, or once;
    with a queue, scoped cycles between them as its events arrive."""
    from dagfactory_s3.sync.push import scope_of, unserved
    from dagfactory_s3.sync.reconcile import Reconciler

    stop = threading.Event()
    push = _push(cfg, log, metrics)

    def on_signal(signum: int, frame: object) -> None:
        log("stopping", signal=signal.Signals(signum).name)
        stop.set()
        if push:
            push.interrupt()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def build() -> Reconciler:
        return Reconciler(
            client=s3support.client(max_pool_connections=cfg.workers),
            bucket=cfg.bucket,
            environment=cfg.environment,
            dags_folder=cfg.dags_folder,
            state_dir=cfg.state_dir,
            log=log,
            metrics=metrics,
            allow_python=cfg.allow_python,
            mirror_unreleased=cfg.mirror_unreleased,
            max_delete_fraction=cfg.max_delete_fraction,
            workers=cfg.workers,
        )

    try:
        reconciler = build()
    except ConfigError as exc:  # e.g. a malformed AWS_ENDPOINT_URL
        log("error", level="error", kind="config", error=str(exc))
        return exc.exit_code
    except (OSError, DagFactoryError) as exc:
        log("error", level="error", kind="startup", error=str(exc))
        return 1

    def run(scope: Scope | None = None) -> CycleReport | None:
        """One cycle; None after an unexpected exception (logged; the reconciler is rebuilt)."""
        nonlocal reconciler
        try:
            report = reconciler.cycle(scope)
        except Exception as exc:  # a bug or a full disk must not kill the sidecar; the state is rebuilt
            metrics.errors.labels("internal").inc()
            log(
                "error",
                level="error",
                kind="internal",
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(),
            )
            reconciler.close()
            reconciler = build()  # reload the state from disk: pending writes are re-checked
            report = None
        if health:
            health.heartbeat = time.monotonic()
        return report

    failures = 0

    def judge(report: CycleReport | None) -> bool:
        """After a full cycle: ready once one was complete; failures count towards the backoff."""
        nonlocal failures
        if report is None or not report.complete:
            failures += 1
            return False
        failures = 0
        if health and not health.ready:
            health.ready = True
            log("ready")
        metrics.ready.set(1)
        return True

    try:
        while not stop.is_set():
            complete = judge(run())
            if cfg.once:  # S3 reachable and listed: 0, whatever any one package holds (docs/sidecar.md)
                return 0 if complete else 1
            deadline = _next_full(cfg, push, failures)
            while push and not stop.is_set():
                batch = push.receive(deadline, stop)
                if health:
                    health.heartbeat = time.monotonic()
                if batch is None:  # time for the full cycle, stopping, or the queue is not answering
                    if not push.up:  # poll at the plain interval until it answers (tried after each cycle)
                        deadline = min(deadline, _next_full(cfg, push, failures))
                    break
                if batch.relevant:
                    report = run(scope_of(batch))
                    if report is not None and report.scope is None:  # no full listing yet: it ran full
                        judge(report)
                    push.done(batch, unserved(batch, report))
                else:
                    push.done(batch)  # nothing to serve: dropped and ignored messages go at once
            stop.wait(max(0.0, deadline - time.monotonic()))
    finally:
        reconciler.close()
    return 0


def _push(cfg: Config, log: Log, metrics: Metrics) -> Push | None:
    """The queue of a long-running sidecar with ``--queue-url``; ``--once`` never reads it."""
    if not cfg.queue_url or cfg.once:
        return None
    from dagfactory_s3.serve.events import Queue
    from dagfactory_s3.sync.push import Push

    queue = Queue(cfg.queue_url, cfg.bucket, cfg.environment, unreleased=cfg.mirror_unreleased)
    return Push(queue, log, metrics)


def _next_full(cfg: Config, push: Push | None, failures: int) -> float:
    """When the next full cycle starts (monotonic): the interval, or with a queue that does not answer
    the plain polling interval (when that is shorter)."""
    interval = cfg.interval if push is None or push.up is not False else min(cfg.interval, POLL_INTERVAL)
    return time.monotonic() + next_delay(interval, failures, cfg.max_backoff)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
