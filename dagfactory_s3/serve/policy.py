"""The platform policy of an environment, in the bucket: one contract that CI and Airflow both read.

It lives beside the packages, under a name no package can take (package names start with a letter)::

    <env>/_platform/objects/<sha256>.json   the policy's bytes, immutable, named by their digest
    <env>/_platform/policy.json             the pointer: which policy is current, and those it replaced

The discipline is a release's: the bytes are written first, the pointer last and conditionally (on
the ETag read, or on absence), so a reader sees the old policy or the new one, never a mix. The pointer
names each policy by an id in the release-id format (its publish instant first) and its sha256; a
reader verifies the bytes against it. ``history`` keeps the policies it replaced, newest first, for
``policy rollback`` and for a bundle version that started under an older policy.

This module reads; ``airflow-dag-publisher policy`` writes (:mod:`dagfactory_s3.publisher.policy`).
Served copies: the sidecar writes ``<dags_folder>/_platform/policy.json`` and the bundle
``<tree>/_platform/policy.json`` (each with ``policy.id`` beside it); the loader reads the copy that
sits two levels above a stub (:func:`served_copy`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from dagfactory_s3 import fs, naming, platform
from dagfactory_s3.errors import ConfigError, SyncError

__all__ = [
    "FORMAT",
    "KEEP",
    "PLATFORM_DIR",
    "POINTER",
    "PolicyEntry",
    "PolicyRecord",
    "Published",
    "for_stub",
    "label",
    "object_key",
    "pointer_key",
    "read_current",
    "read_policy",
    "read_record",
    "served_copy",
    "write_served",
]

PLATFORM_DIR = "_platform"  # not a package name: those start with a letter
POINTER = "policy.json"
SERVED_ID = "policy.id"  # beside a served copy: the id of the policy it holds
FORMAT = "dagfactory-s3/policy@1"
KEEP = 20  # policies the pointer keeps in its history
MAX_POINTER_BYTES = 256 * 1024
MAX_POLICY_BYTES = platform.MAX_BYTES
INLINE_BYTES = 64 * 1024  # a current policy up to this size rides in its pointer
_SHA = re.compile(r"[0-9a-f]{64}")


def pointer_key(environment: str) -> str:
    return f"{environment}/{PLATFORM_DIR}/{POINTER}"


def object_key(environment: str, sha256: str) -> str:
    return f"{environment}/{PLATFORM_DIR}/objects/{sha256}.json"


def label(environment: str, policy_id: str) -> str:
    """How messages name a published policy, in CI and in Airflow alike."""
    return f"{environment}/{PLATFORM_DIR}/{POINTER} ({policy_id})"


@dataclass(frozen=True)
class PolicyEntry:
    """One published policy: its id (publish instant first), the digest and size of its bytes, and who
    published it when."""

    policy_id: str
    sha256: str
    size: int
    published_at: str = ""
    published_by: str = ""
    note: str = ""  # e.g. "rollback to <id>"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"policy_id": self.policy_id, "sha256": self.sha256, "size": self.size}
        for key in ("published_at", "published_by", "note"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_dict(cls, data: Any, *, file: str, pointer: str) -> PolicyEntry:
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: {pointer}: expected an object")
        policy_id, sha, size = data.get("policy_id"), data.get("sha256"), data.get("size")
        if not isinstance(policy_id, str) or not naming.RELEASE_ID_RE.fullmatch(policy_id):
            raise ConfigError(f"{file}: {pointer}/policy_id: expected a release-style id, got {policy_id!r}")
        if not isinstance(sha, str) or not _SHA.fullmatch(sha):
            raise ConfigError(f"{file}: {pointer}/sha256: expected 64 lowercase hex digits")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_POLICY_BYTES:
            raise ConfigError(f"{file}: {pointer}/size: expected 1..{MAX_POLICY_BYTES}")
        extra = {k: data.get(k, "") for k in ("published_at", "published_by", "note")}
        if not all(isinstance(v, str) for v in extra.values()):
            raise ConfigError(f"{file}: {pointer}: published_at, published_by and note must be strings")
        return cls(policy_id, sha, size, **extra)


@dataclass(frozen=True)
class PolicyRecord:
    """The pointer object: the environment's current policy and the ones it replaced (newest first)."""

    environment: str
    current: PolicyEntry
    history: tuple[PolicyEntry, ...] = field(default=())
    # The current policy's bytes, carried in the pointer when small (UTF-8, at most INLINE_BYTES): a
    # reader of the current policy then makes one GET. Verified against ``current.sha256`` like an object.
    content: bytes | None = None

    def with_content(self, raw: bytes) -> PolicyRecord:
        """This pointer carrying ``raw`` (the current policy's bytes) when they are small UTF-8 text."""
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return self
        return replace(self, content=raw) if len(raw) <= INLINE_BYTES else self

    def entries(self) -> list[PolicyEntry]:
        """Every kept policy, newest first."""
        return [self.current, *self.history]

    def entry(self, policy_id: str) -> PolicyEntry | None:
        return next((e for e in self.entries() if e.policy_id == policy_id), None)

    def at(self, stamp: str) -> PolicyEntry | None:
        """The policy current at ``stamp`` (a release-id-style instant): the newest not after it."""
        return next((e for e in self.entries() if e.policy_id.partition("-")[0] <= stamp), None)

    def to_json(self) -> bytes:
        data = {
            "format": FORMAT,
            "environment": self.environment,
            **self.current.to_dict(),
            "history": [e.to_dict() for e in self.history],
        }
        if self.content is not None:
            data["content"] = self.content.decode("utf-8")
        return orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n"

    @classmethod
    def from_json(cls, raw: bytes, *, file: str, environment: str) -> PolicyRecord:
        """The pointer's bytes, checked: format, environment, ids and digests; a ConfigError naming
        ``file`` and the pointer otherwise."""
        if len(raw) > MAX_POINTER_BYTES:
            raise ConfigError(f"{file}: /: larger than {MAX_POINTER_BYTES} bytes")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"{file}: /: not JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(f"{file}: /format: not a policy pointer of format {FORMAT!r}")
        if data.get("environment") != environment:
            raise ConfigError(
                f"{file}: /environment: names environment {data.get('environment')!r}; it must be {environment!r}"
            )
        current = PolicyEntry.from_dict(data, file=file, pointer="")
        history = data.get("history", [])
        if not isinstance(history, list):
            raise ConfigError(f"{file}: /history: expected a list")
        entries = tuple(
            PolicyEntry.from_dict(e, file=file, pointer=f"/history/{i}") for i, e in enumerate(history)
        )
        ids = [current.policy_id, *(e.policy_id for e in entries)]
        if ids != sorted(set(ids), reverse=True):
            raise ConfigError(
                f"{file}: /history: ids must be unique and older than the current one, newest first"
            )
        content = data.get("content")
        if content is not None:
            if not isinstance(content, str):
                raise ConfigError(f"{file}: /content: expected the policy's text")
            content = content.encode("utf-8")
            if hashlib.sha256(content).hexdigest() != current.sha256 or len(content) != current.size:
                raise ConfigError(f"{file}: /content: does not match the sha256 and size the pointer records")
        return cls(environment, current, entries, content)


