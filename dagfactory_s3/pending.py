"""Manifests a worker's bundle version names but has not fetched yet, fetched when a stub needs one.

A task start materializes its run's bundle version (:mod:`dagfactory_s3.bundle`), but Airflow's
``initialize()`` does not say which DAG file the task runner is about to parse. So a worker's tree
holds every canonical stub (written locally, no request) and every manifest the machine's content
cache already has; the others are listed in the package folder's ``.dagfactory-pending.json`` by
immutable address (sha256, key, S3 version id). When a stub's manifest is missing, the loader calls
:func:`fetch`: one GET, verified by sha256, written to the shared content cache and hard-linked into
place. A task start on a fresh disk so costs the version's records plus the one manifest it runs.

No Airflow import: the loader calls this before the factory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from dagfactory_s3 import s3
from dagfactory_s3.errors import DagFactoryError, SyncError
from dagfactory_s3.manifest import MAX_BYTES
from dagfactory_s3.serve.cache import ContentCache

__all__ = ["PENDING_FILE", "fetch", "write"]

PENDING_FILE = ".dagfactory-pending.json"
_FORMAT = "dagfactory-s3/pending@1"


def write(
    package_dir: Path, *, bucket: str, cache: Path, files: dict[str, tuple[str, str, str | None]]
) -> None:
    """List ``name -> (sha256, key, version_id)`` as fetchable into ``package_dir`` from ``cache``."""
    doc = {
        "format": _FORMAT,
        "bucket": bucket,
        "cache": os.path.relpath(cache, package_dir),
        "files": {
            name: {"sha256": sha, "key": key, "version_id": vid}
            for name, (sha, key, vid) in sorted(files.items())
        },
    }
    (package_dir / PENDING_FILE).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))


def fetch(manifest_path: str, client: Any = None) -> bool:
    """Put the pending manifest at ``manifest_path`` in place; False when nothing is pending for it."""
    path = Path(manifest_path)
    package_dir = path.parent.parent
    try:
        doc = orjson.loads((package_dir / PENDING_FILE).read_bytes())
    except FileNotFoundError:
        return False
    except (OSError, orjson.JSONDecodeError) as exc:
        raise SyncError(f"{package_dir / PENDING_FILE}: unreadable: {exc}") from None
    entry = doc.get("files", {}).get(path.name) if doc.get("format") == _FORMAT else None
    if not entry:
        return False
    sha, key, bucket = entry["sha256"], entry["key"], doc["bucket"]
    cache = ContentCache((package_dir / doc["cache"]).resolve())
    cached = cache.path(sha)
    for _ in range(2):
        if not cache.has(sha, verify=True):  # another task on this machine may have fetched it: no request
            try:
                cache.fetch(
                    client or s3.client(),
                    bucket,
                    key,
                    sha,
                    version_id=entry.get("version_id"),
                    max_bytes=MAX_BYTES,
                )
            except DagFactoryError as exc:
                raise SyncError(f"{path}: cannot fetch this version's manifest: {exc}") from None
        try:
            os.link(cached, path)
            return True
        except FileExistsError:  # another task on this machine linked it first
            return True
        except FileNotFoundError:
            # Gone between the check and the link: the cache's cleanup in a refreshing process on this
            # node, or another task replacing a damaged copy. Checked (and fetched) once more.
            continue
    raise SyncError(f"{path}: the cached manifest {sha} disappeared twice between its check and its link")
