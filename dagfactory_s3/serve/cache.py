"""The local content cache: bytes by sha256, filled only with bytes whose digest was checked.

``<root>/<sha[:2]>/<sha>``, read-only (0444), shared by every tree that serves them through hard
links. An entry is written atomically after the check, so a reader finds either nothing or the exact
bytes a release record names. The versioned bundle and a worker's pending manifests
(:mod:`dagfactory_s3.pending`) fill it the same way: :meth:`ContentCache.fetch`.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dagfactory_s3 import fs, s3
from dagfactory_s3.errors import SyncError

__all__ = ["ContentCache"]


class ContentCache:
    """Verified objects under ``root``, by sha256."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha: str) -> Path:
        return self.root / sha[:2] / sha

    def has(self, sha: str, *, verify: bool = False) -> bool:
        """Whether ``sha`` is cached; with ``verify``, only when the file still holds those bytes (a
        file changed in place, through a tree's hard link or otherwise, is removed and reported absent)."""
        path = self.path(sha)
        if not verify:
            return path.is_file()
        try:
            data = path.read_bytes()
        except OSError:
            return False
        if hashlib.sha256(data).hexdigest() == sha:
            return True
        with contextlib.suppress(OSError):
            path.unlink()
        return False

    def fetch(
        self,
        client: Any,
        bucket: str,
        key: str,
        sha: str,
        *,
        version_id: str | None = None,
        max_bytes: int,
        on_get: Callable[[], None] | None = None,
    ) -> Path:
        """GET ``key`` (at ``version_id``), check the body's sha256, then write it as the cached ``sha``
        and return its path (callers ask :meth:`has` first). SyncError when the object is missing or is
        other bytes; S3's own errors (StorageError) pass through."""
        if on_get is not None:
            on_get()
        got = s3.get(client, bucket, key, version_id=version_id, max_bytes=max_bytes, missing_ok=True)
        if got is None:
            raise SyncError(f"s3://{bucket}/{key} is missing")
        return self.put(sha, got.data, source=f"s3://{bucket}/{key}")

    def put(self, sha: str, data: bytes, *, source: str) -> Path:
        """Cache ``data`` as ``sha`` once its digest is checked (SyncError naming ``source`` if not)."""
        if hashlib.sha256(data).hexdigest() != sha:
            raise SyncError(f"{source} does not match the recorded sha256 {sha}")
        path = self.path(sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        fs.atomic_write(path, data, mode=0o444, sync_dir=False)
        return path
