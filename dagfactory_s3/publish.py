"""Atomic per-package releases: ``publish``, ``plan``, ``list``, ``rollback``, ``retire``, ``iam-policy``.

A publish is a transaction on one package prefix (see :mod:`dagfactory_s3.store` for the keys):

1. validate every manifest of ``--dag-path`` (any problem: nothing is uploaded);
2. build the wanted files: each manifest's bytes and its regenerated canonical stub;
3. diff against S3 by content (MD5 ETag of the listing, sha256 when the ETag cannot tell);
4. upload the content copies (invisible to the sidecar), then changed manifests, then stubs;
5. write the record to ``_releases/<id>.json``, then to ``metadata.json`` with a conditional PUT
   (If-Match the ETag read in step 3, If-None-Match ``*`` for a first release): the commit point;
6. only then delete removed DAGs (stubs before manifests), and prune history beyond ``--keep``.

An upload failure before step 5 restores the overwritten objects from the content store (best
effort) and leaves ``metadata.json`` naming the previous release. Losing the commit race to a
concurrent publish restores the winner's objects the same way. ``rollback`` and ``retire`` are
publishes of an earlier record's files and of no files (a tombstone record).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import secrets
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from dagfactory_s3 import __version__, files, iam, stub
from dagfactory_s3.cli import add_flag, add_output, emit
from dagfactory_s3.errors import ConfigError, DagFactoryError, PublishError, StorageError
from dagfactory_s3.naming import manifest_name
from dagfactory_s3.release import DAGS_DIR, RELEASES_DIR, FileEntry, Release
from dagfactory_s3.s3 import client as s3_client
from dagfactory_s3.store import (
    OBJECTS_DIR,
    RELEASE_ID_RE,
    Current,
    Listed,
    PackageStore,
    RecordConflict,
    env_packages,
    history_name,
    object_name,
)

__all__ = [
    "Plan",
    "Wanted",
    "execute",
    "make_plan",
    "register",
    "retire",
    "rollback",
    "status",
    "wanted_from_dir",
]

DEFAULT_KEEP = 10
DEFAULT_PARALLELISM = 8
# New content up to this size rides inside the history record (one PUT); beyond it, one object each.
MAX_EMBEDDED = 8 * 1024 * 1024


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _version(rest: str, data: bytes, written: dict[str, str | None], previous: Release | None) -> str | None:
    """The VersionId of a file of the new release: just written, or kept unchanged from the previous one."""
    if rest in written:
        return written[rest]
    kept = previous.files.get(rest) if previous else None
    return kept.version_id if kept and kept.sha256 == _sha(data) else None


def new_release_id() -> str:
    """Sortable by time (to the millisecond), unique by a random suffix: ``20240101T120000.123Z-1a2b3c``."""
    now = datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%S.") + f"{now.microsecond // 1000:03d}Z-" + secrets.token_hex(3)


@dataclass
class Wanted:
    """What the package should look like after the release: files by name under the prefix, DAG info."""

    files: dict[str, bytes] = field(default_factory=dict)
    dags: dict[str, dict[str, Any]] = field(default_factory=dict)
    images: tuple[str, ...] = ()
    package_version: str | None = None
    git_sha: str | None = None
    tombstone: bool = False

    def shas(self) -> dict[str, str]:
        return {rest: _sha(data) for rest, data in self.files.items()}


def wanted_from_dir(dag_path: Path, package: str) -> Wanted:
    """Validate ``dag_path`` (all problems at once) and build the files to publish: manifests + fresh stubs."""
    found = files.scan(dag_path, package=package, strict_names=True)
    wanted = Wanted()
    images: set[str] = set()
    for dag_id in sorted(found.manifests):
        m = found.manifests[dag_id]
        wanted.files[f"{DAGS_DIR}/{dag_id}.json"] = m.raw
        wanted.files[f"{DAGS_DIR}/{dag_id}.py"] = stub.render(manifest_name(dag_id))
        wanted.dags[dag_id] = {"schedule": m.data.get("schedule"), "images": m.images, "tasks": len(m.tasks)}
        images.update(m.images)
    wanted.images = tuple(sorted(images))
    return wanted


def _dag_id(rest: str) -> str:
    return rest.rsplit("/", 1)[-1].rsplit(".", 1)[0]


@dataclass
class Plan:
    """The diff between what is wanted and what S3 holds, and everything needed to apply it."""

    store: PackageStore
    current: Current
    listing: dict[str, Listed]
    wanted: Wanted
    add: list[str] = field(default_factory=list)
    update: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    copies: dict[str, bytes] = field(
        default_factory=dict
    )  # sha256 -> new content, too big to embed: own object
    embedded: dict[str, bytes] = field(
        default_factory=dict
    )  # sha256 -> new content carried by the history record
    warnings: list[str] = field(default_factory=list)

    @property
    def record_is_current(self) -> bool:
        rec = self.current.record
        return (
            rec is not None
            and rec.tombstone == self.wanted.tombstone
            and {k: v.sha256 for k, v in rec.files.items()} == self.wanted.shas()
            and rec.dags == self.wanted.dags
        )

    @property
    def noop(self) -> bool:
        return not (self.add or self.update or self.delete) and self.record_is_current

    def to_dict(self) -> dict[str, Any]:
        rec = self.current.record
        return {
            "package": self.store.package,
            "environment": self.store.environment,
            "current_release_id": rec.release_id if rec else None,
            "add": self.add,
            "update": self.update,
            "delete": self.delete,
            "unchanged": len(self.unchanged),
            "new_contents": len(self.copies) + len(self.embedded),
            "commit": not self.record_is_current or bool(self.add or self.update or self.delete),
            "warnings": self.warnings,
        }


def _parallel(fn: Callable[[Any], Any], items: Iterable[Any], workers: int) -> list[Any]:
    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        return list(pool.map(fn, items))


def make_plan(store: PackageStore, wanted: Wanted, *, parallelism: int = DEFAULT_PARALLELISM) -> Plan:
    """Read S3 (record, listing, other packages' records) and diff. Writes nothing."""
    plan = Plan(store, store.current(), store.list(), wanted)
    if plan.current.problem:
        plan.warnings.append(f"ignoring unreadable current record: {plan.current.problem}")
    unknown: list[tuple[str, bytes]] = []
    for rest, data in sorted(wanted.files.items()):
        listed = plan.listing.get(rest)
        same = listed.same_bytes(data) if listed else False
        if same is None:
            unknown.append((rest, data))
        elif not listed:
            plan.add.append(rest)
        else:
            (plan.unchanged if same else plan.update).append(rest)
    # The ETag is not an MD5 (SSE-KMS): compare sha256 of the stored bytes instead.
    for (rest, data), stored in zip(
        unknown, _parallel(lambda item: store.get(item[0]), unknown, parallelism), strict=True
    ):
        (plan.unchanged if stored is not None and _sha(stored) == _sha(data) else plan.update).append(rest)
    plan.update.sort()
    plan.unchanged.sort()
    plan.delete = sorted(
        (r for r in plan.listing if r.startswith(f"{DAGS_DIR}/") and r not in wanted.files),
        key=lambda r: (not r.endswith(".py"), r),  # stubs before manifests: never a stub without its manifest
    )
    # Content the next rollback may need: whatever the current record does not already guarantee.
    known = {e.sha256 for e in plan.current.record.files.values()} if plan.current.record else set()
    size = 0
    for data in sorted(wanted.files.values(), key=len):
        sha = _sha(data)
        if sha in known or object_name(sha) in plan.listing or sha in plan.embedded or sha in plan.copies:
            continue
        size += len(data)
        (plan.embedded if size <= MAX_EMBEDDED else plan.copies)[sha] = data
    _check_dag_ids(plan)
    return plan


def _check_dag_ids(plan: Plan) -> None:
    """Refuse a DAG id another package of the environment already publishes (when we can read theirs)."""
    if not plan.wanted.dags:
        return
    others, warning = plan.store.other_packages()
    if warning:
        plan.warnings.append(warning)
    problems = []
    for package, record in sorted(others.items()):
        if record.tombstone:
            continue
        theirs = set(record.dags) | {_dag_id(r) for r in record.files}
        for dag_id in sorted(theirs & set(plan.wanted.dags)):
            problems.append(
                f"dag_id {dag_id!r} is already published by package {package!r} in {plan.store.environment!r}; DAG ids must be unique across packages"
            )
    if problems:
        raise PublishError("\n".join(problems))


class _Progress:
    """``uploaded i/n`` on a terminal, nothing in CI logs."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, 0, enabled and total > 0

    def step(self) -> None:
        self.done += 1
        if self.enabled:
            print(f"\ruploaded {self.done}/{self.total}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr, flush=True)


def history_document(record: Release, contents: dict[str, bytes], etags: dict[str, str]) -> bytes:
    """A history record: the release record, the content it introduced (base64, by sha256) and each
    file's single-part ETag (its MD5), which lets ``list`` check S3 against the record from a listing.

    ``_releases/`` is the publisher's own (the sidecar ignores it), so the extra field is private.
    """
    body = orjson.loads(record.to_json())
    body["contents"] = {sha: base64.b64encode(contents[sha]).decode() for sha in sorted(contents)}
    body["etags"] = {rest: etags[rest] for rest in sorted(etags)}
    return orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n"


class Contents:
    """Finds old bytes by sha256: the content store, the kept history records, a regenerated stub, the live object.

    Invariant kept by publish and prune: every sha256 named by a kept record is in the content store
    or in the ``contents`` of a kept history record.
    """

    def __init__(self, store: PackageStore, listing: dict[str, Listed]) -> None:
        self.store, self.listing = store, listing
        self._pending = list(reversed(_history_ids(listing)))  # newest first
        self._found: dict[str, bytes] = {}

    def embedded(self, release_id: str) -> dict[str, bytes]:
        raw = self.store.get(history_name(release_id)) or b"{}"
        try:
            items = orjson.loads(raw).get("contents") or {}
            return {sha: base64.b64decode(text) for sha, text in items.items()}
        except (orjson.JSONDecodeError, ValueError, AttributeError):
            return {}

    def get(self, rest: str, sha: str) -> bytes | None:
        candidates = []
        if object_name(sha) in self.listing:
            candidates.append(lambda: self.store.get(object_name(sha)))
        if rest.endswith(".py"):
            candidates.append(lambda: stub.stub_for(rest.rsplit("/", 1)[-1]))
        candidates += [lambda: self._from_history(sha), lambda: self.store.get(rest)]
        for candidate in candidates:
            data = candidate()
            if data is not None and _sha(data) == sha:
                return data
        return None

    def _from_history(self, sha: str) -> bytes | None:
        while sha not in self._found and self._pending:
            self._found.update(self.embedded(self._pending.pop(0)))
        return self._found.get(sha)


def _restore(store: PackageStore, record: Release | None, written: Iterable[str]) -> list[str]:
    """Best effort: put the objects we wrote back to ``record``'s content. Returns what could not be."""
    failed: list[str] = []
    try:
        contents = Contents(store, store.list())
    except DagFactoryError:
        return sorted(written)
    for rest in sorted(written, key=lambda r: (r.endswith(".json"), r)):
        try:
            entry = record.files.get(rest) if record else None
            if entry is None:
                store.delete(rest)
                continue
            data = contents.get(rest, entry.sha256)
            if data is None:
                failed.append(rest)
            else:
                store.put(rest, data)
        except DagFactoryError:
            failed.append(rest)
    return failed


def execute(
    plan: Plan,
    *,
    keep: int = DEFAULT_KEEP,
    parallelism: int = DEFAULT_PARALLELISM,
    progress: bool = False,
    release_id: str | None = None,
) -> Release | None:
    """Apply ``plan``. Returns the committed record, or None when nothing had to change."""
    store, current = plan.store, plan.current
    if plan.noop:
        return None
    bar = _Progress(len(plan.copies) + len(plan.add) + len(plan.update), progress)
    written: list[str] = []
    versions: dict[str, str | None] = {}  # S3 VersionIds of what this publish wrote (versioned buckets)

    def copy(sha: str) -> None:
        store.put(object_name(sha), plan.copies[sha])
        bar.step()

    def upload(rest: str) -> None:
        versions[rest] = store.put(rest, plan.wanted.files[rest])
        written.append(rest)
        bar.step()

    changed = plan.add + plan.update
    try:
        _parallel(copy, sorted(plan.copies), parallelism)
        # Manifests before stubs: a stub whose manifest is missing would be an import error.
        _parallel(upload, [r for r in changed if r.endswith(".json")], parallelism)
        _parallel(upload, [r for r in changed if not r.endswith(".json")], parallelism)
    except DagFactoryError as exc:
        bar.close()
        failed = _restore(store, current.record, written)
        kept = current.record.release_id if current.record else "none"
        note = f"; {len(failed)} object(s) still differ from it until the next publish" if failed else ""
        raise type(exc)(
            f"{exc}\npublish of {store.package!r} aborted before the commit: release {kept} is still current{note}"
        ) from exc
    bar.close()

    record = Release(
        package=store.package,
        environment=store.environment,
        release_id=release_id or new_release_id(),
        published_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        publisher_version=__version__,
        files={
            rest: FileEntry(_sha(data), len(data), _version(rest, data, versions, current.record))
            for rest, data in plan.wanted.files.items()
        },
        dags=plan.wanted.dags,
        images=plan.wanted.images,
        package_version=plan.wanted.package_version,
        git_sha=plan.wanted.git_sha,
        previous_release_id=current.record.release_id if current.record else None,
        tombstone=plan.wanted.tombstone,
    )
    try:
        store.put(
            history_name(record.release_id),
            history_document(
                record,
                plan.embedded,
                {r: hashlib.md5(d, usedforsecurity=False).hexdigest() for r, d in plan.wanted.files.items()},
            ),
        )
        store.commit(record, expected_etag=current.etag)
    except StorageError as exc:
        # The commit may or may not have been applied (a dropped response): look before restoring.
        kept = current.record.release_id if current.record else "none"
        try:
            now = store.current().record
        except StorageError:
            raise StorageError(
                f"{exc}\ncommit of release {record.release_id} of {store.package!r} is unconfirmed; run 'list' or rerun the publish (it is idempotent)"
            ) from exc
        if now is None or now.release_id != record.release_id:
            failed = _restore(store, now, written)
            with contextlib.suppress(DagFactoryError):
                store.delete(history_name(record.release_id))
            note = f"; {len(failed)} object(s) still differ from it until the next publish" if failed else ""
            raise StorageError(
                f"{exc}\npublish of {store.package!r} aborted before the commit: release {now.release_id if now else kept} is still current{note}"
            ) from exc
    except RecordConflict as exc:
        winner = store.current().record
        failed = _restore(store, winner, written)
        with contextlib.suppress(DagFactoryError):
            store.delete(history_name(record.release_id))
        note = f"; {len(failed)} object(s) could not be restored" if failed else ""
        raise RecordConflict(
            f"{exc}: release {winner.release_id if winner else 'none'} stands, its objects were restored{note}; rerun to publish on top of it"
        ) from None
    # Committed. Removed DAGs go only now, stubs first (already ordered by the plan).
    stubs = [r for r in plan.delete if r.endswith(".py")]
    _parallel(store.delete, stubs, parallelism)
    _parallel(store.delete, [r for r in plan.delete if r not in stubs], parallelism)
    _prune(plan, record, keep, parallelism)
    return record


def _history_ids(listing: dict[str, Listed]) -> list[str]:
    ids = []
    for rest in listing:
        name = rest[len(RELEASES_DIR) + 1 :]
        if (
            rest.startswith(f"{RELEASES_DIR}/")
            and name.endswith(".json")
            and RELEASE_ID_RE.fullmatch(name[:-5])
        ):
            ids.append(name[:-5])
    return sorted(ids)


def _prune(plan: Plan, record: Release, keep: int, parallelism: int) -> None:
    """Keep the newest ``keep`` history records and only the content they need (moving it out of doomed ones)."""
    ids = sorted({*_history_ids(plan.listing), record.release_id})
    if keep <= 0 or len(ids) <= keep:
        return
    doomed, kept = ids[:-keep], ids[-keep:]
    store, contents = plan.store, Contents(plan.store, plan.listing)
    needed = {e.sha256 for e in record.files.values()}
    for release_id in kept:
        if release_id != record.release_id:
            needed |= {e.sha256 for e in store.history(release_id).files.values()}
    stored = {r.rsplit("/", 1)[-1] for r in plan.listing if r.startswith(f"{OBJECTS_DIR}/")} | set(
        plan.copies
    )
    embedded_in_kept: set[str] = set(plan.embedded)
    for release_id in kept:
        if release_id != record.release_id:
            embedded_in_kept |= set(contents.embedded(release_id))
    for release_id in doomed:
        for sha, data in contents.embedded(release_id).items():
            if sha in needed and sha not in stored and sha not in embedded_in_kept:
                store.put(object_name(sha), data)  # still needed: move it into the content store first
                stored.add(sha)
    objects = [object_name(sha) for sha in stored if sha not in needed and object_name(sha) in plan.listing]
    _parallel(store.delete, [history_name(i) for i in doomed] + objects, parallelism)


# -- rollback, retire, status ------------------------------------------------------------------


def rollback(store: PackageStore, release_id: str, *, parallelism: int = DEFAULT_PARALLELISM) -> Plan:
    """A plan that re-publishes exactly the files of an earlier release."""
    target = store.history(release_id)
    if target.tombstone:
        raise PublishError(f"release {release_id} is a tombstone (retire); roll back to a release before it")
    wanted = Wanted(
        dags=dict(target.dags),
        images=target.images,
        package_version=target.package_version,
        git_sha=target.git_sha,
    )
    missing = []
    contents = Contents(store, store.list())
    for rest, entry in sorted(target.files.items()):
        data = contents.get(rest, entry.sha256)
        if data is None:
            missing.append(rest)
        else:
            wanted.files[rest] = data
    if missing:
        raise PublishError(
            f"cannot roll back to {release_id}: content of {', '.join(missing)} is neither in {store.prefix}{OBJECTS_DIR}/ nor in a kept release record"
        )
    return make_plan(store, wanted, parallelism=parallelism)


def retire(store: PackageStore) -> Plan:
    """A plan that removes every DAG of the package behind a tombstone record (history is kept)."""
    plan = make_plan(store, Wanted(tombstone=True))
    if plan.current.record is None and not plan.delete:
        raise PublishError(
            f"nothing to retire: no release of {store.package!r} in s3://{store.bucket}/{store.environment}/"
        )
    return plan


def status(store: PackageStore, *, parallelism: int = DEFAULT_PARALLELISM) -> dict[str, Any]:
    """The current record and whether S3 agrees with it: missing, extra and mismatched files."""
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
    if rec is None:
        out.update(
            consistent=not live, missing=[], extra=sorted(live), mismatched=[], history=_history_ids(listing)
        )
        return out
    missing = sorted(r for r in rec.files if r not in listing)
    extra = sorted(live - set(rec.files))
    unsure = []
    mismatched = []
    etags: dict[str, str] = {}
    if history_name(rec.release_id) in listing:
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
    datas = _parallel(store.get, unsure, parallelism)
    mismatched += [
        r for r, d in zip(unsure, datas, strict=True) if d is None or _sha(d) != rec.files[r].sha256
    ]
    out.update(
        release_id=rec.release_id,
        previous_release_id=rec.previous_release_id,
        published_at=rec.published_at,
        package_version=rec.package_version,
        git_sha=rec.git_sha,
        tombstone=rec.tombstone,
        images=list(rec.images),
        dags=[{"dag_id": d, **rec.dags[d]} for d in sorted(rec.dags)],
        missing=missing,
        extra=extra,
        mismatched=sorted(mismatched),
        consistent=not (missing or extra or mismatched),
        history=_history_ids(listing),
    )
    return out


# -- CLI ---------------------------------------------------------------------------------------


def _target_flags(p: argparse.ArgumentParser, *, package: bool = True) -> None:
    add_flag(p, "--bucket", help="DAG bucket name")
    add_flag(p, "--environment", help="environment prefix in the bucket (dev, staging, prod ...)")
    if package:
        add_flag(p, "--package-name", help="package that owns <env>/<package>/")
    p.add_argument(
        "--parallelism",
        type=int,
        default=DEFAULT_PARALLELISM,
        help=f"concurrent S3 requests (default: {DEFAULT_PARALLELISM})",
    )
    add_output(p)


def register(sub: argparse._SubParsersAction) -> None:
    for name, helptext in (
        ("publish", "publish a package's DAGs as one atomic release"),
        ("plan", "show what publish would change (a dry run)"),
    ):
        p = sub.add_parser(name, help=helptext)
        _target_flags(p)
        p.add_argument(
            "--dag-path", type=Path, required=True, help="directory of manifests (and optionally their stubs)"
        )
        p.add_argument("--package-version", help="version recorded in the release record")
        p.add_argument("--git-sha", help="commit recorded in the release record")
        if name == "publish":
            p.add_argument(
                "--dry-run", action="store_true", help="print the plan, write nothing (same as 'plan')"
            )
            p.add_argument(
                "--keep",
                type=int,
                default=DEFAULT_KEEP,
                help=f"release records kept for rollback (default: {DEFAULT_KEEP})",
            )
        p.set_defaults(handler=cmd_publish, dry_run=name == "plan", keep=DEFAULT_KEEP)

    p = sub.add_parser("list", help="list a package's published DAGs and check S3 against its release record")
    _target_flags(p, package=False)
    add_flag(p, "--package-name", help="package to list", required=False)
    p.add_argument("--all-packages", action="store_true", help="list every package of the environment")
    p.add_argument("--history", action="store_true", help="also list the release ids kept for rollback")
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("rollback", help="re-publish the exact files of an earlier release")
    _target_flags(p)
    p.add_argument("--to", dest="to", required=True, help="release id (see 'list --history')")
    p.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    p.add_argument(
        "--keep", type=int, default=DEFAULT_KEEP, help=f"release records kept (default: {DEFAULT_KEEP})"
    )
    p.set_defaults(handler=cmd_rollback)

    p = sub.add_parser("retire", help="remove a package: write a tombstone release, then delete its DAGs")
    _target_flags(p)
    p.add_argument(
        "--yes", action="store_true", help="really retire (without it: print what would be deleted)"
    )
    p.set_defaults(handler=cmd_retire)

    p = sub.add_parser(
        "iam-policy", help="print least-privilege IAM policies for the package CI role and Airflow"
    )
    add_flag(p, "--bucket", help="DAG bucket name")
    add_flag(p, "--environment", help="environment prefix in the bucket")
    add_flag(p, "--package-name", help="package whose CI role the policy is for")
    p.set_defaults(handler=cmd_iam_policy)


def _store(args: argparse.Namespace, package: str | None = None) -> PackageStore:
    if args.parallelism < 1:
        raise ConfigError("--parallelism must be at least 1")
    client = s3_client(max_pool_connections=max(10, args.parallelism + 2))
    return PackageStore(client, args.bucket, args.environment, package or args.package_name)


def _warn(plan: Plan) -> None:
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _plan_text(plan: Plan) -> str:
    lines = (
        [f"  + {r}" for r in plan.add] + [f"  ~ {r}" for r in plan.update] + [f"  - {r}" for r in plan.delete]
    )
    lines.append(
        f"  {len(plan.add)} to add, {len(plan.update)} to update, {len(plan.delete)} to delete, {len(plan.unchanged)} unchanged"
    )
    return "\n".join(lines)


def _apply(args: argparse.Namespace, plan: Plan, verb: str) -> int:
    _warn(plan)
    store = plan.store
    where = f"{store.package} in s3://{store.bucket}/{store.prefix}"
    if args.dry_run:
        emit(args, f"plan for {where}:\n{_plan_text(plan)}", {"ok": True, "dry_run": True, **plan.to_dict()})
        return 0
    record = execute(plan, keep=args.keep, parallelism=args.parallelism, progress=sys.stderr.isatty())
    data = {"ok": True, "dry_run": False, **plan.to_dict(), "changed": record is not None}
    if record is None:
        rec = plan.current.record
        data["release_id"] = rec.release_id if rec else None
        emit(args, f"{where}: up to date, release {data['release_id']} stays current (nothing written)", data)
        return 0
    data.update(release_id=record.release_id, previous_release_id=record.previous_release_id)
    emit(
        args,
        f"{verb} {where}: release {record.release_id} (previous {record.previous_release_id})\n{_plan_text(plan)}",
        data,
    )
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    if args.keep < 1:
        raise ConfigError("--keep must be at least 1 (the current release)")
    store = PackageStore(None, args.bucket, args.environment, args.package_name)  # names first, no client yet
    wanted = wanted_from_dir(args.dag_path, store.package)  # invalid input: nothing else happens
    store.client = _store(args).client
    wanted.package_version, wanted.git_sha = args.package_version, args.git_sha
    return _apply(args, make_plan(store, wanted, parallelism=args.parallelism), "published")


def cmd_rollback(args: argparse.Namespace) -> int:
    store = _store(args)
    history_name(args.to)  # a release id, not a path
    return _apply(args, rollback(store, args.to, parallelism=args.parallelism), f"rolled back to {args.to}:")


def cmd_retire(args: argparse.Namespace) -> int:
    store = _store(args)
    plan = retire(store)
    args.dry_run, args.keep = not args.yes, DEFAULT_KEEP
    if not args.yes:
        print("dry run: pass --yes to retire", file=sys.stderr)
    return _apply(args, plan, "retired")


def _status_text(s: dict[str, Any], history: bool) -> str:
    head = f"{s['package']} in {s['environment']}: "
    if s["release_id"] is None:
        lines = [head + "no release" + (f" ({s['problem']})" if "problem" in s else "")]
    else:
        lines = [
            head
            + f"release {s['release_id']} published {s['published_at']}"
            + (f", version {s['package_version']}" if s.get("package_version") else "")
            + (f", git {s['git_sha']}" if s.get("git_sha") else "")
            + (" (retired: tombstone)" if s.get("tombstone") else "")
        ]
        for d in s["dags"]:
            lines.append(
                f"  {d['dag_id']}  schedule={d.get('schedule')}  image={', '.join(d.get('images', []))}"
            )
    if s["consistent"]:
        lines.append("  S3 matches the release record")
    for kind in ("missing", "extra", "mismatched"):
        lines += [f"  {kind}: {r}" for r in s[kind]]
    if history:
        lines += [
            f"  release {r}" + (" (current)" if r == s["release_id"] else "") for r in reversed(s["history"])
        ]
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    if args.all_packages:
        if args.parallelism < 1:
            raise ConfigError("--parallelism must be at least 1")
        names = env_packages(s3_client(), args.bucket, args.environment)
    elif args.package_name:
        names = [args.package_name]
    else:
        raise ConfigError("list needs --package-name (or DAG_PACKAGE_NAME) or --all-packages")
    results = [status(_store(args, package=n), parallelism=args.parallelism) for n in names]
    if not args.history:
        for r in results:
            r.pop("history", None)
    text = "\n".join(_status_text(r, args.history) for r in results) or "no packages"
    emit(args, text, {"ok": True, "packages": results} if args.all_packages else {"ok": True, **results[0]})
    return 0


def cmd_iam_policy(args: argparse.Namespace) -> int:
    print(iam.dumps(iam.policies(args.bucket, args.environment, args.package_name)), end="")
    return 0
