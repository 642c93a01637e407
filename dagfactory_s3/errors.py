"""The one error hierarchy of dagfactory-s3.

This module imports nothing from the project, so every surface (CLI, stub/Airflow import error,
sidecar log) can raise and render the same errors. A user error is a :class:`DagFactoryError`;
anything else escaping is a bug and deserves its traceback.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "ConfigError",
    "DagFactoryError",
    "Interrupted",
    "ManifestError",
    "Problem",
    "PublishError",
    "RecordConflict",
    "RecordError",
    "StorageError",
    "SyncError",
    "TemplateError",
]


# NamedTuples rather than dataclasses on the parse path: every dag-processor child imports this
# module, and a NamedTuple class costs a tenth of a dataclass to create.
class Problem(NamedTuple):
    """One thing wrong with one file: where (file and JSON pointer) and why."""

    file: str
    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.pointer or '/'}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "pointer": self.pointer or "/", "message": self.message}


class DagFactoryError(Exception):
    """Base of every error a user can cause. The CLI maps it to an exit code without a traceback."""

    exit_code = 1

    def problems(self) -> list[Problem]:
        return []


class ConfigError(DagFactoryError):
    """Wrong flags, environment variables or local paths."""

    exit_code = 2


class ManifestError(DagFactoryError):
    """One or more manifests are invalid. Carries every problem found, sorted, one per line."""

    def __init__(self, problems: list[Problem]) -> None:
        if not problems:
            raise ValueError("ManifestError needs at least one problem")
        self._problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self._problems))

    def problems(self) -> list[Problem]:
        return list(self._problems)


class TemplateError(DagFactoryError):
    """A templated string outside the template language, met when a task renders it (the worker)."""


class StorageError(DagFactoryError):
    """S3 could not be read or written: missing bucket, access denied, expired credentials, network.

    ``code`` is S3's error code when S3 answered (``AccessDenied``, ``NoSuchBucket`` ...), else "".
    """

    exit_code = 3

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code

    @property
    def denied(self) -> bool:
        return self.code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled")


class PublishError(DagFactoryError):
    """A publish, rollback or retire was refused (isolation, ownership, concurrency)."""

    exit_code = 4


class Interrupted(DagFactoryError):
    """SIGINT or SIGTERM stopped a command; the message says what S3 holds and how a rerun completes it."""

    exit_code = 130


class RecordConflict(PublishError):
    """A conditional write lost: ``metadata.json`` changed since it was read (a concurrent publish won)."""


class RecordError(DagFactoryError):
    """A release record in S3 is not a valid record (the publisher refuses to build on it, the sidecar
    keeps that package's last applied release)."""

    exit_code = 4


class SyncError(DagFactoryError):
    """The sidecar refused or could not apply S3 content."""
