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
    """The keyword arguments of one DAG and its operators, and the dependency edges, in build order.

    A mapped task's entry holds its ``partial`` arguments plus ``__expand__`` (the ``expand``
    arguments); a task built inside a task group holds ``__group__``."""

    dag: dict[str, Any]
    tasks: list[dict[str, Any]] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)
    group: str | None = None


@dataclass(frozen=True)
class Output:
    """``<task>.output``: the XCom of a task, as an argument of another's ``expand``."""

    task_id: str


class _RecordingOperator:
    def __init__(self, captured: Captured, **kwargs: Any) -> None:
        self.captured, self.task_id = captured, kwargs["task_id"]
        if captured.group is not None:
            kwargs = {**kwargs, "__group__": captured.group}
        captured.tasks.append(kwargs)

    @property
    def output(self) -> Output:
        return Output(self.task_id)

    def __rshift__(self, other: _RecordingOperator) -> _RecordingOperator:
        self.captured.edges.append((self.task_id, other.task_id))
        return other


class _RecordingKPO:
    """Stands in for the KubernetesPodOperator class: a call and ``partial().expand()`` both record."""

    def __init__(self, captured: Captured) -> None:
        self.captured = captured

    def __call__(self, **kwargs: Any) -> _RecordingOperator:
        return _RecordingOperator(self.captured, **kwargs)

    def partial(self, **kwargs: Any) -> Any:
        captured = self.captured

        class _Partial:
            def expand(self, **mapped: Any) -> _RecordingOperator:
                return _RecordingOperator(captured, **kwargs, __expand__=mapped)

        return _Partial()


def capture(manifest: Manifest, policy: Any = None) -> Captured:
    """What ``factory.build_dag(manifest, policy)`` passes to ``DAG(...)`` and each ``KubernetesPodOperator(...)``."""
    captured = Captured(dag={})

    @contextlib.contextmanager
    def recording_dag(**kwargs: Any):
        captured.dag = kwargs
        yield None

    class recording_group:
        def __init__(self, group_id: str, **_kwargs: Any) -> None:
            self.group_id = group_id

        def __enter__(self) -> None:
            captured.group = self.group_id

        def __exit__(self, *exc: object) -> None:
            captured.group = None

    # The factory builds ManifestPodOperator (a KubernetesPodOperator that checks templates when it
    # renders); a hand-written DAG uses the provider's class with the same arguments.
    operator = "ManifestPodOperator" if hasattr(factory, "ManifestPodOperator") else "KubernetesPodOperator"
    saved = factory.DAG, getattr(factory, operator), factory.TaskGroup
    factory.DAG = recording_dag  # type: ignore[assignment,misc]
    setattr(factory, operator, _RecordingKPO(captured))
    factory.TaskGroup = recording_group  # type: ignore[assignment,misc]
    try:
        factory.build_dag(manifest, policy) if policy is not None else factory.build_dag(manifest)
    finally:
        factory.DAG, _, factory.TaskGroup = saved
        setattr(factory, operator, saved[1])
    return captured


