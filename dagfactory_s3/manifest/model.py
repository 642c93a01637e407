"""What a checked manifest is: the :class:`Manifest` and its resolved :class:`Task`, the limits a
manifest must stay within, and the defaults a task gets when it sets nothing. Imports nothing of the
package but this: every other module of :mod:`dagfactory_s3.manifest` reads it.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any, NamedTuple

__all__ = [
    "DEFAULT_NAMESPACE",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_EVALUATED_VALUES",
    "MAX_MAP_LENGTH",
    "MAX_TOTAL",
    "PROVENANCE",
    "TASK_DEFAULTS",
    "Manifest",
    "Task",
    "too_large",
]

MAX_BYTES = 256 * 1024
PROVENANCE = "provenance"
MAX_DEPTH = 32
# Bound on the work of checking one manifest, wherever it is checked: its JSON values, counted once for
# the manifest and once more for each environment it is resolved for. A few thousand make a large
# manifest (200 rich tasks, a few environments); at the bound a check takes under 2 s (docs/benchmarks.md).
MAX_EVALUATED_VALUES = 50_000
# Bound on every duration and on a task's worst case (all tries, timeouts and delays): Airflow adds
# them to the current time, and ten years is beyond any batch job.
MAX_TOTAL = timedelta(days=3650)
DEFAULT_NAMESPACE = "etl-jobs"
# Airflow's [core] max_map_length default: a mapped task with more items fails at run time.
MAX_MAP_LENGTH = 1024

# Defaults applied when neither the task nor task_defaults sets a field.
TASK_DEFAULTS: dict[str, Any] = {
    "namespace": DEFAULT_NAMESPACE,
    "startup_timeout": "2m",
    "retries": 0,
    "retry_delay": "5m",
    "on_finish_action": "delete_pod",
    "get_logs": True,
    "allow_mutable_image": False,
}


def too_large() -> str:
    """Why a manifest over :data:`MAX_BYTES` is refused: the one wording for every place that measures one."""
    return f"manifest is larger than {MAX_BYTES} bytes ({MAX_BYTES // 1024} KiB)"


class Task(NamedTuple):
    """One resolved task: defaults applied, inherited fields merged. ``where`` is its JSON pointer."""

    task_id: str
    where: str
    fields: dict[str, Any]
    depends_on: tuple[str, ...] = ()


class Manifest(NamedTuple):
    """A valid manifest: its bytes, their sha256 and the resolved, plain-data view of them."""

    file: str
    raw: bytes
    data: dict[str, Any]
    tasks: tuple[Task, ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def package(self) -> str:
        return self.data["package"]

    @property
    def dag_id(self) -> str:
        return self.data["dag_id"]

    @property
    def images(self) -> list[str]:
        return sorted({t.fields["image"] for t in self.tasks})
