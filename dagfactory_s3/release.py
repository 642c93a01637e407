"""The release record (``metadata.json``) shared by the publisher and the sidecar. No I/O.

A release record names every file of one package's release with its sha256, so a reader that
trusts the record never applies half a release. Key layout: :mod:`dagfactory_s3.naming`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from dagfactory_s3.errors import Problem, RecordError
from dagfactory_s3.naming import SHA256_RE, check_environment, check_package, is_dag_file

__all__ = ["CONTENT_OBJECTS", "FORMAT", "FileEntry", "Release"]

FORMAT = "dagfactory-s3/release@1"
# Where a record's manifests live. "objects": immutable, by sha256, in _releases/objects/ (written
# before the commit, never overwritten). Absent (records of dagfactory-s3 0.1): at their dags/ keys.
CONTENT_OBJECTS = "objects"


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int
    version_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sha256": self.sha256, "size": self.size}
        if self.version_id:
            out["version_id"] = self.version_id
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
    previous_release_id: str | None = None
    tombstone: bool = False
    content: str | None = None  # CONTENT_OBJECTS, or None for a 0.1 record

    def to_json(self) -> bytes:
        body = {
            "format": FORMAT,
            "package": self.package,
            "environment": self.environment,
            "release_id": self.release_id,
            "previous_release_id": self.previous_release_id,
            "published_at": self.published_at,
            "publisher_version": self.publisher_version,
            "package_version": self.package_version,
            "git_sha": self.git_sha,
            "tombstone": self.tombstone,
            "content": self.content,
            "images": sorted(self.images),
            "dags": {k: self.dags[k] for k in sorted(self.dags)},
            "files": {k: self.files[k].to_dict() for k in sorted(self.files)},
        }
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
        for key in ("package", "environment", "release_id", "published_at", "publisher_version"):
            if not isinstance(doc.get(key), str) or not doc[key]:
                raise bad(f"/{key}", "missing or not a string")
        if check_package(doc["package"]):
            raise bad("/package", check_package(doc["package"]) or "")
        if check_environment(doc["environment"]):
            raise bad("/environment", check_environment(doc["environment"]) or "")
        files: dict[str, FileEntry] = {}
        raw_files = doc.get("files")
        if not isinstance(raw_files, dict):
            raise bad("/files", "missing or not an object")
        for rest, entry in raw_files.items():
            pointer = "/files/" + rest.replace("~", "~0").replace("/", "~1")
            if not is_dag_file(rest):
                raise bad(pointer, "file is not dags/<dag_id>.json or dags/<dag_id>.py")
            files[rest] = _file_entry(entry, lambda message, p=pointer: bad(p, message))
        if doc.get("content") not in (None, CONTENT_OBJECTS):
            raise bad("/content", f"unknown content layout {doc.get('content')!r}; upgrade dagfactory-s3")
        dags = doc.get("dags", {})
        if not isinstance(dags, dict):
            raise bad("/dags", "not an object")
        for dag_id, summary in dags.items():
            if not isinstance(summary, dict):
                raise bad("/dags/" + dag_id.replace("~", "~0").replace("/", "~1"), "not an object")
        images = doc.get("images") or []
        if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
            raise bad("/images", "not a list of strings")
        for key in ("package_version", "git_sha", "previous_release_id"):
            if doc.get(key) is not None and not isinstance(doc[key], str):
                raise bad(f"/{key}", "not a string")
        if not isinstance(doc.get("tombstone", False), bool):
            raise bad("/tombstone", "not true or false")  # "false" must not retire a package
        return cls(
            package=doc["package"],
            environment=doc["environment"],
            release_id=doc["release_id"],
            published_at=doc["published_at"],
            publisher_version=doc["publisher_version"],
            files=files,
            dags=dags,
            images=tuple(images),
            package_version=doc.get("package_version"),
            git_sha=doc.get("git_sha"),
            previous_release_id=doc.get("previous_release_id"),
            tombstone=doc.get("tombstone", False),
            content=doc.get("content"),
        )


def _file_entry(entry: Any, bad: Callable[[str], RecordError]) -> FileEntry:
    """One ``files`` entry, type by type: a wrong type here must refuse the record, not crash a reader."""
    if not isinstance(entry, dict):
        raise bad("not an object with sha256 and size")
    sha256, size, version_id = entry.get("sha256"), entry.get("size"), entry.get("version_id")
    if not isinstance(sha256, str) or not SHA256_RE.fullmatch(sha256):
        raise bad("sha256 must be 64 lowercase hex digits")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise bad("size must be an integer of at least 0")
    if version_id is not None and not isinstance(version_id, str):
        raise bad("version_id must be a string when present")
    return FileEntry(sha256, size, version_id)
