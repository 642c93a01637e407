"""The two baselines, written from exactly what our factory would pass to Airflow.

A fair comparison needs the hand-written files and the dag-factory configs to build the *same*
operators as :func:`dagfactory_s3.factory.build_dag`. Rather than re-implement the factory (and
drift when it changes), :func:`capture` runs the real factory with recording stand-ins for ``DAG``
and ``KubernetesPodOperator`` and keeps the keyword arguments it passed; the renderers below write
those arguments out as literal Python (hand-written) or as dag-factory YAML (``__type__`` objects).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from dagfactory_s3 import factory
from dagfactory_s3.manifest import Manifest

__all__ = ["Captured", "capture", "dagfactory_yaml", "python_source"]

KPO_PATH = "airflow.providers.cncf.kubernetes.operators.pod.KubernetesPodOperator"


@dataclass
class Captured:
    """The keyword arguments of one DAG and its operators, and the dependency edges, in build order."""

    dag: dict[str, Any]
    tasks: list[dict[str, Any]] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)


class _RecordingOperator:
    def __init__(self, captured: Captured, **kwargs: Any) -> None:
        self.captured, self.task_id = captured, kwargs["task_id"]
        captured.tasks.append(kwargs)

    def __rshift__(self, other: _RecordingOperator) -> _RecordingOperator:
        self.captured.edges.append((self.task_id, other.task_id))
        return other


def capture(manifest: Manifest) -> Captured:
    """What ``factory.build_dag(manifest)`` passes to ``DAG(...)`` and each ``KubernetesPodOperator(...)``."""
    captured = Captured(dag={})

    @contextlib.contextmanager
    def recording_dag(**kwargs: Any):
        captured.dag = kwargs
        yield None

    saved = factory.DAG, factory.KubernetesPodOperator
    factory.DAG = recording_dag  # type: ignore[assignment,misc]
    factory.KubernetesPodOperator = lambda **kw: _RecordingOperator(captured, **kw)  # type: ignore[assignment,misc]
    try:
        factory.build_dag(manifest)
    finally:
        factory.DAG, factory.KubernetesPodOperator = saved
    return captured


# --- hand-written Python -------------------------------------------------------------------------


def _py(value: Any, indent: int) -> str:
    """``value`` as a Python expression, the way a person would write it in a DAG file."""
    pad = " " * indent
    if isinstance(value, timedelta):
        return f"timedelta(seconds={int(value.total_seconds())})"
    if isinstance(value, datetime):
        if value.utcoffset() != timedelta(0):
            raise ValueError(f"expected a UTC datetime, got {value!r}")
        parts = [value.year, value.month, value.day, value.hour, value.minute, value.second]
        while len(parts) > 3 and parts[-1] == 0:
            parts.pop()
        return f"datetime({', '.join(map(str, parts))}, tzinfo=timezone.utc)"
    if hasattr(value, "openapi_types"):  # a kubernetes.client model
        args = [
            f"{name}={_py(getattr(value, name), indent + 4)}"
            for name in value.openapi_types
            if getattr(value, name) is not None
        ]
        return f"k8s.{type(value).__name__}({', '.join(args)})"
    if isinstance(value, list) and value and any(hasattr(v, "openapi_types") for v in value):
        inner = ",\n".join(f"{pad}    {_py(v, indent + 4)}" for v in value)
        return f"[\n{inner},\n{pad}]"
    return repr(value)


def python_source(manifest: Manifest) -> str:
    """A plain Airflow DAG file building the same DAG as the manifest's stub, with no library."""
    cap = capture(manifest)
    names = {t["task_id"]: t["task_id"].replace("-", "_") for t in cap.tasks}
    lines = [
        f'"""{manifest.dag_id}: hand-written KubernetesPodOperator DAG (benchmark baseline)."""',
        "",
        "from datetime import datetime, timedelta, timezone",
        "",
        "from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator",
        "from airflow.sdk import DAG",
        "from kubernetes.client import models as k8s",
        "",
        "with DAG(",
        *(f"    {key}={_py(value, 4)}," for key, value in cap.dag.items()),
        ") as dag:",
    ]
    for task in cap.tasks:
        lines.append(f"    {names[task['task_id']]} = KubernetesPodOperator(")
        lines.extend(f"        {key}={_py(value, 8)}," for key, value in task.items())
        lines.append("    )")
    lines.extend(f"    {names[a]} >> {names[b]}" for a, b in cap.edges)
    return "\n".join(lines) + "\n"


# --- dag-factory 1.1 YAML ------------------------------------------------------------------------


def _typed(value: Any) -> Any:
    """``value`` in dag-factory's YAML vocabulary: objects as ``{__type__: dotted.path, **kwargs}``."""
    if isinstance(value, timedelta):
        return {"__type__": "datetime.timedelta", "seconds": int(value.total_seconds())}
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if hasattr(value, "openapi_types"):
        typed = {"__type__": f"kubernetes.client.models.{type(value).__name__}"}
        typed.update(
            (name, _typed(getattr(value, name)))
            for name in value.openapi_types
            if getattr(value, name) is not None
        )
        return typed
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    return value


def dagfactory_yaml(manifest: Manifest) -> str:
    """A dag-factory 1.1 config for the same DAG: same DAG and KubernetesPodOperator arguments."""
    cap = capture(manifest)
    dag = {k: _typed(v) for k, v in cap.dag.items() if k != "dag_id"}
    upstream: dict[str, list[str]] = {}
    for a, b in cap.edges:
        upstream.setdefault(b, []).append(a)
    tasks = []
    for task in cap.tasks:
        entry = {"task_id": task["task_id"], "operator": KPO_PATH}
        entry.update((k, _typed(v)) for k, v in task.items() if k != "task_id")
        if task["task_id"] in upstream:
            entry["dependencies"] = upstream[task["task_id"]]
        tasks.append(entry)
    dag["tasks"] = tasks
    return yaml.safe_dump({manifest.dag_id: dag}, sort_keys=False, width=120)
