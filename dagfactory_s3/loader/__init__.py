"""The entry point generated stubs call: ``load_dag(__file__, "<name>.json", api=1)``.

The stub template lives next to this module (``stub.py.tmpl``); see ``README.md`` here for the
contract between a stub and the factory. This module stays importable without Airflow; the factory
is imported only when a stub actually builds its DAG.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from dagfactory_s3 import naming
from dagfactory_s3.errors import DagFactoryError, ManifestError, Problem
from dagfactory_s3.stub import API_VERSION, SUPPORTED_APIS

if TYPE_CHECKING:
    from airflow.sdk import DAG  # noqa: TID251  (type only; never imported at run time)

    from dagfactory_s3.manifest import Manifest

__all__ = ["API_VERSION", "SUPPORTED_APIS", "load_dag", "warm"]  # the versions: dagfactory_s3.stub


def load_dag(stub_file: str, manifest: str, *, api: int) -> DAG:
    """Build the DAG described by the manifest named ``manifest`` next to ``stub_file``.

    Raises :class:`ManifestError` (one message naming the file, pointer and reason) when the
    manifest is missing, unreadable, invalid, or not the one its place in the folder says it is
    (see :func:`_placement_problems`), so Airflow records an import error for this stub only. Any
    other exception on the way (a bug, a broken Airflow setting) becomes such a ManifestError too.
    """
    path = os.path.join(os.path.dirname(os.path.abspath(stub_file)), manifest)
    if api not in SUPPORTED_APIS:
        raise ManifestError(
            [
                Problem(
                    path,
                    "",
                    f"stub uses loader API {api}, this dagfactory-s3 supports {sorted(SUPPORTED_APIS)}; "
                    "regenerate the stub or upgrade dagfactory-s3 in the Airflow image",
                )
            ]
        )
    try:
        from dagfactory_s3 import factory
        from dagfactory_s3 import manifest as manifests
        from dagfactory_s3.serve import policy as policies

        if not os.path.exists(path):  # a versioned bundle's worker fetches what it runs, when it runs it
            from dagfactory_s3 import pending

            pending.fetch(path)
        policy = policies.for_stub(stub_file)  # the image's override, else the served copy, else the default
        checked = _for_local_environment(stub_file, manifests.load(path, policy=policy))
        problems = _placement_problems(stub_file, checked)
        if problems:
            raise ManifestError(problems)
        return factory.build_dag(checked, policy)
    except DagFactoryError as exc:
        # Airflow records the last frames of the traceback as the import error: drop our internal
        # frames so the record is the stub line plus the one message, the same text every surface shows.
        raise exc.with_traceback(None) from None
    except Exception as exc:  # not BaseException: a parse timeout or SystemExit must still stop us
        # One bad object harms only itself, and shows one line, never a traceback through Airflow.
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        if len(reason) > _MAX_REASON:
            reason = reason[: _MAX_REASON - 3] + "..."
        raise ManifestError([Problem(path, "", f"cannot build the DAG: {reason}")]) from None


_MAX_REASON = 500


def _for_local_environment(stub_file: str, checked: Manifest) -> Manifest:
    """The source manifest resolved for ``DAGFACTORY_LOCAL_ENVIRONMENT`` (the bytes ``publish
    --environment`` would upload): how a developer loads a manifest with ``environments`` in a local
    Airflow.

    Unchanged when the manifest has no ``environments``, the variable is unset, or the manifest is
    served (:func:`_served`): a served folder shows what was published, whatever an Airflow process's
    environment says, and :func:`_placement_problems` refuses overlays there.
    """
    if "environments" not in checked.data:
        return checked
    # Imported on this rare path only: every other stub's parse pays nothing for the setting.
    from dagfactory_s3 import manifest as manifests
    from dagfactory_s3 import settings

    setting = settings.OPTIONS["local_environment"]
    environment = settings.from_environment(setting, os.environ)
    if not environment or _served(stub_file, checked):
        return checked
    if environment not in checked.data["environments"]:
        raise ManifestError(
            [
                Problem(
                    checked.file,
                    "/environments",
                    f"{setting.env} is {environment!r}, which this manifest does not declare "
                    f"(declared: {_declared(checked)}); set it to one of them, or unset it",
                )
            ]
        )
    return manifests.publishable(checked, environment)


def _served(stub_file: str, checked: Manifest) -> bool:
    """Whether the publisher stamped the manifest or the sidecar or a bundle laid out its folder."""
    from dagfactory_s3.manifest import PROVENANCE

    return PROVENANCE in checked.data or _package_folder(stub_file) is not None


def _declared(checked: Manifest) -> str:
    return ", ".join(sorted(checked.data["environments"])) or "none"


def _placement_problems(stub_file: str, checked: Manifest) -> list[Problem]:
    """Why the manifest does not belong where its stub is: defence in depth behind the sync sidecar.

    The DAG id must be the stub's file name (``<dag_id>.py``), in every layout. In the sidecar's
    ``<package>/dags/`` layout, the manifest's package must also be the folder's: otherwise a manifest
    that slipped into another package's folder could take over that package's DAG ids.
    """
    problems = []
    if "environments" in checked.data:  # a source manifest that _for_local_environment did not resolve
        from dagfactory_s3 import settings

        variable = settings.OPTIONS["local_environment"].env
        problems.append(
            Problem(
                checked.file,
                "/environments",
                "a published manifest has no environments: publish resolves them (publish --environment); "
                f"in a local Airflow, set {variable} to one of {_declared(checked)} (honoured only for an "
                "unstamped manifest outside the folders the sidecar and bundles serve)",
            )
        )
    stem = os.path.splitext(os.path.basename(stub_file))[0]
    if checked.dag_id != stem:
        problems.append(
            Problem(
                checked.file,
                "/dag_id",
                f"manifest declares dag_id {checked.dag_id!r} but its stub is {stem}.py; "
                "a DAG's files must be named <dag_id>.json and <dag_id>.py",
            )
        )
    folder = _package_folder(stub_file)
    if folder is not None and checked.package != folder:
        problems.append(
            Problem(
                checked.file,
                "/package",
                f"manifest belongs to package {checked.package!r} but sits in {folder}/{naming.DAGS_DIR}/, "
                f"which only package {folder!r} may fill",
            )
        )
    return problems


def _package_folder(stub_file: str) -> str | None:
    """The package owning ``<package>/dags/`` around the stub, when the sync sidecar laid it out; else None.

    A stub directly in a dags folder that happens to be called ``dags`` (``/opt/airflow/dags/x.py``)
    or in a developer's folder is not in that layout: only the sidecar's ``.airflowignore`` beside
    ``dags/`` tells the two apart, at the cost of one small read.
    """
    dags = os.path.dirname(os.path.abspath(stub_file))
    if os.path.basename(dags) != naming.DAGS_DIR:
        return None
    package_dir = os.path.dirname(dags)
    try:
        with open(os.path.join(package_dir, naming.SYNC_IGNORE_FILE), "rb") as handle:
            head = handle.read(len(naming.SYNC_IGNORE_HEADER))
    except OSError:
        return None
    return os.path.basename(package_dir) if head == naming.SYNC_IGNORE_HEADER else None


def warm() -> None:
    """Import the Airflow-free parse modules and build the schema validator, once, in this process.

    Meant for ``$AIRFLOW_HOME/config/airflow_local_settings.py``, which every Airflow process imports
    at start-up: the dag-processor manager then holds them before it forks a child per file, so no
    child pays for them (docs/benchmarks.md: 100 -> 89 ms CPU per DAG). It imports no Airflow and no
    Kubernetes client, so components that never parse DAGs pay a few milliseconds, not more.
    """
    from dagfactory_s3 import manifest, schema  # noqa: F401  (imported for their side effect)
    from dagfactory_s3.serve import policy  # noqa: F401  (the served policy's reader: no botocore)

    schema._validator()
