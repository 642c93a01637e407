"""Run in a fresh interpreter: parse a dags folder the way the dag-processor does and print JSON.

Usage: python airflow_probe.py <dags_folder> <out.json>
writes {"hashes": {dag_id: hash}, "import_errors": {file: text}, "data": {dag_id: serialized}}
Each file is parsed alone with BundleDagBag, as airflow/dag_processing/processor.py does, and each
DAG is hashed with SerializedDagModel.hash, the value Airflow stores as serialized_dag.dag_hash.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(folder: str, out: str) -> None:
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.serialization.serialized_objects import DagSerialization, LazyDeserializedDAG

    hashes, errors, serialized = {}, {}, {}
    for path in sorted(Path(folder).rglob("*.py")):
        bag = BundleDagBag(
            dag_folder=str(path), bundle_path=Path(folder), bundle_name="dags-folder", load_op_links=False
        )
        errors.update(bag.import_errors)
        for dag_id, dag in bag.dags.items():
            data = LazyDeserializedDAG(data=DagSerialization.to_dict(dag)).data
            hashes[dag_id] = SerializedDagModel.hash(data)
            serialized[dag_id] = data
    result = {"hashes": hashes, "import_errors": errors, "data": serialized}
    Path(out).write_text(json.dumps(result, sort_keys=True, default=str))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
