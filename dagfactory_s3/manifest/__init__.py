"""Job manifests: read, check everything at once, and resolve into plain data. No Airflow here.

A manifest is accepted only when it passes the JSON Schema *and* the rules a schema cannot express
(naming, unique task ids, an acyclic graph, crons Airflow can run, asset URIs it accepts, pinned images, and what the
Kubernetes API server accepts for each pod field, from :mod:`dagfactory_s3.k8s`, also after
``task_defaults`` are merged in). Every problem is collected and reported together as a
:class:`~dagfactory_s3.errors.ManifestError`; validate, publish, the loader and the sidecar all call
:func:`parse`, so they cannot disagree.

This module holds the entry points (:func:`load`, :func:`parse`, :func:`publishable`) and re-exports
the rest of the public API from the modules that hold each job:

- :mod:`~dagfactory_s3.manifest.model`: :class:`Manifest`, :class:`Task`, limits and task defaults
- :mod:`~dagfactory_s3.manifest.decode`: bytes to a JSON document, refusing what is no manifest
- :mod:`~dagfactory_s3.manifest.provenance`: the publisher's stamp (:func:`stamp`, :func:`unstamp`)
- :mod:`~dagfactory_s3.manifest.overlays`: per-environment values (:func:`resolve`), task_defaults
- :mod:`~dagfactory_s3.manifest.rules`: every rule a schema cannot express
- :mod:`~dagfactory_s3.manifest.pod_fields`: the table of task fields the operator receives and the
  pod keys they model (read by the rules and by the factory)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson

from dagfactory_s3.errors import ManifestError, Problem
from dagfactory_s3.manifest.decode import decode, read
from dagfactory_s3.manifest.model import (
    DEFAULT_NAMESPACE,
    MAX_BYTES,
    MAX_DEPTH,
    MAX_EVALUATED_VALUES,
    MAX_MAP_LENGTH,
    MAX_TOTAL,
    PROVENANCE,
    TASK_DEFAULTS,
    Manifest,
    Task,
    too_large,
)
from dagfactory_s3.manifest.overlays import resolve
from dagfactory_s3.manifest.pod_fields import BASE_CONTAINER, HOST_NAMESPACES
from dagfactory_s3.manifest.provenance import MAX_STAMP_BYTES, source_problems, stamp, unstamp
from dagfactory_s3.manifest.rules import check_document
from dagfactory_s3.platform import DEFAULT as DEFAULT_POLICY
from dagfactory_s3.platform import Policy

__all__ = [
    "BASE_CONTAINER",
    "DEFAULT_NAMESPACE",
    "HOST_NAMESPACES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_EVALUATED_VALUES",
    "MAX_MAP_LENGTH",
    "MAX_TOTAL",
    "PROVENANCE",
    "TASK_DEFAULTS",
    "Manifest",
    "Task",
    "dumps",
    "evaluated_values",
    "load",
    "parse",
    "publishable",
    "resolve",
    "stamp",
    "too_large",
    "unstamp",
]


def load(
    path: str | Path,
    *,
    package: str | None = None,
    display: str | None = None,
    policy: Policy = DEFAULT_POLICY,
    source: bool = False,
) -> Manifest:
    """Read and check the manifest at ``path``. Raises ManifestError naming ``display`` (default: path)."""
    file = display or str(path)
    return parse(read(path, file), file=file, package=package, policy=policy, source=source)


def parse(
    raw: bytes,
    *,
    file: str,
    package: str | None = None,
    policy: Policy = DEFAULT_POLICY,
    source: bool = False,
) -> Manifest:
    """Check manifest bytes. ``package``, when given, is the package the manifest must belong to;
    ``policy`` is what the platform allows (:mod:`dagfactory_s3.platform`). ``source``: the
    manifest as its package writes it (validate, plan, publish, promote), which the publisher stamps
    and so may not carry a stamp (``provenance``) of its own."""
    document = decode(raw, file)
    if work := _work_problem(document, file):
        raise ManifestError([work])
    problems, tasks = check_document(document, file, package, policy)
    if source:
        problems += source_problems(document, file)
    # Each environment's manifest must be valid too, its problems named by the overlay that set the
    # value; checked even when the base has problems (every problem in one pass), each problem once.
    environments = document.get("environments") if isinstance(document, dict) else None
    base = frozenset(problems)
    for name in environments if isinstance(environments, dict) else {}:
        seen = set(problems)
        problems += [
            p for p in _environment_problems(document, name, file, package, policy, base) if p not in seen
        ]
    if source and not problems:
        problems += _published_size_problems(raw, document, file)
    if problems:
        raise ManifestError(problems)
    return Manifest(file=file, raw=raw, data=document, tasks=tasks)


def dumps(document: dict[str, Any]) -> bytes:
    """A manifest file as ``generate`` and ``convert`` write one: indented JSON and a final newline."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"


