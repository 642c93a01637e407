"""The bad-input corpus: manifests that must be refused, each with the problem it must report.

Shared by the manifest, CLI, publisher and sidecar tests. A case is (id, file bytes, pointer, text):
the report must contain a line ``<file>: <pointer>: ...<text>...``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

PACKAGE = "pipeline_processing"

GOOD: dict[str, Any] = {
    "schema_version": 1,
    "package": PACKAGE,
    "dag_id": "pipeline_processing_nightly",
    "schedule": "0 3 * * *",
    "start_date": "2024-01-01",
    "tasks": [
        {"task_id": "extract", "image": "registry.example.com/pp:1.2.3", "command": ["pp", "extract"]},
        {"task_id": "load", "image": "registry.example.com/pp:1.2.3", "depends_on": ["extract"]},
    ],
}


def _edit(path: str, value: Any = None, *, delete: bool = False) -> bytes:
    doc = copy.deepcopy(GOOD)
    *parents, last = path.split("/")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        last = int(last)  # type: ignore[assignment]
    if delete:
        del node[last]
    else:
        node[last] = value
    return json.dumps(doc).encode()


def _job(**fields: Any) -> bytes:
    doc = {k: v for k, v in GOOD.items() if k != "tasks"}
    doc["job"] = {"name": "run", "image": "registry.example.com/pp:1.2.3", **fields}
    return json.dumps(doc).encode()


def _nested(depth: int) -> bytes:
    doc = copy.deepcopy(GOOD)
    inner: Any = {}
    node = inner
    for _ in range(depth):
        node["nodeAffinity"] = {}
        node = node["nodeAffinity"]
    doc["tasks"][0]["affinity"] = {"nodeAffinity": inner}
    return json.dumps(doc).encode()


CASES: list[tuple[str, bytes, str, str]] = [
    # -- not JSON at all
    ("empty-file", b"", "/", "invalid JSON at line 1 column 1"),
    ("malformed-json", b'{"schema_version": 1,', "/", "invalid JSON at line 1"),
    ("trailing-comma", b'{"schema_version": 1,}', "/", "invalid JSON"),
    ("not-an-object", b"[1, 2, 3]", "/", "expected object, got array"),
    (
        "nan-literal",
        json.dumps(GOOD).replace('"schema_version": 1', '"schema_version": NaN').encode(),
        "/",
        "NaN is not valid JSON",
    ),
    (
        "non-utf8",
        json.dumps(GOOD).replace("nightly", "nightl\udcff", 1).encode("utf-8", "surrogateescape"),
        "/",
        "not UTF-8",
    ),
    ("utf8-bom", b"\xef\xbb\xbf" + json.dumps(GOOD).encode(), "/", "byte-order mark"),
    (
        "duplicate-key",
        json.dumps(GOOD)
        .replace('"schedule": "0 3 * * *"', '"schedule": "0 3 * * *", "schedule": null')
        .encode(),
        "/",
        "duplicate key 'schedule'",
    ),
    ("huge", _edit("description", "x" * 300_000), "/", "larger than 262144 bytes"),
    ("deeply-nested", _nested(40), "/", "nested deeper than 32 levels"),
    # -- schema: required fields, types, unknown keys
    (
        "missing-schema-version",
        _edit("schema_version", delete=True),
        "/schema_version",
        "required field 'schema_version' is missing",
    ),
    ("wrong-schema-version", _edit("schema_version", 2), "/schema_version", "must be 1, got 2"),
    ("missing-package", _edit("package", delete=True), "/package", "required field 'package' is missing"),
    (
        "missing-start-date",
        _edit("start_date", delete=True),
        "/start_date",
        "required field 'start_date' is missing",
    ),
    ("no-tasks-no-job", _edit("tasks", delete=True), "/", "either 'tasks'"),
    ("empty-task-list", _edit("tasks", []), "/tasks", "should be non-empty"),
    (
        "unknown-top-level-key",
        _edit("schedule_interval", "@daily"),
        "/schedule_interval",
        "unknown field 'schedule_interval'",
    ),
    ("unknown-task-key-typo", _edit("tasks/0/imagee", "x:1"), "/tasks/0/imagee", "did you mean 'image'"),
    ("unknown-job-key", _job(cmd=["x"]), "/job/cmd", "unknown field 'cmd'"),
    ("wrong-type-retries", _edit("tasks/0/retries", "3"), "/tasks/0/retries", "expected integer, got string"),
    ("wrong-type-catchup", _edit("catchup", "yes"), "/catchup", "expected boolean, got string"),
    (
        "wrong-type-command",
        _edit("tasks/0/command", "pp extract"),
        "/tasks/0/command",
        "expected array, got string",
    ),
    ("negative-retries", _edit("tasks/0/retries", -1), "/tasks/0/retries", "less than the minimum of 0"),
    (
        "bad-pull-policy",
        _edit("tasks/0/image_pull_policy", "Sometimes"),
        "/tasks/0/image_pull_policy",
        "is not one of",
    ),
    (
        "bad-on-finish-action",
        _edit("tasks/0/on_finish_action", "explode"),
        "/tasks/0/on_finish_action",
        "is not one of",
    ),
    (
        "bad-env-ref",
        _edit("tasks/0/env", {"TOKEN": {"secret": {"name": "s"}}}),
        "/tasks/0/env/TOKEN/secret/key",
        "required field 'key' is missing",
    ),
    # -- naming and ownership
    ("uppercase-dag-id", _edit("dag_id", "Pipeline_processing_x"), "/dag_id", "is not valid"),
    (
        "foreign-package-prefix",
        _edit("dag_id", "reporting_seeder_nightly"),
        "/dag_id",
        "must be 'pipeline_processing_<name>'",
    ),
    (
        "dag-id-is-only-prefix",
        _edit("dag_id", "pipeline_processing_"),
        "/dag_id",
        "must be 'pipeline_processing_<name>'",
    ),
    ("path-like-dag-id", _edit("dag_id", "pipeline_processing_../../etc"), "/dag_id", "is not valid"),
    ("path-like-package", _edit("package", "../reporting"), "/package", "is not valid"),
    ("path-like-task-id", _edit("tasks/0/task_id", "a/b"), "/tasks/0/task_id", "is not valid"),
    ("dag-id-trailing-newline", _edit("dag_id", "pipeline_processing_x\n"), "/dag_id", "is not valid"),
    (
        "namespace-trailing-newline",
        _edit("tasks/0/namespace", "etl-jobs\n"),
        "/tasks/0/namespace",
        "is not valid",
    ),
    ("dag-id-too-long", _edit("dag_id", "pipeline_processing_" + "x" * 60), "/dag_id", "at most 63 allowed"),
    (
        "duplicate-task-id",
        _edit("tasks/1/task_id", "extract"),
        "/tasks/1/task_id",
        "task_id 'extract' is already used at /tasks/0",
    ),
    # -- graph
    (
        "unknown-dependency",
        _edit("tasks/1/depends_on", ["transform"]),
        "/tasks/1/depends_on/0",
        "depends on unknown task 'transform'",
    ),
    (
        "self-dependency",
        _edit("tasks/0/depends_on", ["extract"]),
        "/tasks/0/depends_on/0",
        "cannot depend on itself",
    ),
    (
        "cycle",
        _edit("tasks/0/depends_on", ["load"]),
        "/tasks",
        "dependency cycle: extract -> load -> extract",
    ),
    # -- schedule and dates
    ("bad-cron-fields", _edit("schedule", "0 3 * *"), "/schedule", "must have 5 fields"),
    ("bad-cron-range", _edit("schedule", "61 3 * * *"), "/schedule", "minute 61 is out of range 0-59"),
    ("bad-cron-name", _edit("schedule", "0 3 * foo *"), "/schedule", "month 'foo' is not a number or a name"),
    ("unknown-preset", _edit("schedule", "@fortnightly"), "/schedule", "unknown preset '@fortnightly'"),
    ("relative-start-date", _edit("start_date", "days_ago(1)"), "/start_date", "is not valid"),
    ("impossible-date", _edit("start_date", "2024-02-30"), "/start_date", "is not a valid date"),
    ("naive-datetime", _edit("start_date", "2024-01-01T00:00:00"), "/start_date", "is not valid"),
    ("end-before-start", _edit("end_date", "2023-01-01"), "/end_date", "end_date must be after start_date"),
    ("bad-duration", _edit("dagrun_timeout", "2 hours"), "/dagrun_timeout", "is not valid"),
    (
        "zero-duration",
        _edit("tasks/0/execution_timeout", "0s"),
        "/tasks/0/execution_timeout",
        "greater than zero",
    ),
    # -- images and Kubernetes fields
    (
        "latest-tag",
        _edit("tasks/0/image", "registry.example.com/pp:latest"),
        "/tasks/0/image",
        "image tag 'latest'",
    ),
    ("missing-tag", _edit("tasks/0/image", "registry.example.com/pp"), "/tasks/0/image", "has no tag"),
    (
        "registry-port-no-tag",
        _edit("tasks/0/image", "registry.example.com:5000/pp"),
        "/tasks/0/image",
        "has no tag",
    ),
    (
        "bad-digest",
        _edit("tasks/0/image", "registry.example.com/pp@sha256:abc"),
        "/tasks/0/image",
        "sha256:<64 hex digits>",
    ),
    ("no-image", _edit("tasks/0/image", delete=True), "/tasks/0", "no image"),
    (
        "bad-quantity",
        _edit("tasks/0/resources", {"requests": {"memory": "1GB"}}),
        "/tasks/0/resources/requests/memory",
        "is not valid",
    ),
    (
        "unknown-resource",
        _edit("tasks/0/resources", {"requests": {"gpu": "1"}}),
        "/tasks/0/resources/requests/gpu",
        "unknown field 'gpu'",
    ),
    (
        "bad-env-name",
        _edit("tasks/0/env", {"1BAD=NAME": "x"}),
        "/tasks/0/env/1BAD=NAME",
        "environment variable name",
    ),
    ("bad-label-value", _edit("tasks/0/labels", {"team": "not ok!"}), "/tasks/0/labels/team", "label value"),
    (
        "reserved-label",
        _edit("tasks/0/labels", {"dagfactory-s3/package": "other"}),
        "/tasks/0/labels/dagfactory-s3~1package",
        "reserved",
    ),
    ("bad-namespace", _edit("tasks/0/namespace", "ETL_jobs"), "/tasks/0/namespace", "is not valid"),
    (
        "bad-toleration",
        _edit("tasks/0/tolerations", [{"effect": "Sometimes"}]),
        "/tasks/0/tolerations/0/effect",
        "is not one of",
    ),
    (
        "bad-affinity-key",
        _edit("tasks/0/affinity", {"nodeAfinity": {}}),
        "/tasks/0/affinity/nodeAfinity",
        "did you mean 'nodeAffinity'",
    ),
    (
        "bad-pull-secret",
        _edit("tasks/0/image_pull_secrets", ["Bad Secret"]),
        "/tasks/0/image_pull_secrets/0",
        "is not valid",
    ),
    # -- well-formed values too large for Python's types (these crashed parse with OverflowError)
    (
        "overflowing-duration",
        _edit("tasks/0/execution_timeout", "99999999999999d"),
        "/tasks/0/execution_timeout",
        "is too long (at most 999999999 days)",
    ),
    (
        "duration-of-5000-digits",
        _edit("dagrun_timeout", "9" * 5000 + "s"),
        "/dagrun_timeout",
        "is too long",
    ),
    (
        "year-one-east-of-utc",
        _edit("start_date", "0001-01-01T00:00:00+01:00"),
        "/start_date",
        "in UTC it falls outside the years 1-9999",
    ),
    (
        "year-9999-west-of-utc",
        _edit("end_date", "9999-12-31T23:00:00-02:00"),
        "/end_date",
        "in UTC it falls outside the years 1-9999",
    ),
    (
        "infinite-number",
        _edit("tasks/0/retries", 3).replace(b": 3", b": 1e400"),
        "/",
        "1e400 is out of range",
    ),
]
