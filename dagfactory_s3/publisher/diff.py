"""What a release plan changes: DAG by DAG, and field by field within a changed manifest.

:func:`dag_changes` is what ``plan`` lists: each DAG added, changed or deleted, with a changed
manifest's differences from the current one. :func:`changes` compares two manifests as JSON-pointer
paths with old and new values (what a reviewer reads: ``/job/image: "…pp:1.2.0" → "…pp:1.3.0"``).
Objects are compared key by key; lists of objects (``tasks``) item by item when their lengths agree;
any other list is one value (a command line is read whole). Plain data only: the CLI draws the text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson

from dagfactory_s3.naming import DAGS_DIR, dag_id_of, object_name
from dagfactory_s3.publisher.store import PackageStore
from dagfactory_s3.publisher.transaction import DEFAULT_PARALLELISM, ReleasePlan, parallel

__all__ = ["changes", "dag_changes", "dag_counts"]


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def changes(old: Any, new: Any, pointer: str = "") -> list[dict[str, Any]]:
    """Every leaf that differs, sorted by pointer: ``{"pointer", "old"?, "new"?}`` (absent: not set)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[dict[str, Any]] = []
        for key in sorted(set(old) | set(new)):
            where = f"{pointer}/{_escape(key)}"
            if key not in old:
                out.append({"pointer": where, "new": new[key]})
            elif key not in new:
                out.append({"pointer": where, "old": old[key]})
            else:
                out += changes(old[key], new[key], where)
        return out
    if (
        isinstance(old, list)
        and isinstance(new, list)
        and len(old) == len(new)
        and all(isinstance(v, dict) for v in old + new)
    ):
        return [
            c for i, (a, b) in enumerate(zip(old, new, strict=True)) for c in changes(a, b, f"{pointer}/{i}")
        ]
    if old == new and type(old) is type(new):
        return []
    return [{"pointer": pointer or "/", "old": old, "new": new}]


def _old_manifest(store: PackageStore, plan: ReleasePlan, rest: str) -> Any:
    """The current release's manifest ``rest`` as a document, or None when its bytes are unavailable."""
    entry = plan.current.record.files[rest]  # type: ignore[union-attr]
    key = object_name(entry.sha256)
    data = store.get(key) if key in plan.listing else store.get(rest)
    if data is None or _sha(data) != entry.sha256:
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def dag_changes(
    plan: ReleasePlan,
    *,
    fields: bool,
    parallelism: int = DEFAULT_PARALLELISM,
    reading: Callable[[int], Callable[[], None]] | None = None,
) -> list[dict[str, Any]]:
    """One entry per DAG that changes: ``{dag_id, action: add|change|delete, changes: [...]}``.

    ``fields``: diff each changed manifest against the current one (a GET each); a publish that is
    not a dry run skips that and lists the DAGs only, so it sends no more requests than it needs.
    ``reading(n)``, when given, is told how many manifests will be read and returns the callback
    called after each read (the caller's progress report).
    """
    actions: dict[str, str] = {}
    for kind, files in (("add", plan.add), ("change", plan.update), ("delete", plan.delete)):
        for rest in files:
            dag_id = dag_id_of(rest)
            if rest.endswith(".json") or dag_id not in actions:
                actions[dag_id] = kind
    updated = [f"{DAGS_DIR}/{d}.json" for d, a in sorted(actions.items()) if a == "change"]
    updated = [r for r in updated if r in plan.update] if fields else []
    step = reading(len(updated)) if reading else (lambda: None)
    olds = parallel(lambda r: (_old_manifest(plan.store, plan, r), step()), updated, parallelism)
    before = {r: old for r, (old, _) in zip(updated, olds, strict=True)}
    out = []
    for dag_id, action in sorted(actions.items()):
        entry: dict[str, Any] = {"dag_id": dag_id, "action": action, "changes": []}
        rest = f"{DAGS_DIR}/{dag_id}.json"
        rec = plan.current.record
        same = rec is not None and rest in rec.files and rest in plan.update
        if same and rec.files[rest].sha256 == _sha(plan.wanted.files[rest]):  # type: ignore[union-attr]
            entry["note"] = "same manifest; its source changed (another environment's values)"
        elif rest in before:
            new = orjson.loads(plan.wanted.files[rest])
            if before[rest] is None:
                entry["note"] = "previous manifest unavailable; showing no field diff"
            else:
                diff = changes(before[rest], new)
                entry["changes"] = [c for c in diff if not c["pointer"].startswith("/provenance/")]
                if diff and not entry["changes"]:
                    entry["note"] = "stamped with its provenance (first publish with a stamping publisher)"
        elif action == "change" and rest not in plan.update:
            entry["note"] = "stub regenerated"
        if action != "delete" and _new_schedule(entry, rec.dags.get(dag_id) if rec else None, plan):
            new = plan.wanted.dags[dag_id]
            entry.update(schedule=new.get("schedule"), timezone=new.get("timezone"))
        out.append(entry)
    return out


def _new_schedule(entry: dict[str, Any], old: dict[str, Any] | None, plan: ReleasePlan) -> bool:
    """Whether the DAG is new, or runs on another schedule or in another time zone, by the record's
    summaries (no GET) or the field diff (a summary written before summaries named the zone)."""
    new = plan.wanted.dags.get(entry["dag_id"])
    if new is None:
        return False
    if old is None:
        return True
    return (
        old.get("schedule") != new.get("schedule")
        or old.get("timezone", new.get("timezone")) != new.get("timezone")
        or any(c["pointer"] == "/timezone" for c in entry["changes"])
    )


def dag_counts(plan: ReleasePlan, dags: list[dict[str, Any]]) -> dict[str, int]:
    """How many DAGs ``dags`` (from :func:`dag_changes`) adds, changes and deletes, and how many the
    plan leaves unchanged."""
    count = {a: sum(1 for d in dags if d["action"] == a) for a in ("add", "change", "delete")}
    touched = {d["dag_id"] for d in dags}
    count["unchanged"] = len({dag_id_of(r) for r in plan.unchanged} - touched)
    return count
