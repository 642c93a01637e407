"""A publish as a transaction on one package prefix: immutable content, then one pointer.

Nothing a reader trusts is overwritten before the commit (see :mod:`dagfactory_s3.naming` for keys):

1. validate every manifest of ``--dag-path`` (any problem: nothing touches S3);
2. read ``metadata.json`` (and its ETag), one listing of the package prefix, the other packages' records;
3. plan: the record to commit, and which manifest contents the content store lacks;
4. upload those contents to ``_releases/objects/<sha256>``: written once, never overwritten, named by no
   record yet, so invisible to every reader;
5. **commit**: ``metadata.json`` with a conditional PUT (If-Match the ETag read in step 2, If-None-Match
   ``*`` for a first release) -- the only write a reader trusts. The record carries the release it
   replaces (and those before, up to ``--keep``) as changes against it, for rollback; a replaced
   release that changed many DAGs is written whole to ``_releases/<id>.json`` in step 4 instead;
6. after the commit only: the human-readable ``dags/`` copies of the seed's layout (never what a reader
   trusts), deletes of removed ``dags/`` files, pruning of history objects beyond ``--keep`` and garbage
   collection of content no kept release names (after a grace period).

An interruption or failure before step 5 leaves the previous release in force and nothing to undo; a
rerun with the same git sha and package version takes over the stopped attempt's release id (read
from the newest content object no record names), so its stamped manifests are the bytes already
uploaded and it uploads only what is missing. An interruption after step 5 leaves the new release in
force; a rerun (even of the same sources) finishes step 6. ``rollback`` and ``retire`` are publishes of
an earlier record's files and of no files (a tombstone record).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from dagfactory_s3 import __version__, naming, platform, settings, stub
from dagfactory_s3 import manifest as manifests
from dagfactory_s3.errors import (
    DagFactoryError,
    Interrupted,
    ManifestError,
    Problem,
    PublishError,
    StorageError,
)
from dagfactory_s3.naming import DAGS_DIR, OBJECTS_DIR, history_name, object_name, release_id_of
from dagfactory_s3.publisher.scan import override_problems, scan
from dagfactory_s3.publisher.store import Current, PackageStore
from dagfactory_s3.release import (
    CONTENT_OBJECTS,
    DELTA_LIMIT,
    Earlier,
    FileEntry,
    Origin,
    Release,
    dag_summary,
    same_summaries,
)
from dagfactory_s3.s3 import Listed

__all__ = [
    "DEFAULT_GC_GRACE",
    "DEFAULT_KEEP",
    "DEFAULT_PARALLELISM",
    "ReleasePlan",
    "Stop",
    "Wanted",
    "execute",
    "history_ids",
    "kept_releases",
    "make_plan",
    "parallel",
    "past_release",
    "promote",
    "retire",
    "rollback",
    "wanted_from_dir",
    "wanted_from_sources",
]

DEFAULT_KEEP = settings.OPTIONS["keep"].default
DEFAULT_PARALLELISM = settings.OPTIONS["parallelism"].default
DEFAULT_GC_GRACE = settings.OPTIONS["gc_grace"].default


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def new_release_id() -> str:
    """Sortable by time (to the millisecond), unique by a random suffix: ``20240101T120000.123Z-1a2b3c``."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S.") + f"{now.microsecond // 1000:03d}Z-" + secrets.token_hex(3)


