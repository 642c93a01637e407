"""The scan of a directory of manifests and stubs: every problem at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dagfactory_s3 import manifest as manifests
from dagfactory_s3 import naming, stub
from dagfactory_s3.errors import ConfigError, ManifestError, Problem

__all__ = ["DagSet", "scan"]


@dataclass
class DagSet:
    """The valid manifests of a directory, by dag_id, with their canonical stubs."""

    root: Path
    manifests: dict[str, manifests.Manifest] = field(default_factory=dict)


def scan(root: Path, *, package: str | None, strict_names: bool, check_stubs: bool = True) -> DagSet:
    """Check every ``*.json`` and ``*.py`` in ``root`` (not recursive). All problems at once.

    ``strict_names`` requires the published naming (``<dag_id>.json``); it is on for publishing.
    A ``.py`` must be the canonical stub of its sibling manifest (hand-edited Python is never shipped);
    ``check_stubs=False`` skips that, for regenerating stubs.
    """
    if not root.is_dir():
        raise ConfigError(f"{root}: not a directory")
    problems: list[Problem] = []
    found = DagSet(root)
    json_files = sorted(root.glob("*.json"))
    if not json_files:
        raise ConfigError(f"{root}: no *.json manifests found")
    for path in json_files:
        try:
            m = manifests.load(path, package=package)
        except ManifestError as exc:
            problems.extend(exc.problems())
            continue
        if strict_names and path.name != naming.manifest_name(m.dag_id):
            problems.append(
                Problem(str(path), "/dag_id", f"file must be named {m.dag_id}.json to be published")
            )
        if m.dag_id in found.manifests:
            other = found.manifests[m.dag_id].file
            problems.append(Problem(str(path), "/dag_id", f"dag_id {m.dag_id!r} is also defined in {other}"))
            continue
        found.manifests[m.dag_id] = m
    names = {p.stem for p in json_files}
    for path in sorted(root.glob("*.py")) if check_stubs else ():
        if path.stem not in names:
            problems.append(
                Problem(
                    str(path),
                    "",
                    f"Python file without a manifest {path.stem}.json; only generated stubs are allowed",
                )
            )
        elif not stub.is_canonical(path.name, path.read_bytes()):
            problems.append(
                Problem(
                    str(path),
                    "",
                    "not the canonical stub (edited or stale); regenerate it with 'airflow-dag-publisher generate --dag-path'",
                )
            )
    if problems:
        raise ManifestError(problems)
    return found
