"""Whether S3 agrees with a package's release record: what ``list`` (and ``list --check``) reports.

Plain data only: each package's status is a dict (the JSON ``list`` prints); the CLI draws the text.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import orjson

from dagfactory_s3 import naming
from dagfactory_s3.errors import ConfigError, PublishError, RecordError
from dagfactory_s3.naming import DAGS_DIR, OBJECTS_DIR, history_name, object_name
from dagfactory_s3.publisher.history import history_entries
from dagfactory_s3.publisher.store import PackageStore, env_packages
from dagfactory_s3.publisher.transaction import DEFAULT_PARALLELISM, history_ids, parallel
from dagfactory_s3.release import CONTENT_OBJECTS, Release
from dagfactory_s3.s3 import list_environments

__all__ = ["package_statuses", "status"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def status(store: PackageStore, *, parallelism: int = DEFAULT_PARALLELISM) -> dict[str, Any]:
    """The current record and whether S3 agrees with it.

    ``content_missing``: manifests the record names whose immutable content is not in the content
    store as the recorded bytes (missing, another size, or other bytes: what readers fetch and verify
    by sha256, so a reader could not serve the release). ``missing``, ``extra`` and
    ``mismatched``: the readable ``dags/`` copies against the record. ``history``: the ids of the
    kept releases, oldest first.
    """
    current = store.current()
    listing = store.list()
    rec = current.record
    out: dict[str, Any] = {
        "package": store.package,
        "environment": store.environment,
        "release_id": None,
        "dags": [],
    }
    if current.problem:
        out["problem"] = current.problem
    live = {r for r in listing if r.startswith(f"{DAGS_DIR}/")}
    if rec is None and listing and "problem" not in out:  # an unfinished first publish: say what is there
        objects = [r for r in listing if naming.sha_of_object(r)]
        out["problem"] = (
            f"no committed release yet: {len(objects)} content object{'s' * (len(objects) != 1)} of an unfinished publish "
            f"in {store.url(OBJECTS_DIR)}/, which no reader serves; rerun the publish to finish it"
            if objects
            else f"no committed release yet: {len(listing)} object{'s' * (len(listing) != 1)} under {store.url()} and no record"
        )
    if rec is None:
        out.update(
            consistent=not live,
            content_missing=[],
            missing=[],
            extra=sorted(live),
            mismatched=[],
            history=history_ids(listing, None),
        )
        return out
    content_missing = _content_problems(store, rec, listing, parallelism)
    missing = sorted(r for r in rec.files if r not in listing)
    extra = sorted(live - set(rec.files))
    unsure = []
    mismatched = []
    etags = {rest: entry.md5 for rest, entry in rec.files.items() if entry.md5}
    if not etags and history_name(rec.release_id) in listing:  # a record of 0.2 or older: its history copy
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            etags = orjson.loads(store.get(history_name(rec.release_id)) or b"{}").get("etags") or {}
    for rest, entry in sorted(rec.files.items()):
        listed = listing.get(rest)
        if listed is None:
            continue
        if listed.size != entry.size:
            mismatched.append(rest)
        elif etags.get(rest) != listed.etag:
            unsure.append(rest)  # no MD5 to compare with (or it differs): read the bytes
    datas = parallel(store.get, unsure, parallelism)
    mismatched += [
        r for r, d in zip(unsure, datas, strict=True) if d is None or _sha(d) != rec.files[r].sha256
    ]
    out.update(
        release_id=rec.release_id,
        previous_release_id=rec.previous_release_id,
        published_at=rec.published_at,
        package_version=rec.package_version,
        git_sha=rec.git_sha,
        published_by=rec.published_by,
        promoted_from=rec.promoted_from.to_dict() if rec.promoted_from else None,
        tombstone=rec.tombstone,
        images=list(rec.images),
        # timezone None: a summary written before summaries named the zone its cron runs in
        dags=[{"dag_id": d, "timezone": None, **rec.dags[d]} for d in sorted(rec.dags)],
        content_missing=content_missing,
        missing=missing,
        extra=extra,
        mismatched=sorted(mismatched),
        consistent=not (content_missing or missing or extra or mismatched),
        history=history_ids(listing, rec),
    )
    return out


def _unknown(client: Any, bucket: str, environment: str, what: str) -> ConfigError:
    """An unknown package or environment, with the names that do exist."""
    where = f"s3://{bucket}/{environment}/"
    packages = env_packages(client, bucket, environment)
    if packages:
        return ConfigError(f"{what} in {where}; packages there: {', '.join(packages)}")
    environments = list_environments(client, bucket)
    known = (
        f"environments in s3://{bucket}/: {', '.join(environments)}"
        if environments
        else "the bucket is empty"
    )
    return ConfigError(f"{what + ': ' if what else ''}no packages in {where}; {known}")


def package_statuses(
    client: Any,
    bucket: str,
    environment: str,
    package: str | None,
    *,
    history: bool = False,
    parallelism: int = DEFAULT_PARALLELISM,
) -> list[dict[str, Any]]:
    """The :func:`status` of ``package``, or of every package of the environment when it is None.

    With ``history``, each carries its kept releases newest first (:func:`history_entries`) under
    ``history``; without, no ``history`` key. An unknown package or environment is a
    :class:`ConfigError` naming the packages (or environments) that exist.
    """
    if package is None:
        names = env_packages(client, bucket, environment)
        if not names:
            raise _unknown(client, bucket, environment, "")
    else:
        names = [package]
    results = []
    for name in names:
        store = PackageStore(client, bucket, environment, name)
        try:
            result = status(store, parallelism=parallelism)
            if (
                result["release_id"] is None
                and not result["extra"]
                and not result["history"]
                and "problem" not in result
            ):
                raise _unknown(client, bucket, environment, f"no package {name!r}")
            ids = result.pop("history")
            if history:
                result["history"] = history_entries(store, ids, result["release_id"], parallelism)
        except ConfigError:
            raise
        except (RecordError, PublishError) as exc:  # one package's bad record: that package's line only
            if package is not None:
                raise
            result = _unreadable(name, environment, str(exc))
        results.append(result)
    return results


def _unreadable(package: str, environment: str, problem: str) -> dict[str, Any]:
    """The status of a package whose record or history cannot be read (``list --all-packages``)."""
    return {
        "package": package,
        "environment": environment,
        "release_id": None,
        "dags": [],
        "problem": problem,
        "consistent": False,
        "content_missing": [],
        "missing": [],
        "extra": [],
        "mismatched": [],
    }


def _content_problems(
    store: PackageStore, rec: Release, listing: dict[str, Any], parallelism: int
) -> list[str]:
    """Manifests whose content objects are not the recorded bytes: by size, then by MD5 ETag when the
    record has the MD5, else by reading the object and checking its sha256 (readers verify, so must we)."""
    if rec.content != CONTENT_OBJECTS:
        return []
    bad: set[str] = set()
    unsure: list[tuple[str, str, str]] = []
    for rest, entry in sorted(rec.files.items()):
        if not rest.endswith(".json"):
            continue
        for e in (entry, entry.source):
            if e is None:
                continue
            listed = listing.get(object_name(e.sha256))
            if listed is None or listed.size != e.size:
                bad.add(rest)
            elif not (e.md5 and listed.etag == e.md5):
                unsure.append((rest, object_name(e.sha256), e.sha256))
    datas = parallel(store.get, [key for _, key, _ in unsure], parallelism)
    bad.update(
        rest for (rest, _, sha), data in zip(unsure, datas, strict=True) if data is None or _sha(data) != sha
    )
    return sorted(bad)
