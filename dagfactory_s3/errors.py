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
    "ManifestError",
    "Problem",
    "PublishError",
    "StorageError",
    "SyncError",
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


class StorageError(DagFactoryError):
    """S3 could not be read or written: missing bucket, access denied, expired credentials, network."""

    exit_code = 3


class PublishError(DagFactoryError):
    """A publish, rollback or retire was refused (isolation, ownership, concurrency)."""

    exit_code = 4


class SyncError(DagFactoryError):
    """The sidecar refused or could not apply S3 content."""
