"""The fidelity check of ``convert``: the original DAG and its converted stub, compared. No Airflow.

Both sides are descriptions :mod:`.load` made of DAGs Airflow loaded (the original file, and the
converted manifest's canonical stub built by the real factory), so what is compared is what Airflow
would run. Only what Airflow generates per run, and what the factory adds on purpose, is normalized
(docs/migration.md lists each normalization); any other difference is reported, field by field.
"""

from __future__ import annotations

from typing import Any

from dagfactory_s3.convert.mapper import EMPTY, contracted_upstream, normalize_pod

__all__ = ["differences"]

# Labels the factory puts on every pod on purpose (dagfactory_s3.factory.pod_labels).
FACTORY_LABELS = ("app.kubernetes.io/managed-by", "dagfactory-s3/")
_DAG_KEYS = (
    "timetable",
    "timezone",
    "start_date",
    "end_date",
    "catchup",
    "max_active_runs",
    "max_active_tasks",
    "dagrun_timeout",
    "tags",
    "owner_links",
    "description",
    "is_paused_upon_creation",
    "params",
)
# A task's Airflow fields: compared as they are, except the pod name, which the factory sets (the
# loader reads these and two more: random_name_suffix, do_xcom_push).
KPO_KEYS = (
    "startup_timeout_seconds",
    "schedule_timeout_seconds",
    "get_logs",
    "log_events_on_failure",
    "on_finish_action",
    "deferrable",
    "reattach_on_restart",
    "durable",
)


def _diff(path: str, a: Any, b: Any, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            _diff(f"{path}.{key}", a.get(key), b.get(key), out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(f"{path}[{i}]", x, y, out)
    elif a != b:
        out.append(f"{path}: original {_show(a)}, converted {_show(b)}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def _pod(pod: dict[str, Any] | None) -> dict[str, Any]:
    if pod is None:
        return {}
    pod = normalize_pod(pod)
    labels = pod.get("metadata", {}).get("labels", {})
    for key in list(labels):
        if key.startswith(FACTORY_LABELS):
            del labels[key]
    if not labels:
        pod.get("metadata", {}).pop("labels", None)
    return pod


def _doc(dag: dict[str, Any], converted: bool) -> str:
    if converted:  # the factory appends its provenance block (and uses the description when no doc_md)
        return (dag.get("doc_md") or "").split("#### Provenance")[0].rstrip()
    return (dag.get("doc_md") or dag.get("description") or "").rstrip()


def differences(
    original: dict[str, Any], converted: dict[str, Any], renames: dict[str, str]
) -> list[tuple[str | None, str]]:
    """Every difference between the two DAGs: (original task id or None for the DAG, ``field: original
    X, converted Y``)."""
    found: list[tuple[str | None, str]] = []
    out: list[str] = []
    for key in _DAG_KEYS:
        _diff(key, original.get(key), converted.get(key), out)
    _diff("doc_md", _doc(original, False), _doc(converted, True), out)
    tasks = [t for t in original["tasks"] if t.get("operator") != EMPTY]
    mine = {renames.get(t["task_id"], t["task_id"]): t for t in tasks}
    theirs = {t["task_id"]: t for t in converted["tasks"]}
    if sorted(mine) != sorted(theirs):
        out.append(f"tasks: original {sorted(mine)}, converted {sorted(theirs)}")
    found += [(None, line) for line in out]
    upstream = contracted_upstream(original["tasks"])
    for task_id in sorted(set(mine) & set(theirs)):
        a, b = mine[task_id], theirs[task_id]
        out = []
        _diff("upstream", sorted(renames.get(u, u) for u in upstream[a["task_id"]]), b["upstream"], out)
        _diff(
            "group",
            [g["id"] for g in a.get("groups", [])],
            [g["id"] for g in b.get("groups", [])],
            out,
        )
        _diff("owner", a.get("owner"), b.get("owner"), out)
        _diff(
            "start_date",
            a.get("start_date") or original.get("start_date"),
            b.get("start_date") or converted.get("start_date"),
            out,
        )
        _diff(
            "end_date",
            a.get("end_date") or original.get("end_date"),
            b.get("end_date") or converted.get("end_date"),
            out,
        )
        _diff("", a.get("airflow"), b.get("airflow"), out)
        _diff(
            "",
            {k: (a.get("kpo_fields") or {}).get(k) for k in KPO_KEYS},
            {k: (b.get("kpo_fields") or {}).get(k) for k in KPO_KEYS},
            out,
        )
        expand = a.get("expand")
        if expand and "arguments" in expand and isinstance(expand["arguments"], dict):
            expand = {
                **expand,
                "arguments": {
                    **expand["arguments"],
                    "from_task": renames.get(expand["arguments"]["from_task"]),
                },
            }
        _diff("expand", expand, b.get("expand"), out)
        _diff("pod", _pod(a.get("pod")), _pod(b.get("pod")), out)
        found += [(a["task_id"], line.lstrip(".")) for line in out]  # "" paths: ".retries: ..."
    return found
