"""A package's kept releases: the entries ``list --history`` shows, rollbacks detected, and the
release ``rollback --to previous`` names.

Plain data only: each entry is a dict (the JSON ``list --history`` prints); the CLI draws the text.
"""

from __future__ import annotations

from typing import Any

from dagfactory_s3.errors import PublishError
from dagfactory_s3.naming import history_name
from dagfactory_s3.publisher.store import PackageStore
from dagfactory_s3.publisher.transaction import DEFAULT_PARALLELISM, kept_releases

__all__ = ["history_entries", "rollback_target"]


def history_entries(
    store: PackageStore, ids: list[str], current: str | None, parallelism: int = DEFAULT_PARALLELISM
) -> list[dict[str, Any]]:
    """The kept releases ``ids``, newest first, with what a reviewer asks of each; rollbacks marked.

    A release whose files are exactly those of an older kept release that is not its predecessor
    is a rollback to (or a re-publish of) that release. ``current``: the current release's id.
    """
    records = kept_releases(store, store.current().record, ids, parallelism)
    out, seen = [], {}
    for rec in records:  # oldest first, to know what came before
        files = frozenset((r, e.sha256) for r, e in rec.files.items())
        same = seen.get(files)
        out.append(
            {
                "release_id": rec.release_id,
                "published_at": rec.published_at,
                "package_version": rec.package_version,
                "git_sha": rec.git_sha,
                "publisher": f"dagfactory-s3 {rec.publisher_version}",
                "published_by": rec.published_by,
                "promoted_from": str(rec.promoted_from) if rec.promoted_from else None,
                "dags": len(rec.dags),
                "tombstone": rec.tombstone,
                "current": rec.release_id == current,
                "rollback_of": same
                if same and same != rec.previous_release_id and not rec.tombstone
                else None,
            }
        )
        seen[files] = rec.release_id
    return out[::-1]


def rollback_target(store: PackageStore, to: str) -> str:
    """The release id ``to`` names: ``previous`` is the release before the current one; anything
    else must be a release id (not a path)."""
    target = to
    if target == "previous":
        current = store.current().record
        if current is None or current.previous_release_id is None:
            raise PublishError(f"{store.package!r} has no release before the current one to roll back to")
        target = current.previous_release_id
    history_name(target)  # a release id, not a path
    return target
