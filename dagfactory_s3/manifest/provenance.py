"""The publisher's provenance stamp: the release that last changed a manifest, written into its bytes
as the first member (``provenance``), taken out again exactly, and refused in a package's source.
"""

from __future__ import annotations

import json
from typing import Any

from dagfactory_s3.errors import Problem
from dagfactory_s3.manifest.model import PROVENANCE

__all__ = ["MAX_STAMP_BYTES", "source_problems", "stamp", "unstamp"]


def stamp(raw: bytes, provenance: dict[str, str]) -> bytes:
    """``raw`` with ``provenance`` as its first member, on a line of its own: the manifest's bytes
    otherwise untouched (its formatting kept), so :func:`unstamp` gives them back exactly."""
    brace = raw.index(b"{") + 1
    return raw[:brace] + _stamp_line(provenance) + raw[brace:]


def unstamp(stamped: bytes, provenance: dict[str, str]) -> bytes:
    """The bytes :func:`stamp` was given. Raises ValueError when ``stamped`` has not this stamp."""
    brace = stamped.index(b"{") + 1
    line = _stamp_line(provenance)
    if stamped[brace : brace + len(line)] != line:
        raise ValueError("not stamped with this provenance")
    return stamped[:brace] + stamped[brace + len(line) :]


def source_problems(document: Any, file: str) -> list[Problem]:
    """A manifest as its package writes it carries no stamp: the publisher writes it."""
    if isinstance(document, dict) and PROVENANCE in document:
        return [
            Problem(
                file,
                f"/{PROVENANCE}",
                "written by the publisher (the release that last changed this manifest); remove it from the source",
            )
        ]
    return []


def _stamp_line(provenance: dict[str, str]) -> bytes:
    ordered = {k: provenance[k] for k in ("release", "git_sha", "package_version") if provenance.get(k)}
    return f'\n  "{PROVENANCE}": {json.dumps(ordered, ensure_ascii=False)},'.encode()


# The longest stamp the publisher can write: a release id and the longest git sha and package version
# it accepts (200 printable characters each, every one escaped by JSON at worst).
MAX_STAMP_BYTES = len(_stamp_line({"release": "9" * 64, "git_sha": '"' * 200, "package_version": '"' * 200}))
