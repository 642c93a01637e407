"""What may be served from S3 into Airflow: keys, release records, manifests and Python files.

Pure functions, no I/O: every security rule of serving is here, read by both ways of serving (the
sidecar's reconcile and the versioned bundle), so it can be read (and tested) in one place. The rules:

* only ``<env>/<package>/dags/<dag_id>.json|.py`` can reach the dags folder; the character set is so
  narrow that ``..``, absolute paths, backslashes and odd characters cannot occur in a served path;
* a DAG file's name must belong to its package (``<package>_<name>``), and a manifest's ``package``
  and ``dag_id`` must match its prefix and file name (ownership);
* a ``.py`` is served only when it is byte-identical to the canonical stub (the sidecar writes the
  stub itself), unless the operator opted into ``--allow-python`` for legacy packages;
* a release record is read within :data:`MAX_RECORD_BYTES` and must name the package, environment
  (and release id) it stands for; a recorded file is served by :func:`served_files`, from the
  immutable content object when the record has one (never a readable copy another write could change);
* a manifest that is correctly named and owned but otherwise invalid is *served*, so Airflow records
  exactly one import error for it; content that is not UTF-8 JSON text is refused, because Airflow
  also loads non-``.py`` files that are zip archives.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache

from dagfactory_s3 import manifest as manifests
from dagfactory_s3 import naming, stub
from dagfactory_s3 import release as releases
from dagfactory_s3.errors import ManifestError, SyncError
from dagfactory_s3.naming import (
    DAGS_DIR,
    METADATA,
    RELEASES_DIR,
    check_dag_id,
    check_package,
    dag_id_of,
    is_dag_file,
)
from dagfactory_s3.serve.policy import PLATFORM_DIR

__all__ = [
    "MAX_PYTHON_BYTES",
    "MAX_RECORD_BYTES",
    "KeyClass",
    "ManifestVerdict",
    "Refusal",
    "ServedFile",
    "canonical_stub",
    "check_manifest",
    "claim",
    "classify_key",
    "read_record",
    "served_files",
    "too_many_deletions",
]

MAX_RECORD_BYTES = 8 * 1024 * 1024  # a release record (metadata.json or a history object)
MAX_PYTHON_BYTES = 4 * 1024 * 1024  # a non-canonical .py, served only with the sidecar's --allow-python

_PRINTABLE_KEY = re.compile(r"^[A-Za-z0-9._/=+-]+$")
# JSON text never contains these; a zip archive's records (which Airflow would import) always do.
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class KeyClass:
    """What a listed key is. ``kind``: dag, metadata, ignore or refuse (with ``reason``)."""

    kind: str
    package: str = ""
    rest: str = ""
    reason: str = ""

    @property
    def name(self) -> str:
        return self.rest.rpartition("/")[2]

    @property
    def is_manifest(self) -> bool:
        return self.name.endswith(".json")


def classify_key(env: str, key: str) -> KeyClass:
    """Classify one key listed under ``<env>/``. Refusals say why, in words an operator can act on."""
    prefix = f"{env}/"
    if not key.startswith(prefix):
        return KeyClass("refuse", reason=f"key is outside the environment prefix {prefix!r}")
    rel = key[len(prefix) :]
    if rel.endswith("/"):
        return KeyClass("ignore")  # a "folder" marker made by the console; holds no content
    if not _PRINTABLE_KEY.fullmatch(rel):
        return KeyClass("refuse", reason="key contains characters outside [A-Za-z0-9._/=+-]")
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return KeyClass("refuse", reason="key has an empty, '.' or '..' path segment (path traversal)")
    package = parts[0]
    if package == PLATFORM_DIR and len(parts) > 1:
        return KeyClass("ignore", rest="/".join(parts[1:]))  # the platform policy: read on its own
    if len(parts) == 1:
        return KeyClass("refuse", reason="key is not inside a <package>/ prefix")
    why = check_package(package)
    if why:
        return KeyClass("refuse", package=package, reason=why)
    rest = "/".join(parts[1:])
    if rest == METADATA:
        return KeyClass("metadata", package, rest)
    if parts[1] == RELEASES_DIR:
        return KeyClass("ignore", package, rest)  # the publisher's history, kept for rollback
    if len(parts) != 3 or parts[1] != DAGS_DIR:
        return KeyClass("refuse", package, rest, f"only {package}/{DAGS_DIR}/<dag_id>.json|.py is served")
    if not is_dag_file(rest):
        return KeyClass("refuse", package, rest, "DAG file name must be <dag_id>.json or <dag_id>.py")
    why = check_dag_id(dag_id_of(rest), package)
    if why:
        return KeyClass("refuse", package, rest, f"file name does not belong to the package: {why}")
    return KeyClass("dag", package, rest)


@lru_cache(maxsize=16384)
def canonical_stub(name: str) -> tuple[bytes, str, str]:
    """The canonical stub for ``<dag_id>.py``: (bytes, sha256, md5) -- md5 is S3's single-part ETag."""
    data = stub.stub_for(name)
    return data, hashlib.sha256(data).hexdigest(), hashlib.md5(data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class ManifestVerdict:
    """``serve`` False means refused (``kind`` of refusal) for ``reason``; ``invalid`` carries the
    import error to expect."""

    serve: bool
    reason: str = ""
    invalid: str = ""
    kind: str = "ownership"


def check_manifest(raw: bytes, *, key: str, package: str, stem: str, full: bool = True) -> ManifestVerdict:
    """Decide whether the manifest bytes at ``key`` (``<package>/dags/<stem>.json``) are served.

    Serving needs only the size, the text and the ownership (``package`` and ``dag_id``); ``full`` also
    checks the whole manifest (bounded: :data:`~dagfactory_s3.manifest.MAX_EVALUATED_VALUES`) to say
    why an owned manifest is invalid -- served anyway, so Airflow shows the import error."""
    if len(raw) > manifests.MAX_BYTES:
        return ManifestVerdict(False, manifests.too_large())
    if _CONTROL.search(raw):
        return ManifestVerdict(False, "manifest is not JSON text (contains control bytes)")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return ManifestVerdict(False, "manifest is not UTF-8 text")
    if not full:
        owner = _ownership(raw, package, stem)
        return ManifestVerdict(False, owner) if owner else ManifestVerdict(True)
    try:
        checked = manifests.parse(raw, file=key, package=package)
    except ManifestError as exc:
        owner = _ownership(raw, package, stem)
        if owner:
            return ManifestVerdict(False, owner)
        return ManifestVerdict(True, invalid=str(exc))
    except Exception as exc:  # a gap in our own checks: this manifest cannot be judged, so it is not served
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        return ManifestVerdict(False, f"manifest could not be checked ({reason})", kind="unchecked")
    if checked.dag_id != stem:
        return ManifestVerdict(False, f"manifest declares dag_id {checked.dag_id!r} but is named {stem}.json")
    return ManifestVerdict(True)


def _ownership(raw: bytes, package: str, stem: str) -> str:
    """Why an invalid manifest claims something outside its prefix ('' when it does not)."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return ""
    if not isinstance(doc, dict):
        return ""
    claimed = doc.get("package")
    if "package" in doc and claimed != package:
        return f"manifest claims package {claimed!r} but is published under {package!r}"
    dag_id = doc.get("dag_id")
    if "dag_id" in doc and dag_id != stem:
        return f"manifest declares dag_id {dag_id!r} but is named {stem}.json"
    return ""


def claim(claims: dict[str, str], dag_id: str, package: str) -> str | None:
    """Record ``package``'s claim on ``dag_id`` in ``claims`` (dag_id -> serving package).

    Returns the package already serving the id when that is another one: the claim is refused, the
    package serving it keeps it (a newcomer never takes over another package's DAG).
    """
    holder = claims.setdefault(dag_id, package)
    return holder if holder != package else None


def too_many_deletions(served: int, deleted: int, added: int, fraction: float) -> bool:
    """The mass-delete guard: would deleting ``deleted`` of ``served`` DAGs (``added`` new ones offset
    them) shrink what is served by more than ``fraction`` at once? A listing that lost objects looks
    exactly like a mass delete."""
    return bool(served and deleted and deleted - added > fraction * served)


def read_record(
    raw: bytes, *, key: str, package: str, environment: str, release_id: str | None = None
) -> releases.Release:
    """The release record in ``raw`` (read from ``key``), checked to stand for ``package`` in
    ``environment`` (and ``release_id``). Raises RecordError (not a record) or SyncError (another
    package's, environment's or release's record), both naming ``key``."""
    if len(raw) > MAX_RECORD_BYTES:
        raise SyncError(f"{key}: release record is larger than {MAX_RECORD_BYTES} bytes")
    record = releases.Release.from_json(raw, file=key)
    why = record.identity_problem(package, environment, release_id)
    if why:
        raise SyncError(f"{key}: {why}")
    return record


@dataclass(frozen=True)
class ServedFile:
    """One recorded file that is served: ``rest`` (``dags/<name>``) with the content the record names,
    fetched from ``source`` (the immutable content object, or the ``dags/`` key of a 0.1 record)."""

    rest: str
    key: str  # the file's readable key under dags/ (what logs and refusals name)
    source: str
    sha256: str
    size: int
    version_id: str | None
    python: bool = False  # a non-canonical .py (the sidecar's --allow-python only)


@dataclass(frozen=True)
class Refusal:
    """A recorded file that is not served: ``kind`` (key, content or python) and why."""

    key: str
    sha256: str
    kind: str
    reason: str


def served_files(
    record: releases.Release, environment: str, *, allow_python: bool = False
) -> tuple[list[ServedFile], list[Refusal]]:
    """What one release serves, and what it may not (sorted by file).

    Only ``dags/<dag_id>.json|.py`` keys that belong to the package; a manifest within the size limit;
    a recorded ``.py`` only when it is the canonical stub of a served manifest -- which is then *not*
    listed, because whoever serves writes the stub itself -- or, with ``allow_python`` (never for a
    record whose content is immutable objects), any ``.py`` within :data:`MAX_PYTHON_BYTES`.
    """
    prefix = naming.package_prefix(environment, record.package)
    manifest_rests = {rest for rest in record.files if rest.endswith(".json")}
    served: list[ServedFile] = []
    refused: list[Refusal] = []
    for rest, entry in sorted(record.files.items()):
        key = prefix + rest
        cls = classify_key(environment, key)
        if cls.kind != "dag":
            refused.append(Refusal(key, entry.sha256, "key", cls.reason or "not a DAG file"))
            continue
        python = rest.endswith(".py")
        if python:
            stub_sha = canonical_stub(cls.name)[1]
            if entry.sha256 == stub_sha and naming.manifest_of(rest) in manifest_rests:
                continue  # the canonical stub: written by whoever serves, never fetched
            if not allow_python or entry.size > MAX_PYTHON_BYTES or record.content:
                why = "stub without its manifest" if entry.sha256 == stub_sha else "not the canonical stub"
                refused.append(
                    Refusal(key, entry.sha256, "python", f"{why}; only generated stubs are served")
                )
                continue
        elif entry.size > manifests.MAX_BYTES:
            refused.append(Refusal(key, entry.sha256, "content", manifests.too_large()))
            continue
        source = key
        if record.content == releases.CONTENT_OBJECTS:  # immutable, by digest; never the readable copy
            source = prefix + naming.object_name(entry.sha256)
        served.append(ServedFile(rest, key, source, entry.sha256, entry.size, entry.version_id, python))
    return served, refused