def evaluated_values(document: Any) -> tuple[int, int]:
    """What checking ``document`` costs: ``(its JSON values, passes)``; a check evaluates the values once
    for the manifest and once more for each environment it is resolved for."""
    values, stack = 0, [document]
    while stack:
        value = stack.pop()
        values += 1
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    environments = document.get("environments") if isinstance(document, dict) else None
    return values, 1 + (len(environments) if isinstance(environments, dict) else 0)


def _work_problem(document: Any, file: str) -> Problem | None:
    """More than :data:`MAX_EVALUATED_VALUES` (:func:`evaluated_values`) is refused before any of the
    manifest is checked, so one manifest cannot stall whoever checks it (validate, the sidecar, the loader)."""
    values, passes = evaluated_values(document)
    if values * passes <= MAX_EVALUATED_VALUES:
        return None
    return Problem(
        file,
        "",
        f"checking this manifest would evaluate {values * passes} JSON values ({values} in the manifest, "
        f"{passes - 1} environments), more than the {MAX_EVALUATED_VALUES} allowed; split it into smaller "
        "manifests",
    )


def _published_size_problems(raw: bytes, document: dict[str, Any], file: str) -> list[Problem]:
    """The size limit applies to the bytes readers get: the manifest resolved for each environment and
    stamped by the publisher (:data:`MAX_STAMP_BYTES` at most), not the source as written."""
    sizes = [("", None, len(raw))]
    for name in document.get("environments", {}):
        resolved, _ = resolve(document, name, file)
        sizes.append((f"/environments/{name}", name, len(_published_bytes(resolved))))
    out = []
    for pointer, name, size in sizes:
        if size + MAX_STAMP_BYTES > MAX_BYTES:
            what = f"published for environment {name!r}, the manifest is" if name else "the manifest is"
            out.append(
                Problem(
                    file,
                    pointer,
                    f"{what} {size} bytes; with the publisher's provenance stamp (up to {MAX_STAMP_BYTES} bytes) "
                    f"it would pass the limit: {too_large()}",
                )
            )
    return out


def _published_bytes(resolved: dict[str, Any]) -> bytes:
    return (json.dumps(resolved, indent=2, ensure_ascii=False) + "\n").encode()


def publishable(manifest: Manifest, environment: str) -> Manifest:
    """What ``publish --environment`` uploads: the manifest resolved for ``environment``, as a
    manifest of its own (byte-identical when it has no ``environments``)."""
    if "environments" not in manifest.data:
        return manifest
    resolved, _ = resolve(manifest.data, environment, manifest.file)
    return parse(_published_bytes(resolved), file=manifest.file, package=manifest.package)


def _environment_problems(
    document: dict[str, Any],
    name: str,
    file: str,
    package: str | None,
    policy: Policy,
    base: frozenset[Problem],
) -> list[Problem]:
    """The problems of the manifest resolved for environment ``name``, each named at the overlay
    pointer that set the value when one did, else prefixed with the environment; a problem ``base``
    (the manifest's own) already has is not said again."""
    try:
        resolved, sources = resolve(document, name, file)
    except ManifestError as exc:
        return exc.problems()
    except (KeyError, IndexError, TypeError, AttributeError, ValueError):
        return []  # the base is malformed where the overlay applies: its own problems say where
    problems, _ = check_document(resolved, file, package, policy)
    out = []
    for problem in problems:
        origin = max(
            (p for p in sources if problem.pointer == p or problem.pointer.startswith(p + "/")),
            key=len,
            default=None,
        )
        if origin is not None:
            out.append(problem._replace(pointer=sources[origin] + problem.pointer[len(origin) :]))
        elif problem not in base:  # a problem of the base itself is said once, there
            out.append(problem._replace(message=f"with environment {name!r}: {problem.message}"))
    return out
