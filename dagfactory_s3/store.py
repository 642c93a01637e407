"""One package's prefix in the DAG bucket: the only code that writes there, and it writes nowhere else.

Every key this module writes is built by :meth:`PackageStore.key` from an allow-listed relative
name under ``<env>/<package>/``; deletes are limited to ``dags/`` and ``_releases/`` of that prefix.
The rest of the environment is only ever read (other packages' ``metadata.json``, for DAG-id
uniqueness).

Keys under the package prefix::

    dags/<dag_id>.json, dags/<dag_id>.py     live files, what the sidecar serves to Airflow
    metadata.json                            the current release record (the commit point)
    _releases/<release_id>.json              history: a copy of every committed record
    _releases/objects/<sha256>               content store: every file content ever published, once
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dagfactory_s3.errors import ConfigError, PublishError, StorageError, SyncError
from dagfactory_s3.naming import check_package
from dagfactory_s3.release import (
    METADATA,
    RELEASES_DIR,
    Release,
    check_environment,
    is_dag_file,
    package_prefix,
)
from dagfactory_s3.s3 import describe, storage_errors

__all__ = [
    "OBJECTS_DIR",
    "RELEASE_ID_RE",
    "Current",
    "Listed",
    "PackageStore",
    "RecordConflict",
    "env_packages",
    "history_name",
    "object_name",
]

OBJECTS_DIR = f"{RELEASES_DIR}/objects"
RELEASE_ID_RE = re.compile(r"^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_CONFLICT = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


def history_name(release_id: str) -> str:
    if not RELEASE_ID_RE.fullmatch(release_id):
        raise ConfigError(f"release id {release_id!r} is invalid: expected e.g. 20240101T120000.000Z-1a2b3c")
    return f"{RELEASES_DIR}/{release_id}.json"


def object_name(sha256: str) -> str:
    if not _SHA256_RE.fullmatch(sha256):
        raise ValueError(f"not a sha256: {sha256!r}")
    return f"{OBJECTS_DIR}/{sha256}"


def _package_names(client: Any, bucket: str, environment: str) -> list[str]:
    env = f"{environment}/"
    names = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=env, Delimiter="/"):
        names += [p["Prefix"][len(env) :].rstrip("/") for p in page.get("CommonPrefixes", [])]
    return sorted(n for n in names if not check_package(n))


def env_packages(client: Any, bucket: str, environment: str) -> list[str]:
    """The package prefixes of an environment (valid package names only)."""
    reason = check_environment(environment)
    if reason:
        raise ConfigError(reason)
    with storage_errors(bucket):
        return _package_names(client, bucket, environment)


class RecordConflict(PublishError):
    """metadata.json changed since it was read: another publish of the package committed first."""


@dataclass(frozen=True)
class Listed:
    """One object of a listing: its name relative to the package prefix, size and ETag (unquoted)."""

    rest: str
    size: int
    etag: str

    def same_bytes(self, data: bytes) -> bool | None:
        """True/False when the ETag is the MD5 of a single-part upload; None when it cannot tell (KMS)."""
        if self.size != len(data):
            return False
        if re.fullmatch(r"[0-9a-f]{32}", self.etag):
            return self.etag == hashlib.md5(data, usedforsecurity=False).hexdigest()
        return None


@dataclass(frozen=True)
class Current:
    """The package's current record as read, with the ETag the commit is conditional on."""

    record: Release | None
    etag: str | None
    problem: str | None = None  # why an existing metadata.json could not be used


