"""What the publisher's user types and sees: flags from the settings table, text or JSON output."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import orjson

from dagfactory_s3 import settings

__all__ = ["Progress", "add_output", "add_setting", "emit"]


def add_setting(
    parser: argparse.ArgumentParser, name: str, *, required: bool = True, help: str | None = None
) -> None:
    """A flag of :data:`dagfactory_s3.settings.OPTIONS`, defaulting to its environment twin."""
    settings.add_option(parser, name, environ=os.environ, required=required, help=help)


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


class Progress:
    """``uploaded i/n`` on a terminal, nothing in CI logs."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, 0, enabled and total > 0

    def step(self) -> None:
        self.done += 1
        if self.enabled:
            print(f"\ruploaded {self.done}/{self.total}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr, flush=True)
