"""``airflow-dag-sync``: keep an Airflow dags folder equal to what packages publish in S3.

The contract (see ``sidecar/README.md``): the dags folder holds ``<package>/dags/<dag_id>.json`` and
its canonical stub ``<dag_id>.py``, nothing else; a package with a release record is served exactly
as recorded (verified by sha256) or not changed at all; no file is ever seen half-written, no stub
without its manifest; nothing is deleted after a failed listing or beyond the mass-delete guard.

Configuration: every flag has an environment twin, resolved in :func:`resolve` and nowhere else.
S3 is reached only through the standard AWS chain (``AWS_ENDPOINT_URL``, profiles, pod identity).
This module and its ``_sync_*`` helpers never import Airflow.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagfactory_s3 import __version__
from dagfactory_s3 import s3 as s3support
from dagfactory_s3.errors import ConfigError, DagFactoryError
from dagfactory_s3.release import check_environment

__all__ = ["Config", "main", "next_delay", "resolve"]

STATE_DIRNAME = ".dagfactory-sync"


@dataclass(frozen=True)
class Option:
    flag: str
    env: str
    default: Any
    parse: Callable[[str], Any]
    help: str


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not a boolean (use true or false)")


def _fraction(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 1:
        raise ValueError(f"{value} is not between 0 and 1")
    return number


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        number = kind(value)
        if number <= 0:
            raise ValueError(f"{value} must be greater than 0")
        return number

    return parse


def _port(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 65535:
        raise ValueError(f"{value} is not a TCP port (0 disables the HTTP endpoints)")
    return number


# The one table of settings. The seed's names (DAG_BUCKET, ENVIRONMENT, DAG_SYNC_INTERVAL) are kept.
OPTIONS: dict[str, Option] = {
    "bucket": Option("--bucket", "DAG_BUCKET", None, str, "S3 bucket holding the DAGs"),
    "environment": Option(
        "--environment", "ENVIRONMENT", None, str, "environment prefix in the bucket (dev, staging, prod)"
    ),
    "interval": Option(
        "--interval", "DAG_SYNC_INTERVAL", 30.0, _positive(float), "seconds between reconcile cycles"
    ),
    "dags_folder": Option(
        "--dags-folder", "DAGS_FOLDER", "/opt/airflow/dags", Path, "the Airflow dags folder to keep in sync"
    ),
    "state_dir": Option(
        "--state-dir",
        "DAG_SYNC_STATE_DIR",
        None,
        Path,
        f"where the sync state lives (default: <dags-folder>/{STATE_DIRNAME}, which Airflow never imports)",
    ),
    "metrics_port": Option(
        "--metrics-port",
        "DAG_SYNC_METRICS_PORT",
        9102,
        _port,
        "port for /metrics, /healthz, /readyz (0: off)",
    ),
    "max_delete_fraction": Option(
        "--max-delete-fraction",
        "DAG_SYNC_MAX_DELETE_FRACTION",
        0.5,
        _fraction,
        "refuse to delete more than this fraction of served DAGs in one cycle",
    ),
    "allow_python": Option(
        "--allow-python",
        "DAG_SYNC_ALLOW_PYTHON",
        False,
        _bool,
        "also serve non-canonical .py files (legacy packages; runs their code in the control plane)",
    ),
    "once": Option(
        "--once",
        "DAG_SYNC_ONCE",
        False,
        _bool,
        "run one cycle and exit: 0 when complete, 1 otherwise (init container)",
    ),
    "workers": Option("--workers", "DAG_SYNC_WORKERS", 16, _positive(int), "parallel downloads"),
    "max_backoff": Option(
        "--max-backoff",
        "DAG_SYNC_MAX_BACKOFF",
        300.0,
        _positive(float),
        "longest wait after failures, seconds",
    ),
}
_BOOL_FLAGS = {"allow_python", "once"}


@dataclass(frozen=True)
class Config:
    bucket: str
    environment: str
    interval: float
    dags_folder: Path
    state_dir: Path
    metrics_port: int
    max_delete_fraction: float
    allow_python: bool
    once: bool
    workers: int
    max_backoff: float
    warnings: tuple[str, ...] = ()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airflow-dag-sync",
        description="Keep an Airflow dags folder in sync with s3://<bucket>/<environment>/ (see sidecar/README.md).",
        epilog="Every flag has an environment variable twin, shown in brackets; a flag wins over its variable.",
    )
    for dest, opt in OPTIONS.items():
        if dest in _BOOL_FLAGS:
            parser.add_argument(
                opt.flag,
                dest=dest,
                action="store_const",
                const="true",
                default=None,
                help=f"{opt.help} [{opt.env}]",
            )
        else:
            parser.add_argument(
                opt.flag,
                dest=dest,
                default=None,
                metavar=opt.env,
                help=f"{opt.help} [{opt.env}, default {opt.default}]",
            )
    parser.add_argument("--version", action="version", version=f"airflow-dag-sync {__version__}")
    return parser


def resolve(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Config:
    """Flags, then environment variables, then defaults. Raises ConfigError naming the setting."""
    args = vars(_parser().parse_args(argv))
    values: dict[str, Any] = {}
    for dest, opt in OPTIONS.items():
        raw, source = args[dest], opt.flag
        if raw is None:
            raw, source = environ.get(opt.env), opt.env
        if raw is None or raw == "":
            values[dest] = opt.default
            continue
        try:
            values[dest] = opt.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    if not values["bucket"]:
        raise ConfigError("no bucket: set DAG_BUCKET or --bucket")
    if not values["environment"]:
        raise ConfigError("no environment: set ENVIRONMENT or --environment")
    why = check_environment(values["environment"])
    if why:
        raise ConfigError(f"ENVIRONMENT/--environment: {why}")
    values["dags_folder"] = Path(values["dags_folder"]).absolute()
    if values["state_dir"] is None:
        values["state_dir"] = values["dags_folder"] / STATE_DIRNAME
    # A misspelled variable silently falls back to a default (git-sync's lesson): name it loudly.
    known = {opt.env for opt in OPTIONS.values()}
    warnings = tuple(
        f"unknown environment variable {name}; known: {', '.join(sorted(k for k in known if k.startswith('DAG_SYNC_')))}"
        for name in sorted(environ)
        if name.startswith("DAG_SYNC_") and name not in known
    )
    return Config(**values, warnings=warnings)


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
        from dagfactory_s3._sync_observe import HealthServer, Log, Metrics
    except ModuleNotFoundError as exc:  # prometheus-client is the [sidecar] extra
        print(f"airflow-dag-sync needs {exc.name}: pip install 'dagfactory-s3[sidecar]'", file=sys.stderr)
        return ConfigError.exit_code
    from dagfactory_s3._sync_reconcile import Reconciler

    log = Log()
    try:
        cfg = resolve(argv, os.environ)
    except ConfigError as exc:
        log("error", level="error", kind="config", error=str(exc))
        return exc.exit_code
    for warning in cfg.warnings:
        log("config_warning", level="warning", warning=warning)
    log(
        "start",
        version=__version__,
        bucket=cfg.bucket,
        environment=cfg.environment,
        dags_folder=str(cfg.dags_folder),
        state_dir=str(cfg.state_dir),
        interval=cfg.interval,
        once=cfg.once,
        allow_python=cfg.allow_python,
        max_delete_fraction=cfg.max_delete_fraction,
    )

    metrics = Metrics()
    health: HealthServer | None = None
    if cfg.metrics_port and not cfg.once:
        try:
            health = HealthServer(
                cfg.metrics_port, metrics, stale_after=max(3 * cfg.interval, 3 * cfg.max_backoff)
            )
        except OSError as exc:
            log("error", level="error", kind="config", error=f"--metrics-port {cfg.metrics_port}: {exc}")
            return ConfigError.exit_code
        health.start()

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log("stopping", signal=signal.Signals(signum).name)
        stop.set()

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
            max_delete_fraction=cfg.max_delete_fraction,
            workers=cfg.workers,
        )

    try:
        reconciler = build()
    except (OSError, DagFactoryError) as exc:
        log("error", level="error", kind="startup", error=str(exc))
        return 1
    failures = 0
    try:
        while not stop.is_set():
            try:
                complete = reconciler.cycle().complete
            except Exception as exc:  # a bug or a full disk must not kill the sidecar; the state is rebuilt
                metrics.errors.labels("internal").inc()
                log(
                    "error",
                    level="error",
                    kind="internal",
                    error=f"{type(exc).__name__}: {exc}",
                    traceback=traceback.format_exc(),
                )
                complete = False
                reconciler.close()
                reconciler = build()  # reload the state from disk: pending writes are re-checked
            if health:
                health.heartbeat = time.monotonic()
            if complete:
                failures = 0
                if health and not health.ready:
                    health.ready = True
                    log("ready")
                metrics.ready.set(1)
            else:
                failures += 1
            if cfg.once:
                return 0 if complete else 1
            stop.wait(next_delay(cfg.interval, failures, cfg.max_backoff))
    finally:
        reconciler.close()
        if health:
            health.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
