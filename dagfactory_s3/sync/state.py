"""The sidecar's memory between cycles and restarts: what it wrote to the dags folder, from where.

One JSON file, replaced atomically. It is written *after* the files it describes, and before a cycle
writes anything it records the paths it is about to create (``pending``), so a SIGKILL at any point
leaves either a state that matches the disk or pending paths the next cycle checks by content.
The state is a cache: losing it costs GETs, never correctness.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from dagfactory_s3.fs import atomic_write
from dagfactory_s3.naming import dag_id_of

__all__ = ["FORMAT", "Applied", "Mode", "PackageState", "State"]

FORMAT = "dagfactory-s3/sync-state@1"
STATE_FILE = ".dagfactory-sync-state.json"

try:
    from enum import StrEnum
except ImportError:  # Python 3.10: the same behaviour for our uses (str() and format() give the value)
    from enum import Enum

    class StrEnum(str, Enum):  # type: ignore[no-redef]
        __str__ = str.__str__
        __format__ = str.__format__


class Mode(StrEnum):
    """How a package is served: exactly its release record, or a mirror of its ``dags/``."""

    RELEASE = "release"  # it has a metadata.json
    MIRROR = "mirror"


@dataclass
class Applied:
    """One file on disk written by the sidecar: its sha256 and the (unquoted) ETag of its object."""

    sha256: str
    etag: str | None = None


@dataclass
class PackageState:
    mode: Mode
    release_id: str | None = None
    files: dict[str, Applied] = field(default_factory=dict)  # rest ("dags/x.json") -> applied

    def dag_ids(self) -> set[str]:
        return {dag_id_of(rest) for rest in self.files if rest.endswith(".json")}


@dataclass
class State:
    bucket: str
    environment: str
    packages: dict[str, PackageState] = field(default_factory=dict)
    # Release records seen, by package: (metadata.json ETag unquoted, raw record). Saves a GET per cycle.
    records: dict[str, tuple[str, str]] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)  # "<package>/<rest>" possibly on disk
    # The platform policy served in <dags_folder>/_platform/: (its pointer's ETag unquoted, policy id).
    policy: tuple[str, str] | None = None

    @classmethod
    def load(cls, directory: Path, *, bucket: str, environment: str) -> State:
        """The saved state, or an empty one when missing, unreadable or for another bucket/env."""
        path = directory / STATE_FILE
        empty = cls(bucket, environment)
        try:
            doc = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return empty
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            return empty
        if doc.get("bucket") != bucket or doc.get("environment") != environment:
            # Another source: what is on disk is still ours to manage, so keep the file list.
            doc["records"], doc["policy"] = {}, None
        try:
            packages = {
                name: PackageState(
                    mode=Mode(p["mode"]),
                    release_id=p.get("release_id"),
                    files={
                        rest: Applied(a["sha256"], _unquote(a.get("etag"))) for rest, a in p["files"].items()
                    },
                )
                for name, p in doc.get("packages", {}).items()
            }
            records = {name: (_unquote(r[0]), r[1]) for name, r in doc.get("records", {}).items()}
            pending = [str(p) for p in doc.get("pending", [])]
            policy = doc.get("policy")
            policy = (str(policy[0]), str(policy[1])) if policy else None
        except (KeyError, TypeError, IndexError, AttributeError, ValueError):
            return empty
        return cls(bucket, environment, packages, records, pending, policy)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        doc: dict[str, Any] = {
            "format": FORMAT,
            "bucket": self.bucket,
            "environment": self.environment,
            "packages": {
                name: {
                    "mode": p.mode,
                    "release_id": p.release_id,
                    "files": {
                        rest: {"sha256": a.sha256, "etag": a.etag} for rest, a in sorted(p.files.items())
                    },
                }
                for name, p in sorted(self.packages.items())
            },
            "records": {name: list(r) for name, r in sorted(self.records.items())},
            "pending": sorted(set(self.pending)),
            "policy": list(self.policy) if self.policy else None,
        }
        atomic_write(directory / STATE_FILE, orjson.dumps(doc, option=orjson.OPT_INDENT_2))

    def served(self) -> dict[str, str]:
        """dag_id -> the package serving it now."""
        out: dict[str, str] = {}
        for name in sorted(self.packages):
            for dag_id in self.packages[name].dag_ids():
                out.setdefault(dag_id, name)
        return out

    def dag_count(self) -> int:
        return sum(len(p.dag_ids()) for p in self.packages.values())


def _unquote(etag: str | None) -> str | None:
    """ETags are kept unquoted; state files written before that stored S3's quoted form."""
    return etag.strip('"') if isinstance(etag, str) else etag
