"""Run in a fresh interpreter: parse a dags folder the way the dag-processor does and print JSON.

Usage: python airflow_probe.py <dags_folder> <out.json>
writes {"hashes": {dag_id: hash}, "import_errors": {file: text}, "data": {dag_id: serialized}}
Each file is parsed alone as airflow/dag_processing/processor.py does in the installed minor
(BundleDagBag where it exists, else DagBag with bundle_path), and each DAG is hashed with
SerializedDagModel.hash after the JSON trip from the parsing child to the manager, the value Airflow
stores as serialized_dag.dag_hash.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path


def _bag(path: Path, folder: str):
    """The DagBag the installed minor's processor builds for one file (feature-detected, never by version)."""
    try:
        from airflow.dag_processing.dagbag import BundleDagBag
    except ImportError:
        BundleDagBag = None
    if BundleDagBag is not None:
        return BundleDagBag(
            dag_folder=str(path), bundle_path=Path(folder), bundle_name="dags-folder", load_op_links=False
        )
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0, 3.1
        from airflow.models.dagbag import DagBag
    kwargs = {"include_examples": False} if "include_examples" in inspect.signature(DagBag).parameters else {}
    return DagBag(dag_folder=str(path), bundle_path=Path(folder), load_op_links=False, **kwargs)


def main(folder: str, out: str) -> None:
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.serialization import serialized_objects

    serialization = getattr(serialized_objects, "DagSerialization", None) or serialized_objects.SerializedDAG
    hashes, errors, serialized = {}, {}, {}
    for path in sorted(Path(folder).rglob("*.py")):
        bag = _bag(path, folder)
        errors.update(bag.import_errors)
        for dag_id, dag in bag.dags.items():
            data = serialized_objects.LazyDeserializedDAG(data=serialization.to_dict(dag)).data
            # The parsing child sends this to the manager as JSON, which hashes what arrives: tuples
            # become lists, which Airflow 3.0's hash sorts differently.
            data = json.loads(json.dumps(data))
            hashes[dag_id] = SerializedDagModel.hash(data)
            serialized[dag_id] = data
    result = {"hashes": hashes, "import_errors": errors, "data": serialized}
    Path(out).write_text(json.dumps(result, sort_keys=True, default=str))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
