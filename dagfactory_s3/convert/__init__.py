"""``airflow-dag-publisher convert``: hand-written KubernetesPodOperator DAGs in, manifests out.

The Airflow side runs only in a subprocess (:mod:`.load`, with the Airflow 2 compatibility layer of
:mod:`.compat`): it loads each file the way Airflow does and describes every DAG and task as plain
JSON. :mod:`.mapper` (no Airflow) turns a description into a manifest or refusals, and
:mod:`.fidelity` (no Airflow) compares the description of the original with the description of the
converted stub loaded by the real factory. docs/migration.md is the user's guide.
"""

from __future__ import annotations

__all__: list[str] = []
