"""The entry point generated stubs call: ``load_dag(__file__, "<name>.json", api=1)``.

The stub template lives next to this module (``stub.py.tmpl``); see ``README.md`` here for the
contract between a stub and the factory. This module stays importable without Airflow; the factory
is imported only when a stub actually builds its DAG.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from dagfactory_s3.errors import DagFactoryError, ManifestError, Problem

if TYPE_CHECKING:
    from airflow.sdk import DAG  # noqa: TID251  (type only; never imported at run time)

__all__ = ["API_VERSION", "SUPPORTED_APIS", "load_dag", "warm"]

API_VERSION = 1
SUPPORTED_APIS = frozenset({1})


def load_dag(stub_file: str, manifest: str, *, api: int) -> DAG:
    """Build the DAG described by the manifest named ``manifest`` next to ``stub_file``.

    Raises :class:`ManifestError` (one message naming the file, pointer and reason) when the
    manifest is missing, unreadable or invalid, so Airflow records an import error for this stub only.
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
    from dagfactory_s3 import factory
    from dagfactory_s3 import manifest as manifests

    try:
        return factory.build_dag(manifests.load(path))
    except DagFactoryError as exc:
        # Airflow records the last frames of the traceback as the import error: drop our internal
        # frames so the record is the stub line plus the one message, the same text every surface shows.
        raise exc.with_traceback(None) from None


def warm() -> None:
    """Import the Airflow-free parse modules and build the schema validator, once, in this process.

    Meant for ``$AIRFLOW_HOME/config/airflow_local_settings.py``, which every Airflow process imports
    at start-up: the dag-processor manager then holds them before it forks a child per file, so no
    child pays for them (docs/benchmarks.md: 100 -> 89 ms CPU per DAG). It imports no Airflow and no
    Kubernetes client, so components that never parse DAGs pay a few milliseconds, not more.
    """
    from dagfactory_s3 import manifest, schema  # noqa: F401  (imported for their side effect)

    schema._validator()
