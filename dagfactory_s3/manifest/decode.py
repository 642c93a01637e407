"""From a file or bytes to a JSON document, refusing what is no manifest before any rule reads it:
too large, not UTF-8, a byte-order mark, invalid or ambiguous JSON (duplicate keys, NaN, numbers out
of range), nesting deeper than :data:`~dagfactory_s3.manifest.model.MAX_DEPTH`, unprintable text.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from dagfactory_s3 import k8s
from dagfactory_s3.errors import ManifestError, Problem
from dagfactory_s3.manifest.model import MAX_BYTES, MAX_DEPTH, too_large

__all__ = ["decode", "read"]


def read(path: str | Path, file: str) -> bytes:
    """The bytes at ``path`` (at most one past :data:`MAX_BYTES`). Raises ManifestError naming ``file``."""
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ManifestError([Problem(file, "", "manifest file does not exist")]) from None
    except IsADirectoryError:
        raise ManifestError([Problem(file, "", "is a directory, not a manifest file")]) from None
    except OSError as exc:
        raise ManifestError([Problem(file, "", f"cannot read manifest: {exc.strerror or exc}")]) from None


def decode(raw: bytes, file: str) -> Any:
    """The JSON document in ``raw``. Raises ManifestError (at ``/`` or at the unprintable value)."""
    if len(raw) > MAX_BYTES:
        raise ManifestError([Problem(file, "", too_large())])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError([Problem(file, "", f"not UTF-8: invalid byte at offset {exc.start}")]) from None
    if text.startswith("\ufeff"):
        raise ManifestError([Problem(file, "", "starts with a byte-order mark; save as UTF-8 without BOM")])
    try:
        document = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except _DuplicateKey as exc:
        raise ManifestError([Problem(file, "", f"duplicate key {exc.args[0]!r} in an object")]) from None
    except json.JSONDecodeError as exc:
        raise ManifestError(
            [Problem(file, "", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")]
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ManifestError([Problem(file, "", f"invalid JSON: {exc}")]) from None
    if _depth(document, MAX_DEPTH):
        raise ManifestError([Problem(file, "", f"nested deeper than {MAX_DEPTH} levels")])
    # Before the schema: its messages quote keys and values, which must be printable first.
    problems = [Problem(file, pointer, reason) for pointer, reason in k8s.hygiene_issues(document)]
    if problems:
        raise ManifestError(problems)
    return document


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400 is valid JSON text but no number a DAG can use
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _depth(value: Any, limit: int) -> bool:
    """True when ``value`` nests deeper than ``limit`` (iterative: hostile input cannot blow the stack)."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return False
