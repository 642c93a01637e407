"""Layered values: an environment's overlay applied over the manifest (:func:`resolve`), and
``task_defaults`` (then :data:`~dagfactory_s3.manifest.model.TASK_DEFAULTS`) under each task
(:func:`resolve_tasks`). Plain data in, plain data out; the rules check the result.
"""

from __future__ import annotations

from typing import Any

from dagfactory_s3.errors import ManifestError, Problem
from dagfactory_s3.manifest.model import TASK_DEFAULTS, Task
from dagfactory_s3.schema import to_pointer

__all__ = ["own_fields", "resolve", "resolve_tasks"]

# Task fields whose values are objects merged key by key with task_defaults (the task wins).
_MERGED = ("env", "labels", "annotations", "node_selector")


def resolve(
    document: dict[str, Any], environment: str, file: str = ""
) -> tuple[dict[str, Any], dict[str, str]]:
    """The manifest for ``environment``: its overlay applied, ``environments`` removed. Also which
    pointers of the result an overlay set (result pointer -> overlay pointer). A manifest without
    ``environments`` is returned as it is. Raises ManifestError when the overlay names what the
    manifest does not have, or when the manifest has no overlay for ``environment``."""
    overlays = document.get("environments")
    resolved = {k: v for k, v in document.items() if k != "environments"}
    if overlays is None:
        return resolved, {}
    if environment not in overlays:
        declared = ", ".join(sorted(overlays)) or "none"
        raise ManifestError(
            [
                Problem(
                    file,
                    "/environments",
                    f"no values for environment {environment!r} (declared: {declared}); add an entry, even an empty one",
                )
            ]
        )
    overlay, origin, sources = overlays[environment], f"/environments/{environment}", {}
    problems = []
    for key in ("schedule", "paused_on_create"):
        if key in overlay:
            resolved[key] = overlay[key]
            sources[f"/{key}"] = f"{origin}/{key}"
    if "params" in overlay:
        params = {k: dict(v) for k, v in resolved.get("params", {}).items()}
        for name, value in overlay["params"].items():
            if name not in params:
                problems.append(
                    Problem(
                        file, f"{origin}/params{to_pointer([name])}", f"no param {name!r} in the manifest"
                    )
                )
                continue
            params[name]["default"] = value["default"]
            sources[f"/params{to_pointer([name])}/default"] = f"{origin}/params{to_pointer([name])}/default"
        resolved["params"] = params
    if "task_defaults" in overlay:
        resolved["task_defaults"] = _merged(
            resolved.get("task_defaults", {}),
            overlay["task_defaults"],
            f"{origin}/task_defaults",
            sources,
            "/task_defaults",
        )
    if "job" in overlay:
        if "job" not in resolved:
            problems.append(Problem(file, f"{origin}/job", "the manifest has tasks, not a job"))
        else:
            resolved["job"] = _merged(resolved["job"], overlay["job"], f"{origin}/job", sources, "/job")
    if "tasks" in overlay:
        index = {t.get("task_id"): i for i, t in enumerate(resolved.get("tasks", []))}
        tasks = list(resolved.get("tasks", []))
        for task_id, values in overlay["tasks"].items():
            if task_id not in index:
                problems.append(
                    Problem(
                        file, f"{origin}/tasks{to_pointer([task_id])}", f"no task {task_id!r} in the manifest"
                    )
                )
                continue
            i = index[task_id]
            tasks[i] = _merged(
                tasks[i], values, f"{origin}/tasks{to_pointer([task_id])}", sources, f"/tasks/{i}"
            )
        resolved["tasks"] = tasks
    if problems:
        raise ManifestError(problems)
    return resolved, sources


def _merged(
    base: dict[str, Any], overlay: dict[str, Any], origin: str, sources: dict[str, str], at: str
) -> dict[str, Any]:
    """Task fields with an overlay applied: env and resources key by key, the rest replaced. Records
    in ``sources`` which resolved pointer came from which overlay pointer."""
    out = dict(base)
    for key, value in overlay.items():
        if key == "env":
            out["env"] = {**base.get("env", {}), **value}
        elif key == "resources":
            old = base.get("resources", {})
            out["resources"] = {
                k: {**old.get(k, {}), **value.get(k, {})}
                for k in ("requests", "limits")
                if k in old or k in value
            }
        else:
            out[key] = value
        sources[f"{at}/{key}"] = f"{origin}/{key}"
    return out


def resolve_tasks(document: dict[str, Any]) -> tuple[Task, ...]:
    """The document's tasks (or its one job), each over task_defaults over TASK_DEFAULTS."""
    defaults = document.get("task_defaults", {})
    if "job" in document:
        job = dict(document["job"])
        entries = [("/job", job.pop("name"), job, [])]
    else:
        entries = []
        for i, task in enumerate(document["tasks"]):
            body = dict(task)
            task_id, depends = body.pop("task_id"), body.pop("depends_on", [])
            entries.append((f"/tasks/{i}", task_id, body, depends))
    resolved = []
    for where, task_id, body, depends in entries:
        merged = {**TASK_DEFAULTS, **defaults, **body}
        for key in _MERGED:
            if key in defaults and key in body:
                merged[key] = {**defaults[key], **body[key]}
        if "resources" in defaults and "resources" in body:
            merged["resources"] = {
                kind: {**defaults["resources"].get(kind, {}), **body["resources"].get(kind, {})}
                for kind in ("requests", "limits")
                if kind in defaults["resources"] or kind in body["resources"]
            }
        resolved.append(Task(task_id=task_id, where=where, fields=merged, depends_on=tuple(depends)))
    return tuple(resolved)


def own_fields(document: dict[str, Any], task: Task) -> dict[str, Any]:
    """The task's fields as written (without task_defaults)."""
    if task.where == "/job":
        return document["job"]
    return document["tasks"][int(task.where.rsplit("/", 1)[1])]