# --- hand-written Python -------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A trigger timetable as the plain ``schedule`` a person writes (a cron or a timedelta), which
    Airflow turns into the same timetable under its default settings; any other value unchanged."""
    if type(value).__name__ == "CronTriggerTimetable":
        return value.expression
    if type(value).__name__ == "DeltaTriggerTimetable":
        return value.delta
    return value


def _py(value: Any, indent: int) -> str:
    """``value`` as a Python expression, the way a person would write it in a DAG file."""
    pad = " " * indent
    value = _plain(value)
    if type(value).__name__ == "CronDataIntervalTimetable":
        return f"CronDataIntervalTimetable({value.expression!r}, timezone={value.timezone.name!r})"
    if type(value).__name__ == "DeltaDataIntervalTimetable":
        return f"DeltaDataIntervalTimetable({_py(value.delta, indent)})"
    if isinstance(value, timedelta):
        return f"timedelta(seconds={int(value.total_seconds())})"
    if isinstance(value, datetime) and getattr(value.tzinfo, "name", "UTC") != "UTC":
        parts = [value.year, value.month, value.day, value.hour, value.minute, value.second]
        return f"pendulum.datetime({', '.join(map(str, parts))}, tz={value.tzinfo.name!r})"
    if type(value).__name__ == "Param":  # airflow.sdk.Param, as a person writes it
        schema = "".join(f", {k}={v!r}" for k, v in value.schema.items())
        default = "" if type(value.value).__name__ == "ArgNotSet" else f"{value.value!r}, "
        return f"Param({default}description={value.description!r}{schema})"
    if isinstance(value, dict) and any(type(v).__name__ == "Param" for v in value.values()):
        return "{" + ", ".join(f"{k!r}: {_py(v, indent)}" for k, v in value.items()) + "}"
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
    kind = type(value).__name__
    if kind in ("AssetAll", "AssetAny"):  # an asset schedule
        return f"{kind}({', '.join(_py(o, indent) for o in value.objects)})"
    if kind == "Asset":
        return f"Asset(name={value.name!r}, uri={value.uri!r})"
    if isinstance(value, list) and value and type(value[0]).__name__ == "Asset":  # outlets
        return f"[{', '.join(_py(v, indent) for v in value)}]"
    if isinstance(value, Output):
        return f"{value.task_id.replace('-', '_')}.output"
    if isinstance(value, list) and value and any(hasattr(v, "openapi_types") for v in value):
        inner = ",\n".join(f"{pad}    {_py(v, indent + 4)}" for v in value)
        return f"[\n{inner},\n{pad}]"
    return repr(value)


@dataclass(frozen=True)
class _Name:
    """A variable of the generated file (a task group)."""

    name: str

    def __repr__(self) -> str:
        return self.name


def python_source(manifest: Manifest, policy: Any = None) -> str:
    """A plain Airflow DAG file building the same DAG as the manifest's stub (under ``policy``, the
    platform policy its stub is served with), with no library."""
    cap = capture(manifest, policy)
    names = {t["task_id"]: t["task_id"].replace("-", "_") for t in cap.tasks}
    lines = [
        "with DAG(",
        *(f"    {key}={_py(value, 4)}," for key, value in cap.dag.items()),
        ") as dag:",
    ]
    groups = list(dict.fromkeys(t["__group__"] for t in cap.tasks if "__group__" in t))
    lines.extend(f"    {g} = TaskGroup(group_id={g!r}, prefix_group_id=False)" for g in groups)
    for task in cap.tasks:
        kwargs = {k: v for k, v in task.items() if k not in ("__expand__", "__group__")}
        if "__group__" in task:
            kwargs["task_group"] = _Name(task["__group__"])
        call = "KubernetesPodOperator.partial(" if "__expand__" in task else "KubernetesPodOperator("
        lines.append(f"    {names[task['task_id']]} = {call}")
        lines.extend(f"        {key}={_py(value, 8)}," for key, value in kwargs.items())
        if "__expand__" in task:
            lines.append("    ).expand(")
            lines.extend(f"        {key}={_py(value, 8)}," for key, value in task["__expand__"].items())
        lines.append("    )")
    lines.extend(f"    {names[a]} >> {names[b]}" for a, b in cap.edges)
    body = "\n".join(lines)
    sdk = [
        *(name for name in ("Asset", "AssetAll", "AssetAny") if f"{name}(" in body),
        *(["CronDataIntervalTimetable"] if "CronDataIntervalTimetable(" in body else []),
        "DAG",
        *(["DeltaDataIntervalTimetable"] if "DeltaDataIntervalTimetable(" in body else []),
        *(["Param"] if "Param(" in body else []),
        *(["TaskGroup"] if "TaskGroup(" in body else []),
    ]
    header = [
        f'"""{manifest.dag_id}: hand-written KubernetesPodOperator DAG (benchmark baseline)."""',
        "",
        "from datetime import datetime, timedelta, timezone",
        "",
        *(["import pendulum"] if "pendulum." in body else []),
        "from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator",
        f"from airflow.sdk import {', '.join(sdk)}",
        "from kubernetes.client import models as k8s",
        "",
    ]
    return "\n".join(header) + "\n" + body + "\n"


# --- dag-factory 1.1 YAML ------------------------------------------------------------------------


def _typed(value: Any) -> Any:
    """``value`` in dag-factory's YAML vocabulary: objects as ``{__type__: dotted.path, **kwargs}``."""
    value = _plain(value)
    if type(value).__name__.endswith("DataIntervalTimetable"):
        raise ValueError("dag-factory configs of data interval schedules are not generated")
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
        if "__expand__" in task or "__group__" in task:
            raise ValueError(
                f"{manifest.dag_id}: dag-factory configs of mapped or grouped tasks are not generated"
            )
        entry = {"task_id": task["task_id"], "operator": KPO_PATH}
        entry.update((k, _typed(v)) for k, v in task.items() if k != "task_id")
        if task["task_id"] in upstream:
            entry["dependencies"] = upstream[task["task_id"]]
        tasks.append(entry)
    dag["tasks"] = tasks
    return yaml.safe_dump({manifest.dag_id: dag}, sort_keys=False, width=120)
