"""``airflow-dag-publisher``: generate, validate, render and publish job manifests.

Every user error is a :class:`~dagfactory_s3.errors.DagFactoryError`, caught once in :func:`main`,
printed as one line per problem (or as JSON with ``--output json``) and mapped to an exit code.
Tracebacks are shown only with ``--debug``. Flags have environment twins, resolved in :func:`env_default`.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from dagfactory_s3 import __version__
from dagfactory_s3.errors import ConfigError, DagFactoryError, ManifestError, Problem

__all__ = ["emit", "env_default", "main"]

Handler = Callable[[argparse.Namespace], int]

# Flag -> environment variable twins. The seed's names are kept (DAG_BUCKET, ENVIRONMENT).
ENV_TWINS = {
    "bucket": "DAG_BUCKET",
    "environment": "ENVIRONMENT",
    "package_name": "DAG_PACKAGE_NAME",
}


def env_default(dest: str) -> str | None:
    """The environment twin of a flag, or None. The one place env vars become flag defaults."""
    name = ENV_TWINS.get(dest)
    value = os.environ.get(name, "") if name else ""
    return value or None


def add_flag(
    parser: argparse.ArgumentParser, flag: str, *, help: str, required: bool = True, **kw: Any
) -> None:
    """A flag whose default comes from its environment twin; required only if the twin is unset too."""
    dest = flag.lstrip("-").replace("-", "_")
    default = env_default(dest)
    twin = ENV_TWINS.get(dest)
    parser.add_argument(
        flag,
        default=default,
        required=required and default is None,
        help=help + (f" [env: {twin}]" if twin else ""),
        **kw,
    )


def add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output", choices=("text", "json"), default="text", help="output format (default: text)"
    )


def emit(args: argparse.Namespace, text: str, data: Any) -> None:
    """Print ``text`` or ``data`` as JSON, as the command's --output asks."""
    if getattr(args, "output", "text") == "json":
        sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
        sys.stdout.flush()
    elif text:
        print(text)


def _report(args: argparse.Namespace | None, exc: DagFactoryError) -> None:
    if args is not None and getattr(args, "output", "text") == "json":
        problems = exc.problems() or [Problem("", "", str(exc))]
        data = {"ok": False, "error": type(exc).__name__, "problems": [p.to_dict() for p in problems]}
        sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.flush()
    print(f"error: {exc}" if not isinstance(exc, ManifestError) else str(exc), file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    from dagfactory_s3 import local_commands, publish

    parser = argparse.ArgumentParser(
        prog="airflow-dag-publisher",
        description="Generate, validate, render and publish dagfactory-s3 job manifests.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    local_commands.register(sub)
    publish.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except DagFactoryError as exc:
        if args.debug:
            traceback.print_exc()
        _report(args, exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def existing_path(value: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise ConfigError(f"{value}: no such file or directory")
    return path


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
