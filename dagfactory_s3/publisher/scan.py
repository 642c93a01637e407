"""The one rule set for local files: what ``validate``, ``plan`` and ``publish`` all check.

Every problem at once: each manifest's own rules, its file name (``<dag_id>.json``), the package it
belongs to, unique dag_ids, and that every ``.py`` is the canonical stub of its sibling manifest.
A manifest without its stub is valid (publish generates every stub) and is reported as a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dagfactory_s3 import manifest as manifests
from dagfactory_s3 import naming, platform, stub
from dagfactory_s3.errors import ConfigError, ManifestError, Problem

__all__ = ["DagSet", "missing_stubs", "scan"]

_REGENERATE = "regenerate it with 'airflow-dag-publisher generate --dag-path DIR'"


@dataclass
class DagSet:
    """The valid manifests of a directory (or one file), by dag_id, and warnings about missing stubs."""

    root: Path
    manifests: dict[str, manifests.Manifest] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _files(target: Path) -> tuple[list[Path], list[Path]]:
    """The manifests and Python files to check: a directory's (not recursive), or one file's pair."""
    if target.is_dir():
        json_files = sorted(target.glob("*.json"))
        if not json_files:
            raise ConfigError(f"{target}: no *.json manifests found")
        return json_files, sorted(target.glob("*.py"))
    if not target.exists():
        raise ConfigError(f"{target}: no such file or directory")
    if target.suffix not in (".json", ".py"):
        raise ConfigError(f"{target}: expected a .json manifest, a .py stub or a directory")
    manifest = target.with_name(naming.manifest_of(target.name)) if target.suffix == ".py" else target
    py = manifest.with_name(naming.stub_of(manifest.name))
    return [manifest], [py] if py.exists() else []


def missing_stubs(json_files: list[Path]) -> list[str]:
    """One warning naming the manifests without a stub: valid (publish generates stubs), but not in git."""
    missing = [
        str(p.with_suffix(".py")) for p in json_files if p.exists() and not p.with_suffix(".py").exists()
    ]
    if not missing:
        return []
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    return [f"no stub: {shown}; publish generates stubs, {_REGENERATE} to commit them"]


def override_problems(m: manifests.Manifest) -> list[Problem]:
    """Each ``pod_override`` against the Kubernetes Pod schema (strict: unknown fields refused), when
    kubernetes-validate is installed (the ``[render]`` extra); the manifest rules check its structure
    always, and the factory refuses what the Kubernetes client would drop."""
    overrides = [(t, t.fields["pod_override"]) for t in m.tasks if t.fields.get("pod_override")]
    if not overrides:
        return []
    try:
        import kubernetes_validate
    except ImportError:
        return []
    version = kubernetes_validate.utils.latest_version()
    own = m.data.get("job") or {}
    problems = []
    for task, override in overrides:
        written = own if task.where == "/job" else m.data["tasks"][int(task.where.rsplit("/", 1)[1])]
        base = task.where if "pod_override" in written else "/task_defaults"
        spec = dict(override.get("spec", {}))
        containers = [dict(c) for c in spec.get("containers", [{"name": "base"}])]
        containers[0].setdefault("image", "image-from-the-manifest:1")  # the manifest's image goes here
        metadata = {"name": "pod", **override.get("metadata", {})}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": {**spec, "containers": containers},
        }
        try:
            kubernetes_validate.validate(pod, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "".join(f"/{p}" for p in exc.path)
            problems.append(
                Problem(
                    m.file,
                    f"{base}/pod_override{where}",
                    f"not valid for Kubernetes {version}: {exc.message}",
                )
            )
    return problems


def scan(
    target: Path,
    *,
    package: str | None,
    strict_names: bool = True,
    check_stubs: bool = True,
    policy: platform.Policy = platform.DEFAULT,
) -> DagSet:
    """Check every manifest and stub of ``target`` (a directory, a manifest or a stub). All problems at once.

    ``package``, when given, is the package every manifest must belong to. ``strict_names`` requires
    the published naming (``<dag_id>.json``); only stub regeneration turns it (and ``check_stubs``) off.
    ``policy`` is the platform policy to check against (the command chose it: :mod:`.contract`).
    """
    problems: list[Problem] = []
    found = DagSet(target if target.is_dir() else target.parent)
    json_files, py_files = _files(target)
    for path in json_files:
        try:
            m = manifests.load(path, package=package, policy=policy, source=True)
        except ManifestError as exc:
            problems.extend(exc.problems())
            continue
        problems.extend(override_problems(m))
        if strict_names and path.name != naming.manifest_name(m.dag_id):
            problems.append(
                Problem(str(path), "/dag_id", f"file must be named {m.dag_id}.json to be published")
            )
        if m.dag_id in found.manifests:
            other = found.manifests[m.dag_id].file
            problems.append(Problem(str(path), "/dag_id", f"dag_id {m.dag_id!r} is also defined in {other}"))
            continue
        found.manifests[m.dag_id] = m
    if check_stubs:
        names = {p.stem for p in json_files}
        for path in py_files:
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
                    Problem(str(path), "", f"not the canonical stub (edited or stale); {_REGENERATE}")
                )
        found.warnings += missing_stubs(json_files)
    if problems:
        raise ManifestError(problems)
    return found
