"""dagfactory-s3: Airflow DAGs shipped as JSON job manifests plus canonical stubs.

Importing this package imports nothing heavy: the publisher and the sync sidecar run without
Airflow. Only :mod:`dagfactory_s3.factory` (used by generated stubs) and :mod:`dagfactory_s3.bundle`
(the versioned DAG bundle, an Airflow plugin point) import Airflow.
"""

from dagfactory_s3.errors import DagFactoryError, ManifestError, Problem

__all__ = ["DagFactoryError", "ManifestError", "Problem", "__version__"]

__version__ = "0.1.0"
