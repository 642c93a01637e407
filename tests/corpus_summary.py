"""The numbers docs/benchmarks.md reports for `convert` over tests/corpus/convert/.

    airflow-dag-publisher convert --dag-folder tests/corpus/convert --package-name corpus \\
        --policy tests/convert_cases/corpus_policy.json --out-dir /tmp/corpus --output json > corpus.json
    python tests/corpus_summary.py corpus.json

tests/test_convert.py runs the same conversion and checks the target with :func:`summary`.
"""

from __future__ import annotations

import collections
import json
import re
import sys
from typing import Any

POD_ONLY = {"KubernetesPodOperator", "EmptyOperator"}
CONFLICT = "another DAG converts to"


def proven(dag: dict[str, Any]) -> bool:
    """Converted with zero differences: written, or proven but not written because another file of the
    folder defines the same DAG id (the corpus holds copies of one sample from several repositories)."""
    refusals = dag["refusals"]
    return "manifest" in dag or (
        bool(refusals) and all(CONFLICT in r for r in refusals) and not dag["differences"]
    )


def _reason(text: str) -> str:
    text = re.sub(r"^DAG '[^']*'( task '[^']*')?: ", "", text)
    text = re.sub(r"^manifest /tasks/\d+", "manifest /tasks/N", text)
    return re.sub(r"'[^']*'", "'…'", text)[:110]


def _load_error(text: str) -> str:
    text = re.sub(r" \(line \d+\)$", "", text)
    if "Variable" in text and "does not exist" in text:
        return "KeyError: a Variable read at parse time (Variable.get) does not exist"
    return text[:110]


def summary(data: dict[str, Any]) -> dict[str, Any]:
    files = data["files"]
    dags = [d for f in files for d in f["dags"]]
    pod_only = [d for d in dags if set(d["operators"]) <= POD_ONLY]
    return {
        "files": len(files),
        "load_errors": collections.Counter(_load_error(f["error"]) for f in files if f["error"]),
        "no_dag": sum(1 for f in files if not f["error"] and not f["dags"]),
        "dags": len(dags),
        "written": sum(1 for d in dags if "manifest" in d),
        "proven": sum(1 for d in dags if proven(d)),
        "refused": collections.Counter(_reason(d["refusals"][0]) for d in dags if not proven(d)),
        "pod_only": len(pod_only),
        "pod_only_proven": sum(1 for d in pod_only if proven(d)),
    }


def main(path: str) -> None:
    with open(path, "rb") as f:
        s = summary(json.load(f))
    share = 100 * s["pod_only_proven"] / max(1, s["pod_only"])
    print(f"files {s['files']}: {sum(s['load_errors'].values())} do not load, {s['no_dag']} without a DAG")
    print(
        f"DAGs {s['dags']}: converted with zero differences {s['proven']} (written {s['written']}), "
        f"refused {sum(s['refused'].values())}"
    )
    print(
        f"KubernetesPodOperator (+EmptyOperator) only: {s['pod_only_proven']} of {s['pod_only']} ({share:.0f} %)"
    )
    for reason, n in s["refused"].most_common():
        print(f"  refused {n}: {reason}")
    for reason, n in s["load_errors"].most_common():
        print(f"  does not load {n}: {reason}")


if __name__ == "__main__":
    main(sys.argv[1])
