"""The release record (``metadata.json``) shared by the publisher and the sidecar. No I/O.

A release record names every file of one package's release with its sha256, so a reader that
trusts the record never applies half a release. Key layout: :mod:`dagfactory_s3.naming`.

The record also carries the releases it replaced, kept for rollback (``history``, newest first):
each as the change of its files and DAG summaries against the next newer release, so a publish
that changes one DAG adds a few hundred bytes to the record instead of writing a history object.
A replaced release that changed more than :data:`DELTA_LIMIT` entries is kept whole in its own
history object ``_releases/<id>.json`` and named in ``history`` as ``stored``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from dagfactory_s3.errors import Problem, RecordError
from dagfactory_s3.naming import (
    RELEASE_ID_RE,
    SHA256_RE,
    check_environment,
    check_package,
    is_dag_file,
)

__all__ = [
    "CONTENT_OBJECTS",
    "DELTA_LIMIT",
    "FORMAT",
    "Earlier",
    "FileEntry",
    "Origin",
    "Release",
    "dag_summary",
    "same_summaries",
]

FORMAT = "dagfactory-s3/release@1"
# Where a record's manifests live. "objects": immutable, by sha256, in _releases/objects/ (written
# before the commit, never overwritten). Absent (records of dagfactory-s3 0.1): at their dags/ keys.
CONTENT_OBJECTS = "objects"
DELTA_LIMIT = 64
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int
    version_id: str | None = None
    md5: str | None = None  # the single-part ETag of the readable dags/ copy (lets `list` check by listing)
    # A manifest published resolved for its environment: the source it was resolved from (with its
    # ``environments``), also in the content store. None: the manifest is its own source (or, in a
    # record without ``sources``, unknown).
    source: FileEntry | None = None
    # A stamped manifest: the sha256 of its bytes before the stamp, and the stamp (the release that
    # last changed it). A publish compares the unstamped digest, so an unchanged manifest keeps its stamp.
    unstamped: str | None = None
    provenance: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sha256": self.sha256, "size": self.size}
        if self.version_id:
            out["version_id"] = self.version_id
        if self.md5:
            out["md5"] = self.md5
        if self.source:
            out["source"] = self.source.to_dict()
        if self.unstamped and self.provenance:
            out["unstamped"] = self.unstamped
            out["provenance"] = dict(self.provenance)
        return out

    def digests(self) -> tuple[str, ...]:
        """Every content-store digest this entry needs: its own and its source's."""
        return (self.sha256, self.source.sha256) if self.source else (self.sha256,)


@dataclass(frozen=True)
class Origin:
    """Where a promoted release came from: the source environment's release."""

    environment: str
    release_id: str

    def to_dict(self) -> dict[str, str]:
        return {"environment": self.environment, "release_id": self.release_id}

    def __str__(self) -> str:
        return f"{self.environment} release {self.release_id}"


@dataclass(frozen=True)
class Earlier:
    """A release the record replaced: its own fields, and its files and DAG summaries as the change
    against the next newer release (``None`` = absent there), or ``stored`` in its history object."""

    release_id: str
    published_at: str
    publisher_version: str
    package_version: str | None = None
    git_sha: str | None = None
    published_by: str | None = None
    previous_release_id: str | None = None
    tombstone: bool = False
    content: str | None = None
    images: tuple[str, ...] = ()
    sources: bool = False
    promoted_from: Origin | None = None
    files: dict[str, FileEntry | None] = field(default_factory=dict)
    dags: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    stored: bool = False

    @classmethod
    def of(cls, old: Release, new_files: dict[str, FileEntry], new_dags: dict[str, Any]) -> Earlier:
        """``old`` as its change against the release with ``new_files`` and ``new_dags``."""
        files = {
            r: old.files.get(r) for r in {*old.files, *new_files} if old.files.get(r) != new_files.get(r)
        }
        dags = {d: old.dags.get(d) for d in {*old.dags, *new_dags} if old.dags.get(d) != new_dags.get(d)}
        return cls(**{f: getattr(old, f) for f in _SHARED}, files=files, dags=dags)

    def kept_whole(self) -> Earlier:
        """The same release, named as ``stored``: its history object holds its files and DAGs."""
        return replace(self, files={}, dags={}, stored=True)

    def to_dict(self) -> dict[str, Any]:
        out = _header(self)
        if self.stored:
            out["stored"] = True
        else:
            out["dags"] = {k: self.dags[k] for k in sorted(self.dags)}
            out["files"] = {k: (v.to_dict() if v else None) for k, v in sorted(self.files.items())}
        return out


