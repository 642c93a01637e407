"""One package's prefix in the DAG bucket: the only code that writes there, and it writes nowhere else.

Every key this module writes is built by :meth:`PackageStore.key` from an allow-listed relative
name under ``<env>/<package>/`` (see :mod:`dagfactory_s3.naming` for the layout); deletes are
limited to ``dags/`` and ``_releases/`` of that prefix. The rest of the environment is only ever
read (other packages' ``metadata.json``, for DAG-id uniqueness).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from dagfactory_s3 import s3
from dagfactory_s3.errors import ConfigError, PublishError, RecordConflict, RecordError, StorageError
from dagfactory_s3.naming import (
    DAGS_DIR,
    METADATA,
    RELEASES_DIR,
    check_environment,
    check_package,
    history_name,
    is_dag_file,
    package_prefix,
    release_id_of,
    sha_of_object,
)
from dagfactory_s3.release import Release

__all__ = ["Current", "PackageStore", "env_packages"]


def env_packages(client: Any, bucket: str, environment: str) -> list[str]:
    """The package prefixes of an environment (valid package names only)."""
    reason = check_environment(environment)
    if reason:
        raise ConfigError(reason)
    return [n for n in s3.list_prefixes(client, bucket, f"{environment}/") if not check_package(n)]


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

    def url(self, rest: str = "") -> str:
        return f"s3://{self.bucket}/{self.prefix}{rest}"

    # -- keys ------------------------------------------------------------------------------------

    def key(self, rest: str) -> str:
        """The full key of an allow-listed name; anything else is refused before any request."""
        if not (rest == METADATA or is_dag_file(rest) or release_id_of(rest) or sha_of_object(rest)):
            raise PublishError(
                f"refusing to write {rest!r}: not a file the publisher owns under {self.prefix}"
            )
        return self.prefix + rest

    def _deletable(self, rest: str) -> str:
        parts = rest.split("/")
        if (
            parts[0] not in (DAGS_DIR, RELEASES_DIR)
            or len(parts) < 2
            or any(p in ("", ".", "..") for p in parts)
        ):
            raise PublishError(
                f"refusing to delete {rest!r}: outside {self.prefix}{DAGS_DIR}/ and {self.prefix}{RELEASES_DIR}/"
            )
        return self.prefix + rest

    # -- reads -----------------------------------------------------------------------------------

    def list(self) -> dict[str, s3.Listed]:
        """Every object under the package prefix, by name relative to it."""
        listing = s3.list_objects(self.client, self.bucket, self.prefix)
        return {key[len(self.prefix) :]: item for key, item in listing.items()}

    def get(self, rest: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        fetched = s3.get(self.client, self.bucket, self.prefix + rest, missing_ok=True)
        return fetched.data if fetched else None

    def _record(self, key: str, *, missing_ok: bool) -> tuple[Release | None, str | None, str | None]:
        """(record, etag, problem) of the record at ``key``: a broken record is a problem, not a crash."""
        fetched = s3.get(self.client, self.bucket, key, missing_ok=missing_ok)
        if fetched is None:
            return None, None, None
        try:
            return Release.from_json(fetched.data, file=f"s3://{self.bucket}/{key}"), fetched.etag, None
        except RecordError as exc:
            return None, fetched.etag, str(exc)

    def current(self) -> Current:
        """The current record (``metadata.json``) and its ETag."""
        record, etag, problem = self._record(self.prefix + METADATA, missing_ok=True)
        why = record.identity_problem(self.package, self.environment) if record else ""
        if why:
            return Current(None, etag, f"{self.url(METADATA)}: {why}")
        return Current(record, etag, problem)

    def history(self, release_id: str) -> Release:
        record, _, problem = self._record(self.prefix + history_name(release_id), missing_ok=True)
        if problem:
            raise RecordError(problem)
        if record is None:
            raise PublishError(
                f"release {release_id} of {self.package!r} is not in {self.prefix}{RELEASES_DIR}/ (see 'list --history')"
            )
        return record

    def other_packages(self) -> tuple[dict[str, Release], str | None]:
        """Current records of the environment's other packages, and a warning when they cannot be read."""
        env = f"{self.environment}/"
        records: dict[str, Release] = {}
        try:
            for name in env_packages(self.client, self.bucket, self.environment):
                if name != self.package:
                    record, _, _ = self._record(f"{env}{name}/{METADATA}", missing_ok=True)
                    if record:  # a broken record is that package's problem; the sidecar reports it
                        records[name] = record
        except StorageError as exc:
            if not exc.denied:
                raise
            return records, (
                f"cannot read other packages' records in s3://{self.bucket}/{env} (access denied); "
                "DAG-id uniqueness across packages is left to the sidecar"
            )
        return records, None

    def empty_environment(self) -> str:
        """The warning for a first publish into an environment that holds no package: a typo in
        ``--environment`` would start a new one (`list --all-packages` names those that exist)."""
        return (
            f"s3://{self.bucket}/{self.environment}/ holds no package yet: this starts the environment "
            f"{self.environment!r}; if you meant another, `list --all-packages --environment <env>` shows its packages"
        )

    # -- writes ----------------------------------------------------------------------------------

    def put(self, rest: str, data: bytes) -> str | None:
        """Write one object of the package; returns its S3 VersionId when the bucket is versioned."""
        content_type = (
            "application/json"
            if rest.endswith(".json")
            else "text/x-python"
            if rest.endswith(".py")
            else "application/octet-stream"
        )
        return s3.put(
            self.client,
            self.bucket,
            self.key(rest),
            data,
            ContentType=content_type,
            Metadata={"sha256": hashlib.sha256(data).hexdigest()},
        )

    def commit(self, record: Release, *, expected_etag: str | None) -> None:
        """Write ``metadata.json`` only if it is still the one read (If-Match), or still absent (If-None-Match)."""
        try:
            s3.put(
                self.client,
                self.bucket,
                self.key(METADATA),
                record.to_json(),
                if_match=expected_etag,
                if_none_match=not expected_etag,
                ContentType="application/json",
                CacheControl="no-cache",
            )
        except RecordConflict:
            raise RecordConflict(
                f"{self.prefix}{METADATA} changed while publishing: another publish of {self.package!r} committed first"
            ) from None

    def delete(self, rest: str) -> None:
        s3.delete(self.client, self.bucket, self._deletable(rest))