@dataclass(frozen=True)
class Published:
    """An environment's current policy as read from S3: the pointer, its ETag, the bytes and the policy."""

    record: PolicyRecord
    etag: str
    raw: bytes
    policy: platform.Policy


def read_record(client: Any, bucket: str, environment: str) -> tuple[PolicyRecord | None, str]:
    """The environment's policy pointer and its ETag; ``(None, "")`` when no policy was published."""
    from dagfactory_s3 import s3  # here: a stub's parse reads the served copy and needs no botocore

    key = pointer_key(environment)
    fetched = s3.get(client, bucket, key, max_bytes=MAX_POINTER_BYTES, missing_ok=True)
    if fetched is None:
        return None, ""
    record = PolicyRecord.from_json(fetched.data, file=f"s3://{bucket}/{key}", environment=environment)
    return record, fetched.etag


def read_policy(
    client: Any,
    bucket: str,
    environment: str,
    entry: PolicyEntry,
    *,
    record: PolicyRecord | None = None,
    on_get: Callable[[], None] | None = None,
) -> tuple[bytes, platform.Policy]:
    """The bytes of one published policy, verified against its entry, and the policy they define: from
    ``record`` when it carries them (the current policy's, checked when the pointer was read), else
    from its object (a GET: ``on_get`` is told)."""
    if record is not None and record.content is not None and record.current == entry:
        return record.content, platform.parse(record.content, label(environment, entry.policy_id))
    from dagfactory_s3 import s3

    key = object_key(environment, entry.sha256)
    if on_get is not None:
        on_get()
    fetched = s3.get(client, bucket, key, max_bytes=MAX_POLICY_BYTES)
    assert fetched is not None
    if hashlib.sha256(fetched.data).hexdigest() != entry.sha256 or len(fetched.data) != entry.size:
        raise SyncError(f"s3://{bucket}/{key}: does not match the sha256 and size its pointer records")
    return fetched.data, platform.parse(fetched.data, label(environment, entry.policy_id))


def read_current(client: Any, bucket: str, environment: str) -> Published | None:
    """The environment's current policy, verified; None when none was published."""
    record, etag = read_record(client, bucket, environment)
    if record is None:
        return None
    raw, policy = read_policy(client, bucket, environment, record.current, record=record)
    return Published(record, etag, raw, policy)


def served_copy(stub_dir: Path) -> tuple[Path, str] | None:
    """The policy served beside a stub's package (``<root>/<package>/dags/<stub>.py`` ->
    ``<root>/_platform/policy.json``) and its label, or None when nothing serves one there."""
    folder = stub_dir.parent.parent / PLATFORM_DIR
    copy = folder / POINTER
    try:
        policy_id, _, environment = (folder / SERVED_ID).read_text().strip().partition(" ")
    except OSError:
        return None
    if (
        not copy.is_file()
        or not naming.RELEASE_ID_RE.fullmatch(policy_id)
        or naming.check_environment(environment)
    ):
        return None
    return copy, label(environment, policy_id)


def for_stub(stub_file: str, environ: Any = os.environ) -> platform.Policy:
    """The policy a stub's DAG is built and rendered under: the file ``DAGFACTORY_POLICY`` names (the
    Airflow image's explicit override), else the copy served beside the stub's package (the sidecar's
    dags folder, the bundle's version tree), else the built-in default. A served copy that cannot be
    read or parsed is an error: a platform that serves a policy never gets none."""
    if environ.get(platform.POLICY_ENV):
        return platform.from_environment(environ)
    found = served_copy(Path(os.path.abspath(stub_file)).parent)
    if found is None:
        return platform.DEFAULT
    path, name = found
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{name}: /: cannot read the served platform policy: {exc.strerror or exc}"
        ) from None
    return platform.parse(raw, name)


def write_served(folder: Path, raw: bytes, environment: str, policy_id: str) -> None:
    """Serve a policy: ``<folder>/policy.json`` and ``policy.id``, each replaced atomically (the id
    last: a reader that finds the new id finds the new bytes)."""

    folder.mkdir(parents=True, exist_ok=True)
    fs.atomic_write(folder / POINTER, raw)
    fs.atomic_write(folder / SERVED_ID, f"{policy_id} {environment}\n".encode())