@dataclass(frozen=True)
class Release:
    """One package's release record. ``files`` keys are relative to ``<env>/<package>/``."""

    package: str
    environment: str
    release_id: str
    published_at: str
    publisher_version: str
    files: dict[str, FileEntry] = field(default_factory=dict)
    dags: dict[str, dict[str, Any]] = field(default_factory=dict)
    images: tuple[str, ...] = ()
    package_version: str | None = None
    git_sha: str | None = None
    # Who published (the CI's actor and run, or user@host); None in records written before it existed. Shown
    # by `list --history`; never compared by publish, so a different publisher alone is no change.
    published_by: str | None = None
    previous_release_id: str | None = None
    tombstone: bool = False
    content: str | None = None  # CONTENT_OBJECTS, or None for a 0.1 record
    # True: every manifest entry names its source (``FileEntry.source``) or is its own; what `promote`
    # needs. False in records written before sources were recorded (promote refuses those).
    sources: bool = False
    promoted_from: Origin | None = None  # set by `promote`: the release whose sources this one resolved
    history: tuple[Earlier, ...] = ()  # the releases it replaced, newest first

    def releases(self, load: Callable[[str], Release]) -> Iterator[Release]:
        """This release, then each release of ``history`` rebuilt whole, newest first. ``load`` reads
        a ``stored`` one's history object (the only I/O; called only for those)."""
        yield self
        files, dags = self.files, self.dags
        for e in self.history:
            if e.stored:
                whole = load(e.release_id)
                files, dags = whole.files, whole.dags
            else:
                files, dags = _changed(files, e.files), _changed(dags, e.dags)
            yield self._as(e, files, dags)

    def release_ids(self) -> list[str]:
        """This release's id, then each id of ``history``, newest first (no history object read)."""
        return [self.release_id, *(e.release_id for e in self.history)]

    def release(self, release_id: str, load: Callable[[str], Release]) -> Release | None:
        """The release ``release_id`` of this record (itself, or one of ``history`` rebuilt whole), or
        None when the record does not name it. At most one ``load``: the stored entry nearest to it on
        the newer side, or none when only changes lie between (``releases()`` loads every stored one)."""
        if release_id == self.release_id:
            return self
        at = next((i for i, e in enumerate(self.history) if e.release_id == release_id), None)
        if at is None:
            return None
        start = max((i for i in range(at + 1) if self.history[i].stored), default=None)
        if start is None:
            files, dags = self.files, self.dags
            changes = self.history[: at + 1]
        else:
            whole = load(self.history[start].release_id)
            files, dags = whole.files, whole.dags
            changes = self.history[start + 1 : at + 1]
        for e in changes:
            files, dags = _changed(files, e.files), _changed(dags, e.dags)
        return self._as(self.history[at], files, dags)

    def _as(self, entry: Earlier, files: dict[str, FileEntry], dags: dict[str, Any]) -> Release:
        """The release ``entry`` names, with these files and DAGs, in this record's package."""
        return Release(
            package=self.package,
            environment=self.environment,
            files=files,
            dags=dags,
            **{f: getattr(entry, f) for f in _SHARED},
        )

    def identity_problem(self, package: str, environment: str, release_id: str | None = None) -> str:
        """Why this record may not stand at ``package``'s prefix in ``environment`` (and, when given, as
        ``release_id``); '' when it may. A record naming another package, environment or id is refused
        by every reader: it would serve (or replace) what belongs to someone else."""
        if (self.package, self.environment) == (package, environment) and release_id in (
            None,
            self.release_id,
        ):
            return ""
        named = f"package {self.package!r} in environment {self.environment!r}"
        must = f"{package!r} in {environment!r}"
        if release_id is not None and release_id != self.release_id:
            named, must = f"release {self.release_id} of {named}", f"release {release_id} of {must}"
        return f"release record names {named}; it must be {must}"

    def whole(self) -> Release:
        """This release without its embedded history: what a history object holds."""
        return replace(self, history=())

    def to_json(self) -> bytes:
        body = {
            "format": FORMAT,
            "package": self.package,
            "environment": self.environment,
            **_header(self),
            "dags": {k: self.dags[k] for k in sorted(self.dags)},
            "files": {k: self.files[k].to_dict() for k in sorted(self.files)},
        }
        if self.history:
            body["history"] = [e.to_dict() for e in self.history]
        return orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n"

    @classmethod
    def from_json(cls, raw: bytes, *, file: str) -> Release:
        """Parse and check a record. Raises RecordError naming ``file`` when it is not a valid record."""

        def bad(pointer: str, message: str) -> RecordError:
            return RecordError(str(Problem(file, pointer, message)))

        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise bad("", f"release record is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise bad("/format", f"not a release record of format {FORMAT!r}")
        for key in ("package", "environment"):
            if not isinstance(doc.get(key), str) or not doc[key]:
                raise bad(f"/{key}", "missing or not a string")
        common = _common(doc, "", bad)
        if check_package(doc["package"]):
            raise bad("/package", check_package(doc["package"]) or "")
        if check_environment(doc["environment"]):
            raise bad("/environment", check_environment(doc["environment"]) or "")
        files = _mapping(doc.get("files"), "/files", bad, lambda v, b: _file_entry(v, b), nullable=False)
        dags = _mapping(doc.get("dags", {}), "/dags", bad, _summary, nullable=False)
        raw_history = doc.get("history", [])
        if not isinstance(raw_history, list):
            raise bad("/history", "not a list")
        history = []
        for i, entry in enumerate(raw_history):
            at = f"/history/{i}"
            if not isinstance(entry, dict):
                raise bad(at, "not an object")
            if not isinstance(entry.get("release_id"), str) or not RELEASE_ID_RE.fullmatch(
                entry["release_id"]
            ):
                raise bad(f"{at}/release_id", "not a release id")
            stored = entry.get("stored", False)
            if not isinstance(stored, bool):
                raise bad(f"{at}/stored", "not true or false")
            history.append(
                Earlier(
                    **_common(entry, at, bad),
                    files={}
                    if stored
                    else _mapping(entry.get("files"), f"{at}/files", bad, _file_entry, True),
                    dags={} if stored else _mapping(entry.get("dags"), f"{at}/dags", bad, _summary, True),
                    stored=stored,
                )
            )
        return cls(
            package=doc["package"],
            environment=doc["environment"],
            files=files,  # type: ignore[arg-type]
            dags=dags,  # type: ignore[arg-type]
            history=tuple(history),
            **common,
        )


def dag_summary(data: dict[str, Any], images: list[str], tasks: int) -> dict[str, Any]:
    """A DAG's entry in the record's ``dags``: what ``list`` shows without reading its manifest. The
    time zone its cron runs in is always named (a manifest without ``timezone`` runs in UTC)."""
    return {
        "schedule": data.get("schedule"),
        "timezone": data.get("timezone", "UTC"),
        "images": images,
        "tasks": tasks,
    }


def same_summaries(recorded: dict[str, Any], wanted: dict[str, dict[str, Any]]) -> bool:
    """Whether a record's ``dags`` describe ``wanted``. A summary without ``timezone`` (written before
    summaries had one) still does when the rest agrees: the manifest's bytes, compared on their own,
    hold its zone, so upgrading the publisher alone commits no new release."""
    return recorded.keys() == wanted.keys() and all(
        recorded[d]
        == (want if "timezone" in recorded[d] else {k: v for k, v in want.items() if k != "timezone"})
        for d, want in wanted.items()
    )


# The fields a record shares with its history entries.
_SHARED = (
    "release_id",
    "published_at",
    "publisher_version",
    "package_version",
    "git_sha",
    "published_by",
    "previous_release_id",
    "tombstone",
    "content",
    "images",
    "sources",
    "promoted_from",
)


def _changed(newer: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """An older release's files (or DAG summaries) from the newer one's and its recorded change."""
    return {k: v for k, v in {**newer, **change}.items() if v is not None}


def _header(release: Release | Earlier) -> dict[str, Any]:
    """The fields a record shares with its history entries, as written (the inverse of :func:`_common`)."""
    return {
        "release_id": release.release_id,
        "previous_release_id": release.previous_release_id,
        "published_at": release.published_at,
        "publisher_version": release.publisher_version,
        "package_version": release.package_version,
        "git_sha": release.git_sha,
        "published_by": release.published_by,
        "tombstone": release.tombstone,
        "content": release.content,
        "images": sorted(release.images),
        **({"sources": True} if release.sources else {}),
        **({"promoted_from": release.promoted_from.to_dict()} if release.promoted_from else {}),
    }


def _common(doc: dict[str, Any], at: str, bad: Callable[[str, str], RecordError]) -> dict[str, Any]:
    """The fields a record shares with its history entries, type by type."""
    for key in ("release_id", "published_at", "publisher_version"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise bad(f"{at}/{key}", "missing or not a string")
    if doc.get("content") not in (None, CONTENT_OBJECTS):
        raise bad(f"{at}/content", f"unknown content layout {doc.get('content')!r}; upgrade dagfactory-s3")
    images = doc.get("images") or []
    if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
        raise bad(f"{at}/images", "not a list of strings")
    for key in ("package_version", "git_sha", "published_by", "previous_release_id"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise bad(f"{at}/{key}", "not a string")
    if not isinstance(doc.get("tombstone", False), bool):
        raise bad(f"{at}/tombstone", "not true or false")  # "false" must not retire a package
    if not isinstance(doc.get("sources", False), bool):
        raise bad(f"{at}/sources", "not true or false")
    origin = doc.get("promoted_from")
    if origin is not None:
        if (
            not isinstance(origin, dict)
            or check_environment(origin.get("environment"))
            or not isinstance(origin.get("release_id"), str)
            or not RELEASE_ID_RE.fullmatch(origin["release_id"])
        ):
            raise bad(f"{at}/promoted_from", "not an object with an environment and a release_id")
        origin = Origin(origin["environment"], origin["release_id"])
    return {
        "release_id": doc["release_id"],
        "published_at": doc["published_at"],
        "publisher_version": doc["publisher_version"],
        "images": tuple(images),
        "package_version": doc.get("package_version"),
        "git_sha": doc.get("git_sha"),
        "published_by": doc.get("published_by"),
        "previous_release_id": doc.get("previous_release_id"),
        "tombstone": doc.get("tombstone", False),
        "content": doc.get("content"),
        "sources": doc.get("sources", False),
        "promoted_from": origin,
    }


def _pointer(at: str, key: str) -> str:
    return f"{at}/" + key.replace("~", "~0").replace("/", "~1")


def _summary(value: Any, bad: Callable[[str], RecordError]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad("not an object")
    return value


def _mapping(
    raw: Any,
    at: str,
    bad: Callable[[str, str], RecordError],
    item: Callable[[Any, Callable[[str], RecordError]], Any],
    nullable: bool,
) -> dict[str, Any]:
    """``files`` (keys are dags/ file names) or ``dags``; in a history entry a value may be null."""
    if not isinstance(raw, dict):
        raise bad(at, "missing or not an object")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        pointer = _pointer(at, key)
        if at.endswith("/files") and not is_dag_file(key):
            raise bad(pointer, "file is not dags/<dag_id>.json or dags/<dag_id>.py")
        out[key] = None if value is None and nullable else item(value, lambda m, p=pointer: bad(p, m))
    return out


def _file_entry(entry: Any, bad: Callable[[str], RecordError]) -> FileEntry:
    """One ``files`` entry, type by type: a wrong type here must refuse the record, not crash a reader."""
    if not isinstance(entry, dict):
        raise bad("not an object with sha256 and size")
    sha256, size, version_id, md5, source, unstamped, provenance = (
        entry.get(k) for k in ("sha256", "size", "version_id", "md5", "source", "unstamped", "provenance")
    )
    if not isinstance(sha256, str) or not SHA256_RE.fullmatch(sha256):
        raise bad("sha256 must be 64 lowercase hex digits")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise bad("size must be an integer of at least 0")
    if version_id is not None and not isinstance(version_id, str):
        raise bad("version_id must be a string when present")
    if md5 is not None and not (isinstance(md5, str) and _MD5_RE.fullmatch(md5)):
        raise bad("md5 must be 32 lowercase hex digits when present")
    if source is not None:
        if not isinstance(source, dict) or set(source) - {"sha256", "size"}:
            raise bad("source must be an object with sha256 and size when present")
        source = _file_entry(source, lambda m: bad(f"source: {m}"))
    if (unstamped is None) != (provenance is None):
        raise bad("unstamped and provenance go together")
    if unstamped is not None and not (isinstance(unstamped, str) and SHA256_RE.fullmatch(unstamped)):
        raise bad("unstamped must be 64 lowercase hex digits when present")
    if provenance is not None and not (
        isinstance(provenance, dict)
        and isinstance(provenance.get("release"), str)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in provenance.items())
    ):
        raise bad("provenance must be an object of strings with a release when present")
    return FileEntry(sha256, size, version_id, md5, source, unstamped, provenance)
