"""``airflow-dag-publisher``: generate, validate, render and publish job manifests.

Every user error is a :class:`~dagfactory_s3.errors.DagFactoryError`, caught once in :func:`main`,
printed as one line per problem (or as JSON with ``--output json``) and mapped to an exit code.
Tracebacks are shown only with ``--debug``. Flags with environment twins come from
:mod:`dagfactory_s3.settings`.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

import orjson

from dagfactory_s3 import __version__, settings
from dagfactory_s3.errors import DagFactoryError, ManifestError, Problem
from dagfactory_s3.publisher import convert, local, policy, remote
from dagfactory_s3.publisher.terminal import add_common

__all__ = ["SETTINGS", "build_parser", "main"]

# The publisher's rows of the settings table (dagfactory_s3.settings), as documented in docs/publisher.md.
SETTINGS = (
    "bucket",
    "environment",
    "package_name",
    "parallelism",
    "keep",
    "gc_grace",
    "published_by",
    "policy",
    "require_policy",
)


def _report(args: argparse.Namespace | None, exc: DagFactoryError) -> None:
    if args is not None and getattr(args, "output", "text") == "json":
        problems = exc.problems() or [Problem("", "", str(exc))]
        data = {"ok": False, "error": type(exc).__name__, "problems": [p.to_dict() for p in problems]}
        sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.flush()
    print(f"error: {exc}" if not isinstance(exc, ManifestError) else str(exc), file=sys.stderr)


EPILOG = """\
exit codes: 0 ok, 1 invalid manifests, 2 bad flags or names, 3 S3 error, 4 refused, 130/143 interrupted;
plan --detailed-exitcode: 0 no changes, 2 changes pending, 1 any error.
Run 'airflow-dag-publisher COMMAND --help' for a command's flags and examples.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airflow-dag-publisher",
        description="Generate, validate, render and publish dagfactory-s3 job manifests.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_common(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    local.register(sub)
    remote.register(sub)
    policy.register(sub)
    convert.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for warning in settings.unknown_variables(os.environ, prefixes=("DAGFACTORY_",)):
        print(f"warning: {warning}", file=sys.stderr)
    try:
        # The one settings path of both CLIs: flags, then environment variables, read once, after parsing.
        settings.fill_from_environment(args, os.environ)
        return args.handler(args)
    except DagFactoryError as exc:
        if args.debug:
            traceback.print_exc()
        _report(args, exc)
        return 1 if getattr(args, "detailed_exitcode", False) else exc.exit_code
    except KeyboardInterrupt:  # outside a transaction (which turns signals into Interrupted)
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
