"""``airflow-dag-sync``: keep an Airflow dags folder equal to what packages publish in S3.

The contract (see ``sidecar/README.md``): the dags folder holds ``<package>/dags/<dag_id>.json`` and
its canonical stub ``<dag_id>.py``, nothing else; a package with a release record is served exactly
as recorded (verified by sha256) or not changed at all; no file is ever seen half-written, no stub
without its manifest; nothing is deleted after a failed listing or beyond the mass-delete guard.

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
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dagfactory_s3 import __version__, settings
from dagfactory_s3 import s3 as s3support
from dagfactory_s3.errors import ConfigError, DagFactoryError
from dagfactory_s3.naming import check_environment
from dagfactory_s3.settings import OPTIONS, flag_help

if TYPE_CHECKING:
    from dagfactory_s3.sync.observe import HealthServer, Log, Metrics

__all__ = ["SETTINGS", "Config", "main", "next_delay", "resolve"]

STATE_DIRNAME = ".dagfactory-sync"


# The sidecar's rows of the settings table, in --help order.
SETTINGS = (
    "bucket",
    "environment",
    "interval",
    "dags_folder",
    "state_dir",
    "metrics_port",
    "max_delete_fraction",
    "allow_python",
    "mirror_unreleased",
    "once",
    "workers",
    "max_backoff",
)


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
    mirror_unreleased: bool
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
    for name in SETTINGS:
        opt = OPTIONS[name]
        if opt.switch:  # the raw string "true" goes through the same parser as the variable
            parser.add_argument(opt.flag, dest=name, action="store_const", const="true", help=flag_help(opt))
        else:
            parser.add_argument(opt.flag, dest=name, metavar=opt.env, help=flag_help(opt))
    parser.add_argument("--version", action="version", version=f"airflow-dag-sync {__version__}")
    return parser


def resolve(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Config:
    """Flags, then environment variables, then defaults. Raises ConfigError naming the setting."""
    values = settings.resolve(SETTINGS, vars(_parser().parse_args(argv)), environ)
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
    return Config(**values, warnings=tuple(settings.unknown_variables(environ)))


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

    try:
        return _serve(cfg, log, metrics, health)
    finally:
        if health:
            health.stop()


def _serve(cfg: Config, log: Log, metrics: Metrics, health: HealthServer | None) -> int:
    """The loop: a cycle every interval (backing off after failures) until SIGTERM/SIGINT, or once."""
    from dagfactory_s3.sync.reconcile import Reconciler

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
            mirror_unreleased=cfg.mirror_unreleased,
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
                report = reconciler.cycle()
                complete, servable = report.complete, not report.unservable
            except Exception as exc:  # a bug or a full disk must not kill the sidecar; the state is rebuilt
                metrics.errors.labels("internal").inc()
                log(
                    "error",
                    level="error",
                    kind="internal",
                    error=f"{type(exc).__name__}: {exc}",
                    traceback=traceback.format_exc(),
                )
                complete = servable = False
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
            if cfg.once:  # an init container never succeeds while a recorded release is unservable
                return 0 if complete and servable else 1
            stop.wait(next_delay(cfg.interval, failures, cfg.max_backoff))
    finally:
        reconciler.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