class PackageStore:
    """S3 access scoped to ``s3://<bucket>/<env>/<package>/``."""

    def __init__(self, client: Any, bucket: str, environment: str, package: str) -> None:
        for reason in (check_environment(environment), check_package(package)):
            if reason:
                raise ConfigError(reason)
        if not bucket:
            raise ConfigError("bucket name is empty")
        self.client = client
        self.bucket = bucket
        self.environment = environment
        self.package = package
        self.prefix = package_prefix(environment, package)

    # -- keys ------------------------------------------------------------------------------------

    def key(self, rest: str) -> str:
        """The full key of an allow-listed name; anything else is refused before any request."""
        ok = (
            rest == METADATA
            or is_dag_file(rest)
            or (
                rest.startswith(f"{RELEASES_DIR}/")
                and RELEASE_ID_RE.fullmatch(rest[len(RELEASES_DIR) + 1 : -5] or "-")
                and rest.endswith(".json")
            )
            or (rest.startswith(f"{OBJECTS_DIR}/") and _SHA256_RE.fullmatch(rest[len(OBJECTS_DIR) + 1 :]))
        )
        if not ok:
            raise PublishError(
                f"refusing to write {rest!r}: not a file the publisher owns under {self.prefix}"
            )
        return self.prefix + rest

    def _deletable(self, rest: str) -> str:
        parts = rest.split("/")
        if (
            parts[0] not in ("dags", RELEASES_DIR)
            or len(parts) < 2
            or any(p in ("", ".", "..") for p in parts)
        ):
            raise PublishError(
                f"refusing to delete {rest!r}: outside {self.prefix}dags/ and {self.prefix}{RELEASES_DIR}/"
            )
        return self.prefix + rest

    # -- reads -----------------------------------------------------------------------------------

    def list(self) -> dict[str, Listed]:
        """Every object under the package prefix, by name relative to it."""
        out: dict[str, Listed] = {}
        with storage_errors(self.bucket):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    rest = item["Key"][len(self.prefix) :]
                    out[rest] = Listed(rest, item["Size"], item["ETag"].strip('"'))
        return out

    def get(self, rest: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + rest)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                return None
            raise StorageError(describe(exc, self.bucket)) from exc
        except BotoCoreError as exc:
            raise StorageError(describe(exc, self.bucket)) from exc

    def current(self) -> Current:
        """The current record (``metadata.json``) and its ETag."""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self.prefix + METADATA)
            raw = resp["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in _NOT_FOUND:
                return Current(None, None)
            raise StorageError(describe(exc, self.bucket)) from exc
        except BotoCoreError as exc:
            raise StorageError(describe(exc, self.bucket)) from exc
        etag = resp["ETag"].strip('"')
        file = f"s3://{self.bucket}/{self.prefix}{METADATA}"
        try:
            record = Release.from_json(raw, file=file)
        except SyncError as exc:
            return Current(None, etag, str(exc))
        if record.package != self.package or record.environment != self.environment:
            return Current(None, etag, f"{file}: names package {record.package!r} in {record.environment!r}")
        return Current(record, etag)

    def history(self, release_id: str) -> Release:
        raw = self.get(history_name(release_id))
        if raw is None:
            raise PublishError(
                f"release {release_id} of {self.package!r} is not in {self.prefix}{RELEASES_DIR}/ (see 'list --history')"
            )
        try:
            return Release.from_json(raw, file=f"s3://{self.bucket}/{self.prefix}{history_name(release_id)}")
        except SyncError as exc:
            raise PublishError(str(exc)) from None

    def other_packages(self) -> tuple[dict[str, Release], str | None]:
        """Current records of the environment's other packages, and a warning when they cannot be read."""
        env = f"{self.environment}/"
        records: dict[str, Release] = {}
        try:
            for name in _package_names(self.client, self.bucket, self.environment):
                if name == self.package:
                    continue
                key = f"{env}{name}/{METADATA}"
                try:
                    raw = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                        continue
                    raise
                try:
                    records[name] = Release.from_json(raw, file=f"s3://{self.bucket}/{key}")
                except SyncError:
                    continue  # a broken record is that package's problem; the sidecar reports it
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("AccessDenied", "403", "Forbidden"):
                return records, (
                    f"cannot read other packages' records in s3://{self.bucket}/{env} (access denied); "
                    "DAG-id uniqueness across packages is left to the sidecar"
                )
            raise StorageError(describe(exc, self.bucket)) from exc
        except BotoCoreError as exc:
            raise StorageError(describe(exc, self.bucket)) from exc
        return records, None

    # -- writes ----------------------------------------------------------------------------------

    def put(self, rest: str, data: bytes) -> str | None:
        """Write one object of the package; returns its S3 VersionId when the bucket is versioned."""
        key = self.key(rest)
        content_type = (
            "application/json"
            if rest.endswith(".json")
            else "text/x-python"
            if rest.endswith(".py")
            else "application/octet-stream"
        )
        with storage_errors(self.bucket):
            response = self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                Metadata={"sha256": hashlib.sha256(data).hexdigest()},
            )
        version = response.get("VersionId")
        return version if version and version != "null" else None

    def commit(self, record: Release, *, expected_etag: str | None) -> None:
        """Write ``metadata.json`` only if it is still the one read (If-Match), or still absent (If-None-Match)."""
        condition = {"IfMatch": f'"{expected_etag}"'} if expected_etag else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.key(METADATA),
                Body=record.to_json(),
                ContentType="application/json",
                CacheControl="no-cache",
                **condition,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _CONFLICT or status in (409, 412) or (expected_etag and code in _NOT_FOUND):
                raise RecordConflict(
                    f"{self.prefix}{METADATA} changed while publishing: another publish of {self.package!r} committed first"
                ) from None
            raise StorageError(describe(exc, self.bucket)) from exc
        except BotoCoreError as exc:
            raise StorageError(describe(exc, self.bucket)) from exc

    def delete(self, rest: str) -> None:
        key = self._deletable(rest)
        with storage_errors(self.bucket):
            self.client.delete_object(Bucket=self.bucket, Key=key)
