"""Field-level differences between two manifests, as JSON-pointer paths with old and new values.

What a reviewer reads in ``plan``: ``/job/image: "…pp:1.2.0" → "…pp:1.3.0"``. Objects are compared
key by key; lists of objects (``tasks``) item by item when their lengths agree; any other list is one
value (a command line is read whole).
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["changes", "show"]

_WIDTH = 60


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


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


def _value(change: dict[str, Any], side: str) -> str:
    if side not in change:
        return "(unset)"
    text = orjson.dumps(change[side]).decode()
    if len(text) > _WIDTH:  # keep the end: an image's tag, a command's last argument
        text = text[:16] + "…" + text[-(_WIDTH - 17) :]
    return text


def show(change: dict[str, Any]) -> str:
    """``/pointer: old → new``, long values elided in the middle."""
    return f"{change['pointer']}: {_value(change, 'old')} → {_value(change, 'new')}"
