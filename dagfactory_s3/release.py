"""The S3 layout and the release record (``metadata.json``) shared by the publisher and the sidecar.

Layout under ``s3://<bucket>/<env>/`` (compatible with a plain ``aws s3 sync`` of ``<env>/``)::

    <package>/dags/<dag_id>.json     manifest
    <package>/dags/<dag_id>.py       its canonical stub
    <package>/metadata.json          the current release record: the commit point of a publish
    <package>/_releases/...          the publisher's history (kept for rollback; the sidecar ignores it)

A release record names every file of the release with its sha256, so a reader that trusts the
record never applies half a release. This module does no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from dagfactory_s3.errors import Problem, SyncError
from dagfactory_s3.naming import check_package

__all__ = [
    "DAGS_DIR",
    "FORMAT",
    "METADATA",
    "RELEASES_DIR",
    "FileEntry",
    "Release",
    "env_prefix",
    "package_prefix",
    "split_key",
]

FORMAT = "dagfactory-s3/release@1"
METADATA = "metadata.json"
DAGS_DIR = "dags"
RELEASES_DIR = "_releases"
_ENV_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
_DAG_FILE_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}\.(json|py)$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def check_environment(env: str) -> str | None:
    if not _ENV_RE.fullmatch(env or ""):
        return f"environment {env!r} is invalid: use 1-50 lowercase letters, digits, '-' or '_'"
    return None


def env_prefix(env: str) -> str:
    return f"{env}/"


def package_prefix(env: str, package: str) -> str:
    return f"{env}/{package}/"


def split_key(env: str, key: str) -> tuple[str, str] | None:
    """``<env>/<package>/<rest>`` -> (package, rest); None when the key is not of that shape."""
    prefix = env_prefix(env)
    if not key.startswith(prefix):
        return None
    package, sep, rest = key[len(prefix) :].partition("/")
    if not sep or not package or not rest:
        return None
    return package, rest


def is_dag_file(rest: str) -> bool:
    """True for ``dags/<dag_id>.json`` or ``dags/<dag_id>.py`` (the only files served to Airflow)."""
    directory, sep, name = rest.partition("/")
    return directory == DAGS_DIR and bool(sep) and bool(_DAG_FILE_RE.fullmatch(name))


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
            "images": sorted(self.images),
            "dags": {k: self.dags[k] for k in sorted(self.dags)},
            "files": {k: self.files[k].to_dict() for k in sorted(self.files)},
        }
        return orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n"

    @classmethod
    def from_json(cls, raw: bytes, *, file: str) -> Release:
        """Parse and check a record. Raises SyncError naming ``file`` when it is not a valid record."""

        def bad(pointer: str, message: str) -> SyncError:
            return SyncError(str(Problem(file, pointer, message)))

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
        files: dict[str, FileEntry] = {}
        raw_files = doc.get("files")
        if not isinstance(raw_files, dict):
            raise bad("/files", "missing or not an object")
        for rest, entry in raw_files.items():
            pointer = "/files/" + rest.replace("~", "~0").replace("/", "~1")
            if not is_dag_file(rest):
                raise bad(pointer, "file is not dags/<dag_id>.json or dags/<dag_id>.py")
            if (
                not isinstance(entry, dict)
                or not _SHA256_RE.fullmatch(str(entry.get("sha256", "")))
                or not isinstance(entry.get("size"), int)
            ):
                raise bad(pointer, "needs sha256 (64 hex digits) and size (integer)")
            files[rest] = FileEntry(entry["sha256"], entry["size"], entry.get("version_id"))
        dags = doc.get("dags", {})
        if not isinstance(dags, dict):
            raise bad("/dags", "not an object")
        return cls(
            package=doc["package"],
            environment=doc["environment"],
            release_id=doc["release_id"],
            published_at=doc["published_at"],
            publisher_version=doc["publisher_version"],
            files=files,
            dags=dags,
            images=tuple(doc.get("images") or ()),
            package_version=doc.get("package_version"),
            git_sha=doc.get("git_sha"),
            previous_release_id=doc.get("previous_release_id"),
            tombstone=bool(doc.get("tombstone", False)),
        )
