"""What the publisher's user types and sees: subcommands with descriptions and examples, flags from
the settings table, text or JSON output, ``--quiet``, and a progress line on a terminal."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import orjson

from dagfactory_s3 import settings
from dagfactory_s3.errors import ConfigError

__all__ = [
    "Progress",
    "add_common",
    "add_output",
    "add_setting",
    "command",
    "count",
    "emit",
    "log",
    "require",
    "schedule_text",
]


def add_common(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``--debug`` and ``--quiet``, accepted before and after the subcommand.

    On a subcommand they default to SUPPRESS, so a flag given before the subcommand is not reset.
    """
    default: Any = False if top else argparse.SUPPRESS
    parser.add_argument("--debug", action="store_true", default=default, help="show tracebacks for errors")
    parser.add_argument(
        "--quiet", "-q", action="store_true", default=default, help="print only errors and the result"
    )


def command(
    sub: argparse._SubParsersAction, name: str, summary: str, examples: Sequence[str], details: str = ""
) -> argparse.ArgumentParser:
    """A subcommand: its one-line summary (in the command list and its --help) and its examples."""
    parser = sub.add_parser(
        name,
        help=summary,
        description=summary + (f"\n\n{details}" if details else ""),
        epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common(parser)
    return parser


def add_setting(parser: argparse.ArgumentParser, name: str, *, help: str | None = None) -> None:
    """A flag of :data:`dagfactory_s3.settings.OPTIONS`; its environment twin or default is filled in
    after parsing (:func:`dagfactory_s3.settings.fill_from_environment`, in ``cli.main``).

    Settings a command needs are checked after that (:func:`require`): ``--help`` shows them as the
    optional flags they are when their variable is set.
    """
    settings.add_option(parser, name, help=help)


def require(args: argparse.Namespace, *names: str) -> None:
    """Settings this command cannot run without, from their flag or their environment variable."""
    for name in names:
        if getattr(args, name, None) is None:
            opt = settings.OPTIONS[name]
            raise ConfigError(f"{opt.flag} is required (or set {opt.env})")


def add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="output format: text for people, json (one document on stdout) for CI [default: text]",
    )


def emit(args: argparse.Namespace, text: str, data: Any) -> None:
    """Print ``text`` or ``data`` as JSON, as the command's --output asks."""
    if getattr(args, "output", "text") == "json":
        sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
        sys.stdout.flush()
    elif text:
        print(text, flush=True)


def log(args: argparse.Namespace, line: str) -> None:
    """A line for people on stderr (warnings, notes), unless --quiet."""
    if not getattr(args, "quiet", False):
        print(line, file=sys.stderr, flush=True)


def count(n: int, noun: str) -> str:
    """``1 task``, ``2 tasks``: a number and its noun, in the right form (nouns here add an ``s``)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def schedule_text(dag: dict[str, Any]) -> str:
    """A DAG summary's schedule as people read it: a cron or preset with the time zone it runs in
    (``0 2 * * * (Europe/Berlin)``, ``@daily (UTC)``), ``every 6h``, ``on all of <assets>`` or
    ``manual``, with ``, data intervals`` when runs cover the period before them (Airflow 2's meaning).
    A summary without ``timezone`` (a record written before it had one): the cron alone."""
    schedule, zone = dag.get("schedule"), dag.get("timezone")
    if schedule is None:
        return "manual"
    suffix = ""
    if isinstance(schedule, dict):  # a cron object, an interval or an asset condition
        suffix = ", data intervals" if schedule.get("data_intervals") else ""
        if "every" in schedule:
            return f"every {schedule['every']}{suffix}"
        if "assets" in schedule:
            return f"on {schedule.get('require', 'all')} of {', '.join(schedule['assets'])}"
        schedule = schedule["cron"]
    return (f"{schedule} ({zone})" if zone and schedule != "@once" else str(schedule)) + suffix


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} MiB"  # pragma: no cover


class Progress:
    """Progress of a long step on stderr.

    On a terminal: one line rewritten in place (``uploading 120/400 · 1.2 MiB · 85/s``), throttled to
    10 updates a second, ended with a newline. Elsewhere (CI logs, ``--output json``): one line when
    the step starts and one when it ends, never a line per object. Nothing with ``--quiet``.
    """

    def __init__(self, verb: str, total: int, *, tty: bool, quiet: bool = False) -> None:
        self.verb, self.total, self.done, self.bytes = verb, total, 0, 0
        self.tty, self.enabled = tty, total > 0 and not quiet
        self.started = self.shown = time.monotonic()
        self._lock = threading.Lock()  # steps come from the upload threads
        if self.enabled and not tty:
            print(f"{verb} {count(total, 'object')}", file=sys.stderr, flush=True)

    def _line(self) -> str:
        rate = self.done / max(time.monotonic() - self.started, 1e-3)
        return f"{self.verb} {self.done}/{self.total} · {_size(self.bytes)} · {rate:.0f}/s"

    def step(self, size: int = 0) -> None:
        with self._lock:
            self.done += 1
            self.bytes += size
            now = time.monotonic()
            if self.enabled and self.tty and (now - self.shown >= 0.1 or self.done == self.total):
                self.shown = now
                print(f"\r\x1b[K{self._line()}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if not self.enabled:
            return
        self.enabled = False  # once
        if self.tty:
            print(f"\r\x1b[K{self._line()}", file=sys.stderr, flush=True)
        else:
            print(self._line(), file=sys.stderr, flush=True)
