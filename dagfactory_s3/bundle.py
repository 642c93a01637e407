"""An Airflow 3 versioned DAG bundle over committed releases: every DAG run executes the release it started with.

Configure it in ``[dag_processor] dag_bundle_config_list`` (docs/deploy.md)::

    [{"name": "etl", "classpath": "dagfactory_s3.bundle.S3ReleaseDagBundle",
      "kwargs": {"bucket": "etl-airflow-dags-prod", "environment": "prod"}}]

This module is only Airflow's interface (``BaseDagBundle``); what a version is, how it is refreshed,
rebuilt from S3 history on a worker and materialized is :mod:`dagfactory_s3.serve.versions`, which
needs no Airflow, and the serving rules are the sidecar's (:mod:`dagfactory_s3.serve.rules`).

A version is stored with each DAG version in Airflow's records (:class:`BundleVersion` ``data``,
``dag_version.version_data``, Airflow 3.3+), but a worker is given the version string alone (Airflow's
task runner does not pass the data on): it reads the version's index, one object the refreshing
dag-processor writes to ``s3://<bucket>/_bundle/<env>/``, or, without one, rebuilds the mapping from
S3 history. Airflow needs read access to the bucket, and write access to ``_bundle/<env>/`` for the
index.

This module and :mod:`dagfactory_s3.factory` are the only ones that import Airflow.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from airflow.dag_processing.bundles.base import BaseDagBundle

from dagfactory_s3.errors import ConfigError
from dagfactory_s3.serve.versions import MAPPING_FORMAT, Mapping, ReleaseVersions, parse_version, version_name

try:  # Airflow 3.3+: the version's data is stored with each DAG version (dag_version.version_data)
    from airflow.dag_processing.bundles.base import BundleVersion
except ImportError:  # pragma: no cover - older minors: the version string alone, rebuilt from S3
    BundleVersion = None  # type: ignore[assignment,misc]

__all__ = ["MAPPING_FORMAT", "Mapping", "S3ReleaseDagBundle", "version_name"]

log = logging.getLogger(__name__)


class S3ReleaseDagBundle(BaseDagBundle):
    """The committed releases of ``s3://<bucket>/<environment>/``, one immutable version per set of releases.

    :param bucket: the DAG bucket (read access only; the standard AWS chain, ``AWS_ENDPOINT_URL`` works)
    :param environment: the environment prefix (``dev``, ``prod`` ...)
    :param max_delete_fraction: the sidecar's mass-delete guard, per refresh
    :param workers: parallel GETs when materializing
    :param queue_url: an SQS queue of this dag-processor's own receiving the bucket's event notifications
        under ``<environment>/``: a refresh then asks S3 only about the packages the events named, and
        nothing when none did (docs/bundle.md, push delivery)
    :param full_refresh_interval: with a queue, seconds between full listings, the backstop (default 300)
    :param version_index: write each new version's index to ``s3://<bucket>/_bundle/<environment>/``
        (default true; needs ``s3:PutObject`` there), so a worker's task start reads one object instead
        of every package's records (docs/bundle.md)
    """

    supports_versioning = True

    def __init__(
        self,
        *,
        bucket: str,
        environment: str,
        max_delete_fraction: float = 0.5,
        workers: int = 16,
        queue_url: str | None = None,
        full_refresh_interval: float | None = None,
        version_index: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.versions = ReleaseVersions(
            name=self.name,
            bucket=bucket,
            environment=environment,
            base_dir=self.base_dir,
            versions_dir=self.versions_dir,
            max_delete_fraction=max_delete_fraction,
            workers=workers,
            queue_url=queue_url,
            full_refresh_interval=full_refresh_interval,
            version_index=version_index,
        )
        if self.version:
            parse_version(self.version)
        if BundleVersion is None:
            log.warning(
                "bundle %s: this Airflow has no bundle version data (Airflow 3.3+ stores it); "
                "workers rebuild each version from S3 history alone",
                self.name,
            )

    @property
    def requests(self) -> dict[str, int]:
        """What this instance asked S3, by kind (benchmarks, logs)."""
        return self.versions.requests

    @property
    def mappings_dir(self) -> Path:
        return self.versions.mappings_dir

    @property
    def path(self) -> Path:
        if self.version:
            return self.versions_dir / self.version
        return self.versions.current_link

    def get_current_version(self) -> Any:
        version = self.version or self.versions.current_version()
        if version is None:
            return None
        if BundleVersion is None:
            return version
        mapping = self.versions.local_mapping(version)
        return BundleVersion(version=version, data=mapping.to_data() if mapping else None)

    def initialize(self) -> None:
        with self.lock():
            if self.version:
                self.versions.materialize(self.version)
            elif self.versions.current_version() is None:
                self.versions.refresh()
        super().initialize()

    def refresh(self) -> None:
        if self.version:
            raise ConfigError(f"bundle {self.name!r} is pinned at version {self.version}; it cannot refresh")
        with self.lock():
            self.versions.refresh(push=True)  # only Airflow's periodic refresh follows the queue
