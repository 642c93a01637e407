"""What the sync sidecar lets into the dags folder: S3 keys, manifests and Python files.

Pure functions, no I/O: every security rule of the sidecar is here, so it can be read (and tested)
in one place. The rules:

* only ``<env>/<package>/dags/<dag_id>.json|.py`` can reach the dags folder; the character set is so
  narrow that ``..``, absolute paths, backslashes and odd characters cannot occur in a served path;
* a DAG file's name must belong to its package (``<package>_<name>``), and a manifest's ``package``
  and ``dag_id`` must match its prefix and file name (ownership);
* a ``.py`` is served only when it is byte-identical to the canonical stub (the sidecar writes the
  stub itself), unless the operator opted into ``--allow-python`` for legacy packages;
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
from dagfactory_s3 import stub
from dagfactory_s3.errors import ManifestError
from dagfactory_s3.naming import (
    DAGS_DIR,
    METADATA,
    RELEASES_DIR,
    check_dag_id,
    check_package,
    dag_id_of,
    is_dag_file,
)

__all__ = [
    "KeyClass",
    "ManifestVerdict",
    "canonical_stub",
    "check_manifest",
    "claim",
    "classify_key",
    "too_many_deletions",
]

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


def check_manifest(raw: bytes, *, key: str, package: str, stem: str) -> ManifestVerdict:
    """Decide whether the manifest bytes at ``key`` (``<package>/dags/<stem>.json``) are served."""
    if len(raw) > manifests.MAX_BYTES:
        return ManifestVerdict(False, f"manifest is larger than {manifests.MAX_BYTES} bytes")
    if _CONTROL.search(raw):
        return ManifestVerdict(False, "manifest is not JSON text (contains control bytes)")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return ManifestVerdict(False, "manifest is not UTF-8 text")
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