class Stop:
    """SIGINT/SIGTERM while publishing: no new upload starts, the commit is never cut in half.

    The handler only sets a flag; uploads in flight finish (each is bounded by the client's timeouts)
    and the transaction checks the flag between steps, so a signal never lands inside a request.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Stop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        self.signum = signum
        self.event.set()

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def interrupted(self, message: str) -> Interrupted:
        name = signal.Signals(self.signum).name if self.signum else "signal"
        error = Interrupted(f"interrupted ({name}) {message}")
        error.exit_code = 128 + (self.signum or 2)
        return error


@dataclass
class Wanted:
    """What the package should look like after the release: files by name under the prefix, DAG info."""

    files: dict[str, bytes] = field(default_factory=dict)
    dags: dict[str, dict[str, Any]] = field(default_factory=dict)
    images: tuple[str, ...] = ()
    package_version: str | None = None
    git_sha: str | None = None
    published_by: str | None = None  # recorded, never compared: see ReleasePlan.record_is_current
    tombstone: bool = False
    # The source of each manifest published resolved for its environment (rest -> source bytes);
    # a manifest not named here is its own source. ``sources_recorded``: the record may say so.
    sources: dict[str, bytes] = field(default_factory=dict)
    sources_recorded: bool = True
    promoted_from: Origin | None = None  # recorded, never compared
    # Each stamped manifest's unstamped sha256 and stamp (rest -> (sha256, provenance)), filled by
    # make_plan; ``stamped``: the files carry their stamps already (rollback), make_plan keeps them.
    stamps: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    stamped: bool = False

    def digests(self) -> dict[str, tuple[str, str | None]]:
        """Each file's sha256 and its source's (None: its own source): what a release is compared by."""
        return {
            rest: (_sha(data), _sha(self.sources[rest]) if rest in self.sources else None)
            for rest, data in self.files.items()
        }

    def contents(self) -> dict[str, bytes]:
        """The manifests' and their sources' bytes by sha256: what the content store must hold (stubs
        are regenerated)."""
        manifests = [data for rest, data in self.files.items() if rest.endswith(".json")]
        return {_sha(data): data for data in [*manifests, *self.sources.values()]}


def _digests(record: Release) -> dict[str, tuple[str, str | None]]:
    return {r: (e.sha256, e.source.sha256 if e.source else None) for r, e in record.files.items()}


def wanted_from_dir(
    dag_path: Path,
    package: str,
    *,
    policy: platform.Policy = platform.DEFAULT,
    environment: str | None = None,
) -> Wanted:
    """Validate ``dag_path`` (all problems at once) and build the files to publish: manifests (resolved
    for ``environment`` when they declare ``environments``) + fresh stubs."""
    found = scan(dag_path, package=package, strict_names=True, policy=policy)
    return wanted_from_sources(found.manifests, environment or "")


def wanted_from_sources(sources: dict[str, manifests.Manifest], environment: str) -> Wanted:
    """The files to publish from valid source manifests by dag_id: each resolved for ``environment``
    (all problems at once), its stub, and the source of each manifest that was resolved."""
    resolved = {}
    problems = []
    for dag_id in sorted(sources):
        try:
            resolved[dag_id] = manifests.publishable(sources[dag_id], environment)
        except ManifestError as exc:
            problems += exc.problems()
    if problems:
        raise ManifestError(problems)
    wanted = Wanted()
    images: set[str] = set()
    for dag_id in sorted(resolved):
        m = resolved[dag_id]
        rest = naming.dag_file(dag_id, ".json")
        wanted.files[rest] = m.raw
        if m.raw != sources[dag_id].raw:
            wanted.sources[rest] = sources[dag_id].raw
        wanted.files[naming.dag_file(dag_id, ".py")] = stub.render(naming.manifest_name(dag_id))
        wanted.dags[dag_id] = dag_summary(m.data, m.images, len(m.tasks))
        images.update(m.images)
    wanted.images = tuple(sorted(images))
    return wanted


@dataclass
class ReleasePlan:
    """The diff between what is wanted and what S3 holds, and everything needed to apply it."""

    store: PackageStore
    current: Current
    listing: dict[str, Listed]  # by name relative to the package prefix
    wanted: Wanted
    add: list[str] = field(default_factory=list)  # DAG files, compared with the current record
    update: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)  # sha256 -> content the store lacks
    warnings: list[str] = field(default_factory=list)
    release_id: str = field(default_factory=new_release_id)  # of the release it would commit

    @property
    def record_is_current(self) -> bool:
        """The current record already describes what is wanted: the same files from the same sources.
        Package version, git sha, publisher and origin are not compared: a rerun from another CI job,
        with a new version or by promote writes nothing."""
        rec = self.current.record
        return (
            rec is not None
            and rec.content == CONTENT_OBJECTS
            and rec.tombstone == self.wanted.tombstone
            and rec.sources == self.wanted.sources_recorded
            and _digests(rec) == self.wanted.digests()
            and same_summaries(rec.dags, self.wanted.dags)
        )

    @property
    def noop(self) -> bool:
        return self.record_is_current and not self.uploads

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
            "new_contents": len(self.uploads),
            "commit": not self.record_is_current,
            "warnings": self.warnings,
        }


def parallel(
    fn: Callable[[Any], Any], items: Iterable[Any], workers: int, stop: Stop | None = None
) -> list[Any]:
    """``fn`` over ``items`` on up to ``workers`` threads; after ``stop``, items not yet started are skipped."""
    items = list(items)
    if not items:
        return []

    def run(item: Any) -> Any:
        return None if stop is not None and stop.requested else fn(item)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        futures = [pool.submit(run, item) for item in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def make_plan(store: PackageStore, wanted: Wanted, *, parallelism: int = DEFAULT_PARALLELISM) -> ReleasePlan:
    """Read S3 (record, listing, other packages' records), stamp the manifests that changed, and
    diff. Writes nothing."""
    plan = ReleasePlan(store, store.current(), store.list(), wanted)
    if plan.current.problem:
        plan.warnings.append(f"ignoring unreadable current record: {plan.current.problem}")
    rec = plan.current.record
    if not wanted.stamped:
        plan.release_id = _stopped_attempt(plan) or plan.release_id
        _stamp(wanted, rec, plan.release_id)
    old = _digests(rec) if rec else {}
    for rest, sha in sorted(wanted.digests().items()):
        if rest not in old:
            plan.add.append(rest)
        else:
            (plan.unchanged if old[rest] == sha else plan.update).append(rest)
    plan.delete = sorted(
        (r for r in old if r not in wanted.files),
        key=lambda r: (not r.endswith(".py"), r),  # stubs before manifests: never a stub without its manifest
    )
    for sha, data in sorted(wanted.contents().items()):
        listed = plan.listing.get(object_name(sha))
        # Content-addressed, but an object at the right key is trusted only when its size and MD5
        # ETag say it holds these bytes; when the ETag cannot tell (SSE-KMS, multipart), it is
        # written again: the same bytes under the same key, which changes nothing for readers.
        if listed is None or listed.same_bytes(data) is not True:
            plan.uploads[sha] = data
    _check_dag_ids(plan)
    return plan


# How many of the newest unnamed content objects a plan reads to find a stopped attempt's release.
_ATTEMPT_PROBES = 3
# S3's LastModified against the publisher's clock (published_at): unnamed objects this much older
# than the current record still count (the release id order decides, see _stopped_attempt).
_CLOCK_SKEW = 300.0


def _epoch(stamp: str) -> float:
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return 0.0


def _stopped_attempt(plan: ReleasePlan) -> str | None:
    """The release id a publish stopped before its commit stamped its manifests with, when this plan
    is a rerun of it, so the rerun's stamped manifests are the bytes already uploaded (no new
    content, no orphans). None when there is none: the usual case costs no request.

    A stopped attempt leaves content objects no record names, written after the current record's
    commit (give or take ``_CLOCK_SKEW``). The newest stamped manifest among them (at most
    ``_ATTEMPT_PROBES`` are read; sources carry no stamp) decides: its release is reused when the
    stamp's git sha and package version are this publish's (so it stays true), the id sorts after
    every release of the package (so history stays in order) and is not later than now, give or take
    ``_CLOCK_SKEW`` (a planted stamp cannot push the package's history into the future). A concurrent publish of the same
    package that adopts it loses nothing: only one conditional commit wins, and content is
    addressed by its bytes."""
    rec, wanted = plan.current.record, plan.wanted
    if wanted.tombstone:
        return None
    named = {sha for e in rec.files.values() for sha in e.digests()} if rec else set()
    since = _epoch(rec.published_at) - _CLOCK_SKEW if rec else 0.0
    unnamed = sorted(
        (item.modified, rest)
        for rest, item in plan.listing.items()
        if (sha := naming.sha_of_object(rest))
        and sha not in named
        and item.modified >= since
        and item.size <= manifests.MAX_BYTES + 1024
    )
    latest = max([rec.release_id if rec else "", *history_ids(plan.listing, rec)])
    expected = {
        k: v for k, v in (("git_sha", wanted.git_sha), ("package_version", wanted.package_version)) if v
    }
    for _, rest in reversed(unnamed[-_ATTEMPT_PROBES:]):
        try:
            doc = orjson.loads(plan.store.get(rest) or b"null")
        except orjson.JSONDecodeError:
            continue
        stamp = doc.get(manifests.PROVENANCE) if isinstance(doc, dict) else None
        if not isinstance(stamp, dict):
            continue  # a source manifest (never stamped), or not a manifest
        release = stamp.pop("release", None)
        fits = (
            isinstance(release, str)
            and naming.RELEASE_ID_RE.fullmatch(release)
            and latest < release <= _release_instant(time.time() + _CLOCK_SKEW)  # never a planted future id
        )
        return release if fits and stamp == expected else None
    return None


def _release_instant(at: float) -> str:
    """The greatest release id of instant ``at`` (release ids sort by their instant first)."""
    when = datetime.fromtimestamp(at, timezone.utc)
    return when.strftime("%Y%m%dT%H%M%S.") + f"{when.microsecond // 1000:03d}Z-~"


def _stamp(wanted: Wanted, record: Release | None, release_id: str) -> None:
    """Stamp each manifest with the release that last changed it: the stamp it has in ``record`` when
    its unstamped bytes are those the record names, else this release's (id, git sha, version).
    So an unchanged manifest keeps its exact bytes, and only changed DAGs get a new DAG version."""
    fresh = {
        k: v
        for k, v in (
            ("release", release_id),
            ("git_sha", wanted.git_sha),
            ("package_version", wanted.package_version),
        )
        if v
    }
    for key in (
        "git_sha",
        "package_version",
    ):  # what the loader accepts in a stamp (a promoted or old record's too)
        if key in fresh:
            settings.release_label(key, fresh[key])
    for rest in sorted(r for r in wanted.files if r.endswith(".json")):
        raw = wanted.files[rest]
        digest = _sha(raw)
        old = record.files.get(rest) if record and record.content == CONTENT_OBJECTS else None
        provenance = fresh
        if old and old.unstamped == digest and old.provenance:
            kept = manifests.stamp(raw, old.provenance)
            if _sha(kept) == old.sha256:  # the same stamp written the same way
                provenance = old.provenance
        wanted.files[rest] = manifests.stamp(raw, provenance)
        wanted.stamps[rest] = (digest, provenance)
        if (
            len(wanted.files[rest]) > manifests.MAX_BYTES
        ):  # validate counts the stamp; never publish what no reader serves
            raise PublishError(f"{rest}: stamped for publishing, {manifests.too_large()}")


def _check_dag_ids(plan: ReleasePlan) -> None:
    """Refuse a DAG id another package of the environment already publishes, or that a longer package
    name owns (when we can read theirs)."""
    if not plan.wanted.dags:
        return
    others, warning = plan.store.other_packages()
    if warning:
        plan.warnings.append(warning)
    elif not others and plan.current.record is None and not plan.listing:
        plan.warnings.append(plan.store.empty_environment())
    problems = []
    live = {package for package, record in others.items() if not record.tombstone}
    for dag_id in sorted(plan.wanted.dags):
        why = naming.foreign_owner(dag_id, plan.store.package, live)
        if why:
            problems.append(f"{why}; publish it from that package, or rename it")
    for package, record in sorted(others.items()):
        if record.tombstone:
            continue
        theirs = set(record.dags) | {naming.dag_id_of(r) for r in record.files}
        for dag_id in sorted(theirs & set(plan.wanted.dags)):
            problems.append(
                f"dag_id {dag_id!r} is already published by package {package!r} in {plan.store.environment!r}; DAG ids must be unique across packages"
            )
    if problems:
        raise PublishError("\n".join(problems))


def _history(
    plan: ReleasePlan, files: dict[str, FileEntry], keep: int, new_id: str, gc_grace: float
) -> tuple[tuple[Earlier, ...], str | None]:
    """The new record's ``history``, and the release whose history object must be written first.

    The replaced release goes in as its change against the new one, unless that change is large (then
    it is kept whole in its own history object, written before the commit) or its object already
    exists. Older entries follow unchanged, cut where ``--keep`` ends (a suffix: the changes chain).
    """
    old = plan.current.record
    if old is None:
        return (), None
    exists = history_name(old.release_id) in plan.listing
    replaced = Earlier.of(old, files, plan.wanted.dags)
    stored = exists or len(replaced.files) + len(replaced.dags) > DELTA_LIMIT
    chain = (replaced.kept_whole() if stored else replaced, *old.history)
    kept = set(_kept_ids(plan.listing, chain, new_id, keep, gc_grace))
    cut = next((i for i, e in enumerate(chain) if e.release_id not in kept), len(chain))
    return chain[:cut], old.release_id if stored and not exists and cut else None


def _kept_ids(
    listing: dict[str, Listed], chain: Iterable[Earlier], current: str, keep: int, grace: float
) -> list[str]:
    """The newest ``keep`` release ids among the current one, the chain's and the history objects',
    and every release replaced less than ``grace`` seconds ago (its successor's id is younger): a DAG
    run in flight may still name it, and a fresh worker rebuilds its version from what is kept."""
    ids = sorted({current, *(e.release_id for e in chain), *_object_ids(listing)})
    if keep <= 0:
        return ids
    cutoff = time.time() - grace
    recent = next((i for i in range(len(ids) - 1) if naming.release_time(ids[i + 1]) > cutoff), len(ids))
    return ids[min(recent, max(0, len(ids) - keep)) :]


def execute(
    plan: ReleasePlan,
    *,
    keep: int = DEFAULT_KEEP,
    parallelism: int = DEFAULT_PARALLELISM,
    on_upload: Callable[[int], None] | None = None,
    stop: Stop | None = None,
    gc_grace: float = DEFAULT_GC_GRACE,
) -> Release | None:
    """Apply ``plan``. Returns the committed record, or None when the current record already is it
    (then only the after-commit steps run, repairing what an interrupted publish left undone).
    ``on_upload(size)`` is called (from the upload threads) after each content object is written:
    the caller's progress report; the engine draws nothing."""
    store, current = plan.store, plan.current
    stop = stop or Stop()
    if plan.noop:
        _after_commit(plan, current.record, keep=keep, parallelism=parallelism, stop=stop, gc_grace=gc_grace)
        return None
    versions: dict[str, str | None] = {}  # sha -> VersionId of what this publish wrote (versioned buckets)

    def upload(sha: str) -> None:
        versions[sha] = store.put(object_name(sha), plan.uploads[sha])
        if on_upload:
            on_upload(len(plan.uploads[sha]))

    kept = current.record.release_id if current.record else "none"
    try:
        parallel(upload, sorted(plan.uploads), parallelism, stop)
    except DagFactoryError as exc:
        raise _before_commit(type(exc), f"{exc}\n", plan, versions, kept) from exc
    if stop.requested:
        raise _before_commit(stop.interrupted, "", plan, versions, kept)

    new_id = plan.release_id  # the id the changed manifests are stamped with
    sources = plan.wanted.sources
    files = {
        rest: FileEntry(
            _sha(data),
            len(data),
            _version(rest, data, versions, current.record),
            _md5(data),
            FileEntry(_sha(sources[rest]), len(sources[rest])) if rest in sources else None,
            *(plan.wanted.stamps.get(rest) or (None, None)),
        )
        for rest, data in plan.wanted.files.items()
    }
    history, write_first = _history(plan, files, keep, new_id, gc_grace)
    if write_first and current.record:  # kept whole: its object exists before the record stops naming it
        try:
            store.put(history_name(write_first), current.record.whole().to_json())
        except DagFactoryError as exc:
            raise _before_commit(type(exc), f"{exc}\n", plan, versions, kept) from exc
    record = Release(
        package=store.package,
        environment=store.environment,
        release_id=new_id,
        published_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        publisher_version=__version__,
        files=files,
        dags=plan.wanted.dags,
        images=plan.wanted.images,
        package_version=plan.wanted.package_version,
        git_sha=plan.wanted.git_sha,
        published_by=plan.wanted.published_by,
        previous_release_id=current.record.release_id if current.record else None,
        tombstone=plan.wanted.tombstone,
        content=CONTENT_OBJECTS,
        sources=plan.wanted.sources_recorded,
        promoted_from=plan.wanted.promoted_from,
        history=history,
    )
    try:
        store.commit(record, expected_etag=current.etag)
    except StorageError as exc:
        # The commit may or may not have been applied (a dropped response): look before reporting.
        try:
            now = store.current().record
        except StorageError:
            raise StorageError(
                f"{exc}\ncommit of release {record.release_id} of {store.package!r} is unconfirmed; run 'list' or rerun the publish (it is idempotent)"
            ) from exc
        if now is None or now.release_id != record.release_id:
            raise _before_commit(
                StorageError, f"{exc}\n", plan, versions, now.release_id if now else kept
            ) from exc
    _after_commit(plan, record, keep=keep, parallelism=parallelism, stop=stop, gc_grace=gc_grace)
    return record


def _before_commit(
    make: Callable[[str], DagFactoryError], cause: str, plan: ReleasePlan, written: dict[str, Any], kept: str
) -> DagFactoryError:
    """The error for a publish that stopped before its commit: which release stands, what is in S3."""
    store = plan.store
    return make(
        f"{cause}before the commit: release {kept} is still current for package {store.package!r}; "
        f"{len(written)} of {len(plan.uploads)} new content objects are in {store.url(OBJECTS_DIR)}/ "
        "(named by no record, invisible to readers); rerun the same publish to complete it "
        f"(with the same --git-sha and --package-version it commits release {plan.release_id}, "
        "uploading only what is missing)"
    )


def _version(rest: str, data: bytes, written: dict[str, str | None], previous: Release | None) -> str | None:
    """The VersionId of a file's content object: just written, or kept unchanged from the previous record."""
    sha = _sha(data)
    if sha in written:
        return written[sha]
    kept = previous.files.get(rest) if previous else None
    return kept.version_id if kept and kept.sha256 == sha and previous.content == CONTENT_OBJECTS else None


def _after_commit(
    plan: ReleasePlan, record: Release, *, keep: int, parallelism: int, stop: Stop, gc_grace: float
) -> None:
    """Everything after the commit point. Idempotent: a rerun finishes what an interruption left.

    Readers never trust what these steps write; each is skipped when already done, so an unchanged
    republish writes nothing at all.
    """
    store, listing = plan.store, plan.listing
    steps: list[tuple[str, Callable[[], None]]] = []
    stale = [
        rest
        for rest, data in sorted(plan.wanted.files.items())
        if not (listing.get(rest) and listing[rest].same_bytes(data))
    ]

    # Manifests before stubs, so an `aws s3 sync` of dags/ never sees a stub without its manifest.
    def copy(rest: str) -> None:
        store.put(rest, plan.wanted.files[rest])

    for suffix in (".json", ".py"):
        batch = [r for r in stale if r.endswith(suffix)]
        steps.append(("copies", lambda b=batch: parallel(copy, b, parallelism, stop)))
    removed = sorted(
        (r for r in listing if r.startswith(f"{DAGS_DIR}/") and r not in plan.wanted.files),
        key=lambda r: (not r.endswith(".py"), r),
    )
    for suffix in (".py", ".json"):  # stubs first: a stub never outlives its manifest
        batch = [r for r in removed if r.endswith(suffix)]
        steps.append(("deletes", lambda b=batch: parallel(store.delete, b, parallelism, stop)))
    steps.append(("prune", lambda: _prune(plan, record, keep, parallelism, gc_grace)))
    unfinished = (
        f"release {record.release_id} of {store.package!r} is committed and complete for readers; "
        "its readable dags/ copies or history housekeeping are unfinished; rerun the same publish to finish them"
    )
    for _, step in steps:
        if stop.requested:
            raise stop.interrupted(f"after the commit: {unfinished}")
        try:
            step()
        except StorageError as exc:
            raise StorageError(f"{exc}\nafter the commit: {unfinished}") from exc


def _object_ids(listing: dict[str, Listed]) -> list[str]:
    return [i for i in map(release_id_of, listing) if i]


def history_ids(listing: dict[str, Listed], record: Release | None) -> list[str]:
    """The release ids kept for rollback, oldest first: the current record's, those its history
    carries, and those of history objects in the package listing."""
    chain = (record.release_id, *(e.release_id for e in record.history)) if record else ()
    return sorted({*chain, *_object_ids(listing)})


def past_release(store: PackageStore, record: Release | None, release_id: str) -> Release:
    """Release ``release_id`` rebuilt whole: from the current record's history, or its history object."""
    for release in record.releases(store.history) if record else ():
        if release.release_id == release_id:
            return release
    return store.history(release_id)


def kept_releases(
    store: PackageStore, record: Release | None, ids: list[str], parallelism: int = DEFAULT_PARALLELISM
) -> list[Release]:
    """Each release of ``ids`` rebuilt whole, oldest first: from ``record``'s history chain, the rest
    from their history objects."""
    chain = {r.release_id: r for r in record.releases(store.history)} if record else {}
    rest = [i for i in ids if i not in chain]
    found = {**chain, **dict(zip(rest, parallel(store.history, rest, parallelism), strict=True))}
    return [found[i] for i in sorted(found) if i in ids]


def _prune(plan: ReleasePlan, record: Release, keep: int, parallelism: int, gc_grace: float) -> None:
    """Keep the newest ``keep`` releases (and those replaced within ``gc_grace``: :func:`_kept_ids`);
    delete history objects of the others and content no kept
    release names, once it is older than ``gc_grace`` seconds (younger orphans may belong to a
    publish still uploading)."""
    store = plan.store
    kept = _kept_ids(plan.listing, record.history, record.release_id, keep, gc_grace)
    doomed = [i for i in _object_ids(plan.listing) if i not in kept]
    current = {sha for e in record.files.values() for sha in e.digests()}
    cutoff = time.time() - gc_grace
    candidates = {
        rest: sha
        for rest, listed in plan.listing.items()
        if (sha := naming.sha_of_object(rest)) and sha not in current and listed.modified < cutoff
    }
    if not doomed and not candidates:
        return  # the common case: nothing to read, nothing to delete
    needed = set(current)
    chained = set()
    for release in record.releases(store.history):
        needed |= {sha for e in release.files.values() for sha in e.digests()}
        chained.add(release.release_id)
    for release_id in kept:
        if release_id not in chained:
            needed |= {sha for e in store.history(release_id).files.values() for sha in e.digests()}
    orphans = sorted(rest for rest, sha in candidates.items() if sha not in needed)
    # Content a doomed 0.1 record embeds and a kept one still names moves to the content store first.
    if doomed:
        stored = {naming.sha_of_object(r) for r in plan.listing} | set(plan.uploads)
        for release_id in doomed:
            for sha, data in _embedded(store, release_id).items():
                if sha in needed and sha not in stored:
                    store.put(object_name(sha), data)
                    stored.add(sha)
    parallel(store.delete, [history_name(i) for i in doomed] + orphans, parallelism)


def _embedded(store: PackageStore, release_id: str) -> dict[str, bytes]:
    """Content a history record written by dagfactory-s3 0.1 carries inline (``contents``, base64)."""
    raw = store.get(history_name(release_id)) or b"{}"
    try:
        items = orjson.loads(raw).get("contents") or {}
        return {sha: base64.b64decode(text) for sha, text in items.items()}
    except (orjson.JSONDecodeError, ValueError, AttributeError):
        return {}


# -- rollback, retire --------------------------------------------------------------------------


def _content(store: PackageStore, listing: dict[str, Listed], rest: str, sha: str) -> bytes | None:
    """The bytes of ``rest`` with digest ``sha``: the content store, a regenerated stub, a 0.1 history
    record's inline content, or the readable copy -- whichever matches the digest."""
    candidates: list[Callable[[], bytes | None]] = []
    if object_name(sha) in listing:
        candidates.append(lambda: store.get(object_name(sha)))
    if rest.endswith(".py"):
        candidates.append(lambda: stub.stub_for(rest.rpartition("/")[2]))
    candidates += [lambda i=i: _embedded(store, i).get(sha) for i in reversed(_object_ids(listing))]
    candidates.append(lambda: store.get(rest))
    for candidate in candidates:
        data = candidate()
        if data is not None and _sha(data) == sha:
            return data
    return None


def rollback(store: PackageStore, release_id: str, *, parallelism: int = DEFAULT_PARALLELISM) -> ReleasePlan:
    """A plan that re-publishes exactly the files of an earlier release."""
    target = past_release(store, store.current().record, release_id)
    if target.tombstone:
        raise PublishError(f"release {release_id} is a tombstone (retire); roll back to a release before it")
    wanted = Wanted(
        dags=dict(target.dags),
        images=target.images,
        package_version=target.package_version,
        git_sha=target.git_sha,
        sources_recorded=target.sources,
        promoted_from=target.promoted_from,
        stamped=True,
    )
    listing = store.list()
    missing = []
    for rest, entry in sorted(target.files.items()):
        data = _content(store, listing, rest, entry.sha256)
        if data is None and rest.endswith(".py"):
            data = stub.stub_for(rest.rpartition("/")[2])  # an older template: today's canonical stub
        source = _content(store, listing, rest, entry.source.sha256) if entry.source else None
        if data is None or (entry.source and source is None):
            missing.append(rest)
        else:
            wanted.files[rest] = data
            if source is not None:
                wanted.sources[rest] = source
            if entry.unstamped and entry.provenance:
                wanted.stamps[rest] = (entry.unstamped, entry.provenance)
    if missing:
        raise PublishError(
            f"cannot roll back to {release_id}: content of {', '.join(missing)} is neither in {store.prefix}{OBJECTS_DIR}/ nor in a kept release record"
        )
    return make_plan(store, wanted, parallelism=parallelism)


def promote(
    source: PackageStore,
    target: PackageStore,
    release_id: str | None = None,
    *,
    policy: platform.Policy = platform.DEFAULT,
    parallelism: int = DEFAULT_PARALLELISM,
) -> ReleasePlan:
    """A plan that publishes to ``target`` the sources recorded by a release of ``source`` (its
    current one, or ``release_id`` from its history), resolved for the target's environment and
    checked with the rules of ``publish`` under ``policy`` (the target's). Reads S3 only; any problem
    raises before a write."""
    record = source.current().record
    if record is None:
        raise PublishError(f"nothing to promote: no release of {source.package!r} in {source.url()}")
    release = past_release(source, record, release_id) if release_id else record
    what = f"release {release.release_id} of {source.package!r} in {source.environment!r}"
    if release.tombstone:
        raise PublishError(f"{what} is a tombstone (retire); nothing to promote")
    if not release.sources or release.content != CONTENT_OBJECTS:
        raise PublishError(
            f"{what} was published by dagfactory-s3 {release.publisher_version}, which did not record "
            f"its sources; publish it to {source.environment!r} again with this version, then promote"
        )
    found: dict[str, manifests.Manifest] = {}
    problems = []
    wanted_json = sorted(r for r in release.files if r.endswith(".json"))

    def fetch(rest: str) -> bytes:
        """The source of ``rest``: its own object, or the published manifest without its stamp."""
        published = release.files[rest]
        entry = published.source or published
        key = object_name(entry.sha256)
        data = source.get(key)
        if data is None:
            raise PublishError(f"{source.url(key)}: source of {rest} in {what} is missing; cannot promote")
        if _sha(data) != entry.sha256:
            raise PublishError(
                f"{source.url(key)}: sha256 {_sha(data)} but {what} names {entry.sha256} "
                f"for the source of {rest}; cannot promote"
            )
        stamp = published.provenance or {}
        if stamp.get("release") == release.release_id and stamp.get("git_sha") != release.git_sha:
            raise PublishError(
                f"{source.url(rest)}: {what} records git sha {release.git_sha!r} but stamped the manifests "
                f"it changed with {stamp.get('git_sha')!r}; cannot promote"
            )
        if published.source and published.unstamped:  # what dev served is the source resolved for dev
            try:
                served = manifests.publishable(
                    manifests.parse(data, file=source.url(key), package=source.package), source.environment
                ).raw
            except ManifestError:
                served = b""
            if _sha(served) != published.unstamped:
                raise PublishError(
                    f"{source.url(key)}: the recorded source of {rest}, resolved for {source.environment!r}, "
                    f"is not the manifest {what} served ({published.unstamped}); cannot promote"
                )
        if published.source or not (published.unstamped and published.provenance):
            return data
        try:
            data = manifests.unstamp(data, published.provenance)
        except ValueError:
            data = b""
        if _sha(data) != published.unstamped:
            raise PublishError(
                f"{source.url(key)}: without its stamp it is not the manifest {what} names "
                f"({published.unstamped}) for {rest}; cannot promote"
            )
        return data

    for rest, data in zip(wanted_json, parallel(fetch, wanted_json, parallelism), strict=True):
        display = f"{source.url(rest)}@{release.release_id}"
        try:
            m = manifests.parse(data, file=display, package=target.package, policy=policy, source=True)
        except ManifestError as exc:
            problems += exc.problems()
            continue
        problems += override_problems(m)
        if m.dag_id != naming.dag_id_of(rest):
            problems.append(Problem(display, "/dag_id", f"the record names it {rest}"))
        found[m.dag_id] = m
    if problems:
        raise ManifestError(problems)
    wanted = wanted_from_sources(found, target.environment)
    wanted.package_version, wanted.git_sha = release.package_version, release.git_sha
    wanted.promoted_from = Origin(source.environment, release.release_id)
    return make_plan(target, wanted, parallelism=parallelism)


def retire(store: PackageStore) -> ReleasePlan:
    """A plan that removes every DAG of the package behind a tombstone record (history is kept)."""
    plan = make_plan(store, Wanted(tombstone=True))
    live = [r for r in plan.listing if r.startswith(f"{DAGS_DIR}/")]
    if plan.current.record is None and not live:
        raise PublishError(
            f"nothing to retire: no release of {store.package!r} in s3://{store.bucket}/{store.environment}/"
        )
    return plan
