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
    (
        "bad-cron-range",
        _edit("schedule", "61 3 * * *"),
        "/schedule",
        "minute field '61' is not valid (out of range)",
    ),
    ("bad-cron-name", _edit("schedule", "0 3 * foo *"), "/schedule", "month field 'foo' is not valid"),
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


def _t0(field: str, value: Any) -> bytes:
    """GOOD with the first task's ``field`` set to ``value``."""
    return _edit(f"tasks/0/{field}", value)


def _defaults(**fields: Any) -> bytes:
    """GOOD with ``task_defaults`` (and, via ``task0``, fields of the first task)."""
    doc = copy.deepcopy(GOOD)
    doc["tasks"][0].update(fields.pop("task0", {}))
    doc["task_defaults"] = fields
    return json.dumps(doc).encode()


def _res(requests: dict[str, str] | None = None, limits: dict[str, str] | None = None) -> bytes:
    resources = {k: v for k, v in (("requests", requests), ("limits", limits)) if v is not None}
    return _t0("resources", resources)


def _tol(**toleration: Any) -> bytes:
    return _t0("tolerations", [toleration])


def _node(expression: dict[str, Any]) -> bytes:
    term = {"matchExpressions": [expression]}
    return _t0(
        "affinity",
        {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}},
    )


def _pod(term: dict[str, Any], kind: str = "podAffinity") -> bytes:
    return _t0("affinity", {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [term]}})


def _raw(text: str) -> bytes:
    """GOOD with ``"description": <text>``, written raw so JSON escapes (\\u0000, \\ud800) stay as given."""
    return json.dumps(GOOD)[:-1].encode() + b', "description": "' + text.encode() + b'"}'


_SELECTOR = {"matchLabels": {"app": "pp"}}
_SHA = "a" * 64
_T0 = "/tasks/0"
_REQ, _LIM = f"{_T0}/resources/requests", f"{_T0}/resources/limits"
_GPU = "nvidia.com~1gpu"
_REQUIRED = f"{_T0}/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms"
_EXPR = f"{_REQUIRED}/0/matchExpressions/0"
_POD_TERM = f"{_T0}/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/0"

# Accepted by the old checks, refused by the Kubernetes API server, the kubelet or Airflow (issue 10).
# Each is refused by dagfactory_s3.k8s / schedule with the pointer of the field as written.
API_SERVER_CASES: list[tuple[str, bytes, str, str]] = [
    # -- resource quantities (grammar, sign, range, requests <= limits, extended resources)
    ("q-negative-cpu", _res({"cpu": "-1"}), f"{_REQ}/cpu", "must be greater than or equal to 0"),
    (
        "q-negative-memory-limit",
        _res(limits={"memory": "-512Mi"}),
        f"{_LIM}/memory",
        "greater than or equal to 0",
    ),
    ("q-two-dots", _res({"cpu": "1.2.3"}), f"{_REQ}/cpu", "is not valid"),
    ("q-lone-dot", _res({"cpu": "."}), f"{_REQ}/cpu", "is not valid"),
    ("q-exponent-without-digits", _res({"memory": "1e"}), f"{_REQ}/memory", "is not valid"),
    ("q-lowercase-binary-suffix", _res({"memory": "1gi"}), f"{_REQ}/memory", "is not valid"),
    ("q-beyond-int64", _res({"memory": "1e30"}), f"{_REQ}/memory", "larger than Kubernetes can hold"),
    ("q-huge-exponent", _res({"memory": "1e999999999"}), f"{_REQ}/memory", "out of range"),
    (
        "q-huge-exa",
        _res(limits={"ephemeral-storage": "9000000Ei"}),
        f"{_LIM}/ephemeral-storage",
        "larger than",
    ),
    (
        "q-limit-below-request",
        _res({"cpu": "2"}, {"cpu": "1500m"}),
        f"{_REQ}/cpu",
        "must be less than or equal to its limit '1500m'",
    ),
    (
        "q-limit-below-request-units",
        _res({"memory": "1Gi"}, {"memory": "1G"}),
        f"{_REQ}/memory",
        "must be less than or equal to its limit",
    ),
    (
        "q-limit-below-default-request",
        _defaults(
            resources={"requests": {"memory": "2Gi"}}, task0={"resources": {"limits": {"memory": "1Gi"}}}
        ),
        "/task_defaults/resources/requests/memory",
        "must be less than or equal to its limit '1Gi'",
    ),
    ("gpu-fraction", _res(limits={"nvidia.com/gpu": "0.5"}), f"{_LIM}/{_GPU}", "must be a whole number"),
    ("gpu-milli", _res(limits={"nvidia.com/gpu": "1500m"}), f"{_LIM}/{_GPU}", "must be a whole number"),
    (
        "gpu-request-below-limit",
        _res({"nvidia.com/gpu": "1"}, {"nvidia.com/gpu": "2"}),
        f"{_REQ}/{_GPU}",
        "must equal its limit '2'",
    ),
    ("gpu-request-without-limit", _res({"nvidia.com/gpu": "1"}), f"{_LIM}/{_GPU}", "its limit must be set"),
    (
        "gpu-request-unequal-after-defaults",
        _defaults(
            resources={"limits": {"nvidia.com/gpu": "2"}},
            task0={"resources": {"requests": {"nvidia.com/gpu": "1"}}},
        ),
        f"{_REQ}/{_GPU}",
        "must equal its limit '2'",
    ),
    # -- label, annotation and node-selector keys and values; generated label values
    (
        "label-value-trailing-underscore",
        _t0("labels", {"team": "data_"}),
        f"{_T0}/labels/team",
        "label value 'data_' is invalid",
    ),
    ("label-value-leading-dash", _t0("labels", {"team": "-data"}), f"{_T0}/labels/team", "label value"),
    ("label-value-64-chars", _t0("labels", {"team": "a" * 64}), f"{_T0}/labels/team", "label value"),
    (
        "label-key-uppercase-prefix",
        _t0("labels", {"Example.com/team": "a"}),
        f"{_T0}/labels/Example.com~1team",
        "must be a lowercase DNS subdomain",
    ),
    ("label-key-empty-prefix", _t0("labels", {"/team": "a"}), f"{_T0}/labels/~1team", "must not be empty"),
    (
        "label-key-two-slashes",
        _t0("labels", {"a.com/b/c": "a"}),
        f"{_T0}/labels/a.com~1b~1c",
        "at most one '/'",
    ),
    (
        "label-key-prefix-double-dot",
        _t0("labels", {"a..com/team": "a"}),
        f"{_T0}/labels/a..com~1team",
        "DNS subdomain",
    ),
    (
        "label-key-prefix-dash-dot",
        _t0("labels", {"a-.com/team": "a"}),
        f"{_T0}/labels/a-.com~1team",
        "DNS subdomain",
    ),
    (
        "label-key-name-64-chars",
        _t0("labels", {"x" * 64: "a"}),
        f"{_T0}/labels/{'x' * 64}",
        "name part must be 1-63",
    ),
    (
        "label-key-only-prefix",
        _t0("labels", {"example.com/": "a"}),
        f"{_T0}/labels/example.com~1",
        "name part",
    ),
    ("default-label-value", _defaults(labels={"team": "x-"}), "/task_defaults/labels/team", "label value"),
    (
        "annotation-key-underscore-prefix",
        _t0("annotations", {"my_org/note": "x"}),
        f"{_T0}/annotations/my_org~1note",
        "DNS subdomain",
    ),
    (
        "annotation-key-empty-name",
        _t0("annotations", {"example.com/": "x"}),
        f"{_T0}/annotations/example.com~1",
        "name part",
    ),
    (
        "annotation-key-space",
        _t0("annotations", {"my note": "x"}),
        f"{_T0}/annotations/my note",
        "annotation key",
    ),
    (
        "node-selector-key-leading-dash",
        _t0("node_selector", {"-zone": "a"}),
        f"{_T0}/node_selector/-zone",
        "label key",
    ),
    (
        "node-selector-value-space",
        _t0("node_selector", {"zone": "us east"}),
        f"{_T0}/node_selector/zone",
        "label value",
    ),
    (
        "task-id-trailing-dash",
        _edit("tasks/1/task_id", "load-"),
        "/tasks/1/task_id",
        "dagfactory-s3/task-id label",
    ),
    (
        "task-id-trailing-underscore",
        _edit("tasks/1/task_id", "load_"),
        "/tasks/1/task_id",
        "dagfactory-s3/task-id label",
    ),
    (
        "job-name-trailing-underscore",
        _job().replace(b'"name": "run"', b'"name": "run_"'),
        "/job/name",
        "task-id label",
    ),
    (
        "dag-id-trailing-underscore",
        _edit("dag_id", "pipeline_processing_nightly_"),
        "/dag_id",
        "dag_id (a pod label value)",
    ),
    # -- Secret/ConfigMap names and keys, service accounts, pull secrets
    (
        "secret-name-double-dot",
        _t0("env", {"T": {"secret": {"name": "db..x", "key": "k"}}}),
        f"{_T0}/env/T/secret/name",
        "RFC 1123 subdomain",
    ),
    (
        "secret-name-dash-dot",
        _t0("env", {"T": {"secret": {"name": "db-.x", "key": "k"}}}),
        f"{_T0}/env/T/secret/name",
        "Secret name",
    ),
    (
        "secret-key-dotdot-prefix",
        _t0("env", {"T": {"secret": {"name": "db", "key": "..data"}}}),
        f"{_T0}/env/T/secret/key",
        "start with '..'",
    ),
    (
        "secret-key-dot",
        _t0("env", {"T": {"secret": {"name": "db", "key": "."}}}),
        f"{_T0}/env/T/secret/key",
        "must not be '.'",
    ),
    (
        "config-map-name-double-dot",
        _t0("env", {"C": {"config_map": {"name": "cfg..x", "key": "k"}}}),
        f"{_T0}/env/C/config_map/name",
        "ConfigMap name",
    ),
    (
        "config-map-key-dotdot",
        _t0("env", {"C": {"config_map": {"name": "cfg", "key": ".."}}}),
        f"{_T0}/env/C/config_map/key",
        "must not be '.'",
    ),
    (
        "service-account-double-dot",
        _t0("service_account", "sa..x"),
        f"{_T0}/service_account",
        "service account name",
    ),
    (
        "service-account-dot-dash",
        _t0("service_account", "sa.-x"),
        f"{_T0}/service_account",
        "service account name",
    ),
    (
        "default-service-account",
        _defaults(service_account="a-.b"),
        "/task_defaults/service_account",
        "service account name",
    ),
    (
        "pull-secret-double-dot",
        _t0("image_pull_secrets", ["reg..cred"]),
        f"{_T0}/image_pull_secrets/0",
        "image pull secret name",
    ),
    # -- environment variable names
    ("env-name-space", _t0("env", {"MY VAR": "x"}), f"{_T0}/env/MY VAR", "environment variable name"),
    ("env-name-empty", _t0("env", {"": "x"}), f"{_T0}/env/", "environment variable name"),
    ("env-name-non-ascii", _t0("env", {"NAMÉ": "x"}), f"{_T0}/env/NAMÉ", "environment variable name"),
    (
        "env-name-in-defaults",
        _defaults(env={"A=B": "x"}),
        "/task_defaults/env/A=B",
        "environment variable name",
    ),
    # -- tolerations
    (
        "toleration-empty-key-equal",
        _tol(operator="Equal", value="x"),
        f"{_T0}/tolerations/0/operator",
        "must be Exists when key is empty",
    ),
    (
        "toleration-empty-key-default-operator",
        _tol(effect="NoSchedule"),
        f"{_T0}/tolerations/0/operator",
        "must be Exists",
    ),
    (
        "toleration-exists-with-value",
        _tol(key="k", operator="Exists", value="v"),
        f"{_T0}/tolerations/0/value",
        "must be empty when operator is Exists",
    ),
    (
        "toleration-seconds-with-noschedule",
        _tol(key="k", operator="Exists", effect="NoSchedule", toleration_seconds=30),
        f"{_T0}/tolerations/0/effect",
        "must be NoExecute",
    ),
    (
        "toleration-seconds-without-effect",
        _tol(key="k", operator="Exists", toleration_seconds=30),
        f"{_T0}/tolerations/0/effect",
        "must be NoExecute",
    ),
    (
        "toleration-seconds-beyond-int64",
        _tol(key="k", operator="Exists", effect="NoExecute", toleration_seconds=2**63),
        f"{_T0}/tolerations/0/toleration_seconds",
        "out of range: from -2^63 to 2^63-1",
    ),
    (
        "toleration-seconds-float",
        _tol(key="k", operator="Exists", effect="NoExecute", toleration_seconds=30.0),
        f"{_T0}/tolerations/0/toleration_seconds",
        "must be an integer",
    ),
    (
        "toleration-key-space",
        _tol(key="gpu node", operator="Exists"),
        f"{_T0}/tolerations/0/key",
        "toleration key",
    ),
    (
        "toleration-value-invalid",
        _tol(key="k", value="not ok!"),
        f"{_T0}/tolerations/0/value",
        "toleration value",
    ),
    (
        "toleration-in-defaults",
        _defaults(tolerations=[{"value": "x"}]),
        "/task_defaults/tolerations/0/operator",
        "must be Exists",
    ),
    # -- affinity
    (
        "node-in-without-values",
        _node({"key": "zone", "operator": "In", "values": []}),
        f"{_EXPR}/values",
        "must be given when operator is In",
    ),
    (
        "node-notin-values-missing",
        _node({"key": "zone", "operator": "NotIn"}),
        f"{_EXPR}/values",
        "must be given",
    ),
    (
        "node-exists-with-values",
        _node({"key": "zone", "operator": "Exists", "values": ["a"]}),
        f"{_EXPR}/values",
        "must be empty when operator is Exists",
    ),
    (
        "node-gt-not-integer",
        _node({"key": "cores", "operator": "Gt", "values": ["four"]}),
        f"{_EXPR}/values/0",
        "must be an integer",
    ),
    (
        "node-lt-two-values",
        _node({"key": "cores", "operator": "Lt", "values": ["1", "2"]}),
        f"{_EXPR}/values",
        "exactly one value",
    ),
    (
        "node-unknown-operator",
        _node({"key": "zone", "operator": "Like", "values": ["a"]}),
        f"{_EXPR}/operator",
        "operator 'Like'",
    ),
    ("node-key-space", _node({"key": "my zone", "operator": "Exists"}), f"{_EXPR}/key", "node selector key"),
    (
        "node-no-terms",
        _t0(
            "affinity",
            {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}},
        ),
        _REQUIRED,
        "at least one node selector term",
    ),
    (
        "node-terms-wrong-type",
        _t0(
            "affinity",
            {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": "x"}}},
        ),
        _REQUIRED,
        "expected array",
    ),
    (
        "node-match-fields-key",
        _t0(
            "affinity",
            {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchFields": [{"key": "metadata.labels", "operator": "In", "values": ["a"]}]}
                        ]
                    }
                }
            },
        ),
        f"{_REQUIRED}/0/matchFields/0/key",
        "only supports the key 'metadata.name'",
    ),
    (
        "node-preferred-weight-zero",
        _t0(
            "affinity",
            {
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 0, "preference": {}}]
                }
            },
        ),
        f"{_T0}/affinity/nodeAffinity/preferredDuringSchedulingIgnoredDuringExecution/0/weight",
        "from 1 to 100",
    ),
    (
        "node-preferred-weight-101",
        _t0(
            "affinity",
            {
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 101, "preference": {}}]
                }
            },
        ),
        f"{_T0}/affinity/nodeAffinity/preferredDuringSchedulingIgnoredDuringExecution/0/weight",
        "from 1 to 100",
    ),
    (
        "pod-anti-weight-fraction",
        _t0(
            "affinity",
            {
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 50.5, "podAffinityTerm": {"topologyKey": "zone"}}
                    ]
                }
            },
        ),
        f"{_T0}/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/0/weight",
        "must be an integer",
    ),
    (
        "pod-empty-topology-key",
        _pod({"labelSelector": _SELECTOR, "topologyKey": ""}),
        f"{_POD_TERM}/topologyKey",
        "topologyKey is required",
    ),
    (
        "pod-missing-topology-key",
        _pod({"labelSelector": _SELECTOR}),
        f"{_POD_TERM}/topologyKey",
        "topologyKey is required",
    ),
    (
        "pod-anti-topology-key-invalid",
        _pod({"labelSelector": _SELECTOR, "topologyKey": "a/b/c"}, "podAntiAffinity"),
        f"{_T0}/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/0/topologyKey",
        "at most one '/'",
    ),
    (
        "pod-selector-in-without-values",
        _pod(
            {
                "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": []}]},
                "topologyKey": "zone",
            }
        ),
        f"{_POD_TERM}/labelSelector/matchExpressions/0/values",
        "must be given",
    ),
    (
        "pod-selector-gt",
        _pod(
            {
                "labelSelector": {"matchExpressions": [{"key": "app", "operator": "Gt", "values": ["1"]}]},
                "topologyKey": "zone",
            }
        ),
        f"{_POD_TERM}/labelSelector/matchExpressions/0/operator",
        "operator 'Gt'",
    ),
    (
        "pod-selector-label-value",
        _pod({"labelSelector": {"matchLabels": {"app": "pp_"}}, "topologyKey": "zone"}),
        f"{_POD_TERM}/labelSelector/matchLabels/app",
        "label value",
    ),
    (
        "pod-namespace-invalid",
        _pod({"namespaces": ["Bad_NS"], "topologyKey": "zone"}),
        f"{_POD_TERM}/namespaces/0",
        "namespace 'Bad_NS'",
    ),
    (
        "pod-match-and-mismatch-same-key",
        _pod(
            {
                "labelSelector": _SELECTOR,
                "topologyKey": "zone",
                "matchLabelKeys": ["app"],
                "mismatchLabelKeys": ["app"],
            }
        ),
        f"{_POD_TERM}/mismatchLabelKeys",
        "'app' is also in matchLabelKeys",
    ),
    ("q-lowercase-kibi", _res(limits={"memory": "512ki"}), f"{_LIM}/memory", "is not valid"),
    # -- image references (OCI / distribution reference grammar)
    (
        "image-uppercase-repository",
        _t0("image", "registry.example.com/PP:1.2.3"),
        f"{_T0}/image",
        "must be lowercase",
    ),
    ("image-uppercase-single-name", _t0("image", "Ubuntu:22.04"), f"{_T0}/image", "must be lowercase"),
    ("image-empty-tag", _t0("image", "registry.example.com/pp:"), f"{_T0}/image", "empty tag"),
    (
        "image-tag-129-chars",
        _t0("image", "registry.example.com/pp:" + "t" * 129),
        f"{_T0}/image",
        "at most 128 allowed",
    ),
    ("image-double-colon", _t0("image", "registry.example.com/pp::1"), f"{_T0}/image", "contains '::'"),
    (
        "image-tag-leading-dot",
        _t0("image", "registry.example.com/pp:.1"),
        f"{_T0}/image",
        "not a valid image reference",
    ),
    (
        "image-double-slash",
        _t0("image", "registry.example.com//pp:1"),
        f"{_T0}/image",
        "not a valid image reference",
    ),
    (
        "image-digest-uppercase-hex",
        _t0("image", "registry.example.com/pp@sha256:" + "A" * 64),
        f"{_T0}/image",
        "sha256:<64 hex digits>",
    ),
    (
        "image-digest-unknown-algorithm",
        _t0("image", "registry.example.com/pp@md5:" + "a" * 32),
        f"{_T0}/image",
        "sha256:<64 hex digits>",
    ),
    ("image-digest-empty", _t0("image", "registry.example.com/pp:1@"), f"{_T0}/image", "empty tag or digest"),
    ("image-inner-space", _t0("image", "registry.example.com/p p:1"), f"{_T0}/image", "contains whitespace"),
    (
        "image-zero-width-space",
        _t0("image", "registry.example.com/pp:1.2.3\u200b"),
        f"{_T0}/image",
        "invisible or bidi character U+200B",
    ),
    (
        "image-bidi-override",
        _t0("image", "registry.example.com/\u202epp:1.2.3"),
        f"{_T0}/image",
        "invisible or bidi character U+202E",
    ),
    (
        "image-mutable-allowed-still-checked",
        _t0("image", "Registry.example.com/PP").replace(
            b'"command"', b'"allow_mutable_image": true, "command"'
        ),
        f"{_T0}/image",
        "must be lowercase",
    ),
    (
        "image-in-defaults",
        _defaults(image="pp:1.2.3:4"),
        "/task_defaults/image",
        "not a valid image reference",
    ),
    (
        "image-latest-from-defaults",
        _defaults(image="registry.example.com/pp:latest", task0={}).replace(
            b'"image": "registry.example.com/pp:1.2.3", "depends_on"', b'"depends_on"'
        ),
        "/task_defaults/image",
        "image tag 'latest'",
    ),
    # -- string hygiene: NUL and lone surrogates anywhere, invisible characters in identifiers
    ("nul-in-image", _t0("image", "registry.example.com/pp:1.2.3\0"), f"{_T0}/image", "U+0000 (NUL)"),
    ("nul-in-command", _t0("command", ["pp", "a\0b"]), f"{_T0}/command/1", "U+0000 (NUL)"),
    ("nul-in-argument", _t0("arguments", ["--date", "\0"]), f"{_T0}/arguments/1", "U+0000"),
    ("nul-in-env-value", _t0("env", {"A": "x\0"}), f"{_T0}/env/A", "U+0000"),
    ("nul-in-doc-md", _raw("\\u0000"), "/description", "U+0000"),
    ("lone-high-surrogate", _raw("\\ud800"), "/description", "U+D800 (a lone surrogate)"),
    (
        "lone-low-surrogate-in-label",
        _t0("labels", {"team": "\udc80"}),
        f"{_T0}/labels/team",
        "a lone surrogate",
    ),
    ("lone-surrogate-in-key", _t0("env", {"\udfff": "x"}), f"{_T0}/env", "contains U+DFFF"),
    ("lone-surrogate-in-argument", _t0("arguments", ["\ud83d"]), f"{_T0}/arguments/0", "a lone surrogate"),
    ("bidi-in-tag", _edit("tags", ["etl\u202e"]), "/tags/0", "invisible or bidi character U+202E"),
    ("zero-width-joiner-in-owner", _edit("owner", "ops\u200d"), "/owner", "U+200D"),
    ("newline-in-tag", _edit("tags", ["a\nb"]), "/tags/0", "U+000A"),
    # -- integers where Airflow and Kubernetes need integers
    ("retries-float", _t0("retries", 3.0), f"{_T0}/retries", "write 3, not 3.0"),
    ("max-active-runs-float", _edit("max_active_runs", 2.0), "/max_active_runs", "must be an integer"),
    (
        "max-active-tasks-exponent",
        _edit("max_active_tasks", 4).replace(b'"max_active_tasks": 4', b'"max_active_tasks": 1e1'),
        "/max_active_tasks",
        "must be an integer",
    ),
    ("schema-version-float", _edit("schema_version", 1.0), "/schema_version", "must be an integer"),
    ("retries-boolean", _t0("retries", True), f"{_T0}/retries", "expected integer, got boolean"),
    # -- bounded durations, also summed with task_defaults
    (
        "execution-timeout-over-bound",
        _t0("execution_timeout", "3651d"),
        f"{_T0}/execution_timeout",
        "longer than 3650 days",
    ),
    (
        "dagrun-timeout-over-bound",
        _edit("dagrun_timeout", "87649h"),
        "/dagrun_timeout",
        "longer than 3650 days",
    ),
    (
        "retry-delay-in-defaults-over-bound",
        _defaults(retry_delay="4000d"),
        "/task_defaults/retry_delay",
        "longer than 3650 days",
    ),
    (
        "startup-timeout-zero-in-defaults",
        _defaults(startup_timeout="0m"),
        "/task_defaults/startup_timeout",
        "greater than zero",
    ),
    ("task-total-with-defaults", _defaults(retries=20, execution_timeout="200d"), "/tasks/0", "add up to"),
    (
        "task-total-retries-times-delay",
        _defaults(retry_delay="200d", task0={"retries": 20}),
        "/tasks/0",
        "add up to 4000 days",
    ),
    # -- dates and crons Airflow cannot run
    (
        "start-date-before-year-one-minutes",
        _edit("start_date", "0001-01-01T00:30:00+00:31"),
        "/start_date",
        "outside the years 1-9999",
    ),
    ("cron-february-30", _edit("schedule", "0 0 30 2 *"), "/schedule", "never fires"),
    ("cron-april-31", _edit("schedule", "0 0 31 4 *"), "/schedule", "never fires"),
    ("cron-31st-of-short-months", _edit("schedule", "15 6 31 2,4,6,9,11 *"), "/schedule", "never fires"),
    ("cron-step-zero", _edit("schedule", "*/0 * * * *"), "/schedule", "minute field '*/0' is not valid"),
    (
        "cron-weekday-8",
        _edit("schedule", "0 0 * * 8"),
        "/schedule",
        "day of week field '8' is not valid (out of range)",
    ),
    ("cron-hour-24", _edit("schedule", "0 24 * * *"), "/schedule", "hour field '24' is not valid"),
    ("cron-hashed", _edit("schedule", "H 3 * * *"), "/schedule", "minute field 'H' is not valid"),
    ("cron-reboot-preset", _edit("schedule", "@reboot"), "/schedule", "unknown preset '@reboot'"),
    ("cron-fifth-sunday-of-new-year", _edit("schedule", "0 0 1 1 7#5"), "/schedule", "never fires"),
    ("cron-six-fields", _edit("schedule", "0 0 1 1 * 2030"), "/schedule", "must have 5 fields"),
]

CASES += API_SERVER_CASES

# Near misses: at the edge of each rule but valid, so they must pass the manifest checks and their
# rendered pods must pass the same rules (tests/test_k8s.py). A rule that refuses these is too strict.
NEAR_MISSES: list[tuple[str, bytes]] = [
    (
        "quantities",
        _res(
            {"cpu": "0.5", "memory": "1e9", "ephemeral-storage": "+1Gi"},
            {"cpu": "500m", "memory": "1G", "ephemeral-storage": "2Gi"},
        ),
    ),
    ("gpu-equal", _res({"nvidia.com/gpu": "1", "cpu": ".5"}, {"nvidia.com/gpu": "1000m", "cpu": "1."})),
    ("gpu-limit-only", _res(limits={"nvidia.com/gpu": "2"})),
    ("zero-quantities", _res({"cpu": "0", "memory": "-0"})),
    ("labels", _t0("labels", {"example.com/team": "", "a.b-c_d": "Z.9-_x", "x" * 63: "y" * 63})),
    ("annotations", _t0("annotations", {"Example.com/Note": "any text, even ünïcode\nor newlines", "k": ""})),
    (
        "node-selector",
        _t0("node_selector", {"kubernetes.io/arch": "amd64", "node.example.com/pool": "batch"}),
    ),
    (
        "names",
        _t0(
            "env",
            {
                "my.var-1": {"secret": {"name": "db.prod-1", "key": "a.b_c-D"}},
                "_X": {"config_map": {"name": "c", "key": ".hidden"}},
            },
        ),
    ),
    ("service-account", _t0("service_account", "pp.reader-1")),
    (
        "tolerations",
        _t0(
            "tolerations",
            [
                {"operator": "Exists"},
                {"key": "gpu", "operator": "Exists", "effect": "NoExecute", "toleration_seconds": 0},
                {"key": "example.com/dedicated", "value": "batch", "effect": "NoSchedule"},
                {"key": "k", "operator": "Equal", "value": ""},
            ],
        ),
    ),
    (
        "affinity",
        _t0(
            "affinity",
            {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "cores", "operator": "Gt", "values": ["-4"]},
                                    {"key": "zone", "operator": "Exists"},
                                ]
                            },
                            {
                                "matchFields": [
                                    {"key": "metadata.name", "operator": "NotIn", "values": ["node-1"]}
                                ]
                            },
                        ]
                    },
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 100,
                            "preference": {
                                "matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]
                            },
                        }
                    ],
                },
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 1,
                            "podAffinityTerm": {
                                "labelSelector": {
                                    "matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]
                                },
                                "topologyKey": "kubernetes.io/hostname",
                                "namespaces": ["etl-jobs"],
                            },
                        }
                    ]
                },
            },
        ),
    ),
    ("image-port-and-digest", _t0("image", "localhost:5000/a/b__c-d.e:V1_x.2@sha256:" + _SHA)),
    ("image-ipv6-registry", _t0("image", "[fd00::1]:5000/pp:1")),
    ("image-sha512", _t0("image", "registry.example.com/pp@sha512:" + "b" * 128)),
    ("image-tag-128-chars", _t0("image", "registry.example.com/pp:" + "t" * 128)),
    ("image-uppercase-registry", _t0("image", "Registry.Example.com/pp:1")),
    (
        "text-fields-unicode",
        _t0("command", ["echo", "ünïcode ✓ \u200b bidi \u202e is text here", "tab\there"]),
    ),
    (
        "durations-at-bound",
        _defaults(retries=9, execution_timeout="364d", startup_timeout="1h", retry_delay="1d"),
    ),
    ("crons", _edit("schedule", "0 0 29 2 *")),
    ("cron-last-day", _edit("schedule", "30 23 L * *")),
    ("cron-names", _edit("schedule", "0 6 * jan-mar mon-fri")),
    ("preset", _edit("schedule", "@quarterly")),
]


def _mapped(expand: dict[str, Any], **fields: Any) -> bytes:
    """GOOD with the second task mapped (and ``fields`` on it; ``task0`` for the first task's)."""
    doc = copy.deepcopy(GOOD)
    doc["tasks"][0].update(fields.pop("task0", {}))
    doc["tasks"][1].update(fields, expand=expand)
    return json.dumps(doc).encode()


_VOL = [{"name": "scratch", "empty_dir": {}}]
_INIT = {"name": "setup", "image": "registry.example.com/tools:1.0.0"}
_T1 = "/tasks/1"

# Task-level fields of manifest v1 (issue 11): what Kubernetes, the kubelet, Airflow or the platform
# policy (built-in default) would refuse, each at the pointer of the field as written.
TASK_FIELD_CASES: list[tuple[str, bytes, str, str]] = [
    # -- volumes and mounts
    (
        "mount-without-volume",
        _t0("volume_mounts", [{"name": "data", "mount_path": "/data"}]),
        f"{_T0}/volume_mounts/0/name",
        "mounts volume 'data', not in volumes (none declared)",
    ),
    (
        "init-mount-without-volume",
        _defaults(
            volumes=_VOL,
            task0={"init_containers": [{**_INIT, "volume_mounts": [{"name": "cfg", "mount_path": "/c"}]}]},
        ),
        f"{_T0}/init_containers/0/volume_mounts/0/name",
        "mounts volume 'cfg', not in volumes (scratch)",
    ),
    (
        "volume-duplicate-name",
        _t0("volumes", [*_VOL, {"name": "scratch", "secret": {"secret_name": "s"}}]),
        f"{_T0}/volumes/1/name",
        "already used",
    ),
    (
        "volume-without-source",
        _t0("volumes", [{"name": "scratch"}]),
        f"{_T0}/volumes/0",
        "exactly one source",
    ),
    (
        "volume-two-sources",
        _t0("volumes", [{"name": "v", "empty_dir": {}, "secret": {"secret_name": "s"}}]),
        f"{_T0}/volumes/0",
        "exactly one source",
    ),
    (
        "size-limit-bad-quantity",
        _t0("volumes", [{"name": "v", "empty_dir": {"size_limit": "1 Gi"}}]),
        f"{_T0}/volumes/0/empty_dir/size_limit",
        "'1 Gi' is not valid: Kubernetes quantity",
    ),
    (
        "size-limit-negative",
        _t0("volumes", [{"name": "v", "empty_dir": {"size_limit": "-1Gi"}}]),
        f"{_T0}/volumes/0/empty_dir/size_limit",
        "zero or more",
    ),
    (
        "ephemeral-zero-storage",
        _t0("volumes", [{"name": "v", "ephemeral": {"storage": "0", "access_modes": ["ReadWriteOnce"]}}]),
        f"{_T0}/volumes/0/ephemeral/storage",
        "greater than zero",
    ),
    (
        "secret-item-parent-path",
        _t0(
            "volumes",
            [{"name": "v", "secret": {"secret_name": "s", "items": [{"key": "k", "path": "../k"}]}}],
        ),
        f"{_T0}/volumes/0/secret/items/0/path",
        "must not contain '..'",
    ),
    (
        "config-map-item-absolute-path",
        _t0(
            "volumes", [{"name": "v", "config_map": {"name": "c", "items": [{"key": "k", "path": "/etc/k"}]}}]
        ),
        f"{_T0}/volumes/0/config_map/items/0/path",
        "must be a relative path",
    ),
    (
        "file-mode-above-0777",
        _t0("volumes", [{"name": "v", "secret": {"secret_name": "s", "default_mode": 512}}]),
        f"{_T0}/volumes/0/secret/default_mode",
        "maximum of 511",
    ),
    (
        "sub-path-escapes",
        _defaults(
            volumes=_VOL,
            task0={"volume_mounts": [{"name": "scratch", "mount_path": "/s", "sub_path": "a/../.."}]},
        ),
        f"{_T0}/volume_mounts/0/sub_path",
        "must not contain '..'",
    ),
    (
        "mount-path-twice",
        _defaults(
            volumes=_VOL,
            task0={
                "volume_mounts": [
                    {"name": "scratch", "mount_path": "/s"},
                    {"name": "scratch", "mount_path": "/s/"},
                ]
            },
        ),
        f"{_T0}/volume_mounts/1/mount_path",
        "already used",
    ),
    (
        "service-account-token-short",
        _t0(
            "volumes",
            [
                {
                    "name": "t",
                    "projected": {
                        "sources": [{"service_account_token": {"path": "t", "expiration_seconds": 60}}]
                    },
                }
            ],
        ),
        f"{_T0}/volumes/0/projected/sources/0/service_account_token/expiration_seconds",
        "minimum of 600",
    ),
    (
        "host-path-not-allowed-by-default-policy",
        _t0("volumes", [{"name": "h", "host_path": {"path": "/var/run/docker.sock"}}]),
        f"{_T0}/volumes/0/host_path",
        "volume type 'host_path' is not allowed by the platform policy",
    ),
    # -- env_from
    (
        "env-from-bad-prefix",
        _t0("env_from", [{"secret": "db", "prefix": "1DB_"}]),
        f"{_T0}/env_from/0/prefix",
        "valid",
    ),
    (
        "env-from-secret-and-config-map",
        _t0("env_from", [{"secret": "db", "config_map": "cfg"}]),
        f"{_T0}/env_from/0",
        "exactly one of `secret` or `config_map`",
    ),
    # -- security
    (
        "seccomp-localhost-without-profile",
        _t0("security_context", {"seccomp_profile": {"type": "Localhost"}}),
        f"{_T0}/security_context/seccomp_profile/localhost_profile",
        "required when type is Localhost",
    ),
    (
        "seccomp-profile-without-localhost",
        _t0(
            "pod_security_context",
            {"seccomp_profile": {"type": "RuntimeDefault", "localhost_profile": "p.json"}},
        ),
        f"{_T0}/pod_security_context/seccomp_profile/localhost_profile",
        "only when type is Localhost",
    ),
    (
        "privileged-without-escalation",
        _t0("security_context", {"privileged": True, "allow_privilege_escalation": False}),
        f"{_T0}/security_context/allow_privilege_escalation",
        "cannot be false when privileged is true",
    ),
    (
        "non-root-user-zero",
        _t0("security_context", {"run_as_non_root": True, "run_as_user": 0}),
        f"{_T0}/security_context/run_as_user",
        "refuses to start user 0",
    ),
    (
        "pod-non-root-container-user-zero",
        _defaults(
            pod_security_context={"run_as_non_root": True}, task0={"security_context": {"run_as_user": 0}}
        ),
        f"{_T0}/security_context/run_as_user",
        "refuses to start user 0",
    ),
    (
        "privileged-not-allowed-by-default-policy",
        _t0("security_context", {"privileged": True}),
        f"{_T0}/security_context/privileged",
        "privileged containers are not allowed by the platform policy",
    ),
    (
        "capability-beyond-baseline",
        _t0("security_context", {"capabilities": {"add": ["SYS_ADMIN"]}}),
        f"{_T0}/security_context/capabilities/add/0",
        "capability 'SYS_ADMIN' is not allowed by the platform policy",
    ),
    (
        "priority-class-uppercase",
        _t0("priority_class_name", "Etl-Batch"),
        f"{_T0}/priority_class_name",
        "lowercase letters, digits",
    ),
    (
        "host-alias-bad-ip",
        _t0("host_aliases", [{"ip": "10.0.0.300", "hostnames": ["db"]}]),
        f"{_T0}/host_aliases/0/ip",
        "not an IPv4 or IPv6 address",
    ),
    # -- init containers
    (
        "init-named-base",
        _t0("init_containers", [{**_INIT, "name": "base"}]),
        f"{_T0}/init_containers/0/name",
        "task's own container",
    ),
    (
        "init-duplicate-name",
        _t0("init_containers", [_INIT, _INIT]),
        f"{_T0}/init_containers/1/name",
        "already used",
    ),
    (
        "init-unpinned-image",
        _t0("init_containers", [{**_INIT, "image": "registry.example.com/tools:latest"}]),
        f"{_T0}/init_containers/0/image",
        "latest",
    ),
    (
        "init-bad-quantity",
        _t0("init_containers", [{**_INIT, "resources": {"requests": {"cpu": "-1"}}}]),
        f"{_T0}/init_containers/0/resources/requests/cpu",
        "greater than or equal to 0",
    ),
    # -- task behaviour
    ("trigger-rule-unknown", _t0("trigger_rule", "all_sucess"), f"{_T0}/trigger_rule", "all_success"),
    ("weight-rule-unknown", _t0("weight_rule", "total"), f"{_T0}/weight_rule", "downstream"),
    ("priority-weight-beyond-int32", _t0("priority_weight", 2**31), f"{_T0}/priority_weight", "maximum"),
    ("max-retry-delay-zero", _t0("max_retry_delay", "0s"), f"{_T0}/max_retry_delay", "greater than zero"),
    (
        "grace-period-bad-duration",
        _t0("termination_grace_period", "1x"),
        f"{_T0}/termination_grace_period",
        "is not valid: Duration such as `45s`",
    ),
    ("queue-with-space", _t0("queue", "etl queue"), f"{_T0}/queue", "letters, digits, '_'"),
    ("pool-slots-zero", _t0("pool_slots", 0), f"{_T0}/pool_slots", "minimum of 1"),
    # -- dynamic task mapping
    ("expand-empty-list", _mapped({"arguments": []}), f"{_T1}/expand/arguments", "A non-empty list"),
    (
        "expand-not-a-list",
        _mapped({"arguments": "--agency north"}),
        f"{_T1}/expand/arguments",
        "expected array or object, got string",
    ),
    ("expand-env-empty-list", _mapped({"env": []}), f"{_T1}/expand/env", "should be non-empty"),
    ("expand-nothing", _mapped({}), f"{_T1}/expand", "should be non-empty"),
    (
        "expand-and-arguments",
        _mapped({"arguments": [["a"]]}, arguments=["b"]),
        f"{_T1}/expand/arguments",
        "also sets arguments",
    ),
    (
        "expand-from-unknown-task",
        _mapped({"arguments": {"from_task": "lister"}}),
        f"{_T1}/expand/arguments/from_task",
        "unknown task 'lister'",
    ),
    (
        "expand-from-task-without-xcom",
        _mapped({"arguments": {"from_task": "extract"}}),
        f"{_T1}/expand/arguments/from_task",
        "does not set do_xcom_push",
    ),
    (
        "expand-from-itself",
        _mapped({"arguments": {"from_task": "load"}}, do_xcom_push=True),
        f"{_T1}/expand/arguments/from_task",
        "its own result",
    ),
    (
        "expand-env-with-secret-env",
        _mapped({"env": [{"AGENCY": "n"}]}, env={"TOKEN": {"secret": {"name": "s", "key": "k"}}}),
        f"{_T1}/expand/env",
        "needs literal env values",
    ),
    ("expand-env-bad-name", _mapped({"env": [{"1AGENCY": "n"}]}), f"{_T1}/expand/env/0/1AGENCY", "valid"),
    (
        "expand-beyond-max-map-length",
        _mapped({"arguments": [[str(i)] for i in range(40)], "env": [{"A": str(i)} for i in range(30)]}),
        f"{_T1}/expand",
        "expands to 1200 task instances; Airflow maps at most 1024",
    ),
    (
        "expand-cycle-through-xcom",
        _mapped(
            {"arguments": {"from_task": "extract"}}, task0={"do_xcom_push": True, "depends_on": ["load"]}
        ),
        "/tasks",
        "dependency cycle",
    ),
    ("group-is-a-task-id", _t0("group", "load"), f"{_T0}/group", "also a task_id"),
    # -- pod_override
    (
        "override-pod-name",
        _t0("pod_override", {"metadata": {"name": "x"}}),
        f"{_T0}/pod_override/metadata/name",
        "set by the factory",
    ),
    (
        "override-reserved-label",
        _t0("pod_override", {"metadata": {"labels": {"dagfactory-s3/task-id": "x"}}}),
        f"{_T0}/pod_override/metadata/labels/dagfactory-s3~1task-id",
        "set by the factory",
    ),
    (
        "override-modelled-field",
        _t0("pod_override", {"spec": {"serviceAccountName": "admin"}}),
        f"{_T0}/pod_override/spec/serviceAccountName",
        "use the manifest field 'service_account'",
    ),
    (
        "override-renames-container",
        _t0("pod_override", {"spec": {"containers": [{"name": "main", "ports": []}]}}),
        f"{_T0}/pod_override/spec/containers/0/name",
        "must be named 'base'",
    ),
    (
        "override-container-image",
        _t0("pod_override", {"spec": {"containers": [{"name": "base", "image": "evil/x:1"}]}}),
        f"{_T0}/pod_override/spec/containers/0/image",
        "use the manifest field 'image'",
    ),
    (
        "override-host-network",
        _t0("pod_override", {"spec": {"hostNetwork": True}}),
        f"{_T0}/pod_override/spec/hostNetwork",
        "host namespaces are not allowed by the platform policy",
    ),
    (
        "override-sidecar-unpinned",
        _t0(
            "pod_override", {"spec": {"containers": [{"name": "base"}, {"name": "proxy", "image": "envoy"}]}}
        ),
        f"{_T0}/pod_override/spec/containers/1/image",
        "tag",
    ),
    (
        "override-restart-policy",
        _t0("pod_override", {"spec": {"restartPolicy": "Always"}}),
        f"{_T0}/pod_override/spec/restartPolicy",
        "restartPolicy Never",
    ),
    (
        "override-privileged-sidecar",
        _t0(
            "pod_override",
            {
                "spec": {
                    "containers": [
                        {"name": "base"},
                        {
                            "name": "p",
                            "image": "registry.example.com/p:1",
                            "securityContext": {"privileged": True},
                        },
                    ]
                }
            },
        ),
        f"{_T0}/pod_override/spec/containers/1/securityContext/privileged",
        "privileged containers are not allowed",
    ),
]

CASES += TASK_FIELD_CASES


def _top(**fields: Any) -> bytes:
    return json.dumps({**GOOD, **fields}).encode()


_AGENCY = {"type": "string", "enum": ["north", "south"], "default": "north"}


def _assets(*uris: Any, **extra: Any) -> bytes:
    return _top(schedule={"assets": list(uris), **extra})


def _outlets(value: Any) -> bytes:
    return _edit("tasks/0/outlets", value)


# Assets (issue 12): schedule on asset conditions, per-task outlets, URIs as Airflow takes them.
ASSET_CASES: list[tuple[str, bytes, str, str]] = [
    ("asset-uppercase-scheme", _assets("S3://etl-data/orders"), "/schedule/assets/0", "must match [a-z]"),
    ("asset-bad-scheme", _assets("1s3://etl-data/orders"), "/schedule/assets/0", "must match [a-z]"),
    ("asset-airflow-scheme", _assets("airflow://dags/x"), "/schedule/assets/0", "reserved by Airflow"),
    ("asset-non-ascii", _assets("s3://etl-data/bestellungen-\u00fc"), "/schedule/assets/0", "must be ASCII"),
    ("asset-whitespace", _assets("s3://etl-data/my orders"), "/schedule/assets/0", "whitespace"),
    ("asset-trailing-newline", _assets("s3://etl-data/orders\n"), "/schedule/assets/0", "whitespace"),
    ("asset-no-scheme", _assets("etl-data/orders"), "/schedule/assets/0", "must look like scheme://location"),
    ("asset-bucketless-s3", _assets("s3:///orders"), "/schedule/assets/0", "needs a bucket"),
    ("asset-bare-s3", _assets("s3://"), "/schedule/assets/0", "names nothing after s3://"),
    ("asset-password", _assets("s3://user:secret@etl-data/x"), "/schedule/assets/0", "password"),
    ("asset-fragment", _assets("s3://etl-data/orders#v2"), "/schedule/assets/0", "#fragment"),
    ("asset-bad-ipv6", _assets("http://[::1/orders"), "/schedule/assets/0", "cannot be parsed"),
    ("asset-too-long", _assets("s3://etl-data/" + "x" * 1500), "/schedule/assets/0", "at most 1500 allowed"),
    ("asset-empty-list", _assets(), "/schedule/assets", "should be non-empty"),
    ("asset-too-many", _assets(*(f"s3://b/{i}" for i in range(51))), "/schedule/assets", "at most 50"),
    (
        "asset-unknown-require",
        _assets("s3://b/x", require="most"),
        "/schedule/require",
        "'most' is not one of",
    ),
    ("asset-exact-duplicate", _assets("s3://b/x", "s3://b/x"), "/schedule/assets", "entries must be unique"),
    (
        "asset-same-asset-two-spellings",
        _assets("s3://b/orders/", "s3://b/orders"),
        "/schedule/assets/1",
        "the same asset as /schedule/assets/0",
    ),
    ("asset-not-a-string", _assets(42), "/schedule/assets/0", "expected string, got integer"),
    (
        "asset-typo-in-schedule",
        _top(schedule={"asset": ["s3://b/x"]}),
        "/schedule",
        "or an asset condition",
    ),
    (
        "asset-typo-in-require",
        _assets("s3://b/x", requires="any"),
        "/schedule/requires",
        "did you mean 'require'",
    ),
    (
        "asset-schedule-on-own-outlet-any",
        _top(
            schedule={"assets": ["s3://b/other", "s3://b/orders/"], "require": "any"},
            tasks=[{**GOOD["tasks"][0], "outlets": ["s3://b/orders"]}],
        ),
        "/schedule/assets/1",
        "task 'extract' of this DAG updates 's3://b/orders': each run would trigger the next",
    ),
    (
        "asset-schedule-on-own-outlets-all",
        _top(
            schedule={"assets": ["s3://b/orders"]},
            task_defaults={"outlets": ["s3://b/orders"]},
        ),
        "/schedule/assets",
        "this DAG's own tasks update every listed asset",
    ),
    ("every-zero", _top(schedule={"every": "0h"}), "/schedule/every", "greater than zero"),
    ("every-words", _top(schedule={"every": "6 hours"}), "/schedule/every", "Duration such as"),
    ("every-too-long", _top(schedule={"every": "4000d"}), "/schedule/every", "longer than 3650 days"),
    (
        "every-and-assets",
        _top(schedule={"every": "6h", "assets": ["s3://b/x"]}),
        "/schedule",
        "a fixed interval",
    ),
    (
        "outlets-not-a-list",
        _outlets("s3://etl-data/orders"),
        "/tasks/0/outlets",
        "expected array, got string",
    ),
    ("outlets-bad-scheme", _outlets(["airflow://x"]), "/tasks/0/outlets/0", "reserved by Airflow"),
    ("outlets-bucketless-gs", _job(outlets=["gs:///x"]), "/job/outlets/0", "needs a bucket"),
    (
        "outlets-in-task-defaults",
        _top(task_defaults={"outlets": ["s3://etl data/x"]}),
        "/task_defaults/outlets/0",
        "whitespace",
    ),
]

CASES += ASSET_CASES


# DAG-level fields of manifest v1 (issue 12, first part): time zones, params, owner links, first-run state.
DAG_FIELD_CASES: list[tuple[str, bytes, str, str]] = [
    ("tz-unknown", _top(timezone="Europe/Berlln"), "/timezone", "unknown time zone 'Europe/Berlln'"),
    ("tz-abbreviation", _top(timezone="CEST"), "/timezone", "unknown time zone 'CEST'"),
    ("tz-not-a-name", _top(timezone="+02:00"), "/timezone", "IANA time zone"),
    ("tz-path-traversal", _top(timezone="../../etc/passwd"), "/timezone", "IANA time zone"),
    (
        "param-default-breaks-enum",
        _top(params={"agency": {**_AGENCY, "default": "mars"}}),
        "/params/agency/default",
        "is not one of",
    ),
    (
        "param-default-wrong-type",
        _top(params={"days": {"type": "integer", "default": "7"}}),
        "/params/days/default",
        "is not of type 'integer'",
    ),
    (
        "param-default-below-minimum",
        _top(params={"days": {"type": "integer", "minimum": 1, "default": 0}}),
        "/params/days/default",
        "less than the minimum of 1",
    ),
    (
        "param-default-breaks-pattern",
        _top(params={"run": {"type": "string", "pattern": "^[a-z]+$", "default": "A1"}}),
        "/params/run/default",
        "does not match",
    ),
    (
        "param-default-bad-date",
        _top(params={"day": {"type": "string", "format": "date", "default": "2024-02-30"}}),
        "/params/day/default",
        "is not a 'date'",
    ),
    (
        "param-without-default-scheduled",
        _top(params={"agency": {"type": "string"}}),
        "/params/agency",
        "Airflow refuses a scheduled DAG",
    ),
    (
        "param-min-above-max",
        _top(params={"n": {"type": "integer", "minimum": 5, "maximum": 1, "default": 3}}),
        "/params/n/maximum",
        "below minimum 5",
    ),
    (
        "param-bad-regex",
        _top(params={"s": {"type": "string", "pattern": "([a-z", "default": "a"}}),
        "/params/s/pattern",
        "not a valid regular expression",
    ),
    (
        "param-enum-item-wrong-type",
        _top(params={"n": {"type": "integer", "enum": [1, "two"], "default": 1}}),
        "/params/n/enum/1",
        "is not of type 'integer'",
    ),
    ("param-name-with-dash", _top(params={"agency-name": _AGENCY}), "/params", "does not match"),
    (
        "param-unknown-keyword",
        _top(params={"agency": {**_AGENCY, "choices": ["a"]}}),
        "/params/agency/choices",
        "unknown field 'choices'",
    ),
    (
        "param-unknown-type",
        _top(params={"agency": {"type": "text", "default": "a"}}),
        "/params/agency/type",
        "JSON type (or list of types",
    ),
    (
        "owner-link-no-scheme",
        _top(owner_links={"data-eng": "wiki.example.com/data"}),
        "/owner_links/data-eng",
        "not an http(s):// or mailto: link",
    ),
    (
        "owner-link-javascript",
        _top(owner_links={"data-eng": "javascript:alert(1)"}),
        "/owner_links/data-eng",
        "not an http(s):// or mailto: link",
    ),
    (
        "owner-link-empty-mailto",
        _top(owner_links={"data-eng": "mailto:"}),
        "/owner_links/data-eng",
        "not an http(s):// or mailto: link",
    ),
    ("paused-not-boolean", _top(paused_on_create="no"), "/paused_on_create", "expected boolean"),
]

CASES += DAG_FIELD_CASES


def _env(**overlays: Any) -> bytes:
    doc = copy.deepcopy(GOOD)
    doc["params"] = {"day": {"type": "integer", "minimum": 1, "default": 1}}
    doc["environments"] = overlays
    return json.dumps(doc).encode()


# Per-environment values (issue 12): an overlay that breaks the manifest is named by the overlay's pointer.
ENVIRONMENT_CASES: list[tuple[str, bytes, str, str]] = [
    (
        "env-unknown-field",
        _env(prod={"task_defaults": {"imagee": "x"}}),
        "/environments/prod/task_defaults/imagee",
        "unknown field",
    ),
    (
        "env-field-not-overridable",
        _env(prod={"task_defaults": {"retries": 3}}),
        "/environments/prod/task_defaults/retries",
        "unknown field",
    ),
    (
        "env-image-wrong-type",
        _env(prod={"task_defaults": {"image": 5}}),
        "/environments/prod/task_defaults/image",
        "expected string",
    ),
    (
        "env-mutable-image",
        _env(prod={"tasks": {"extract": {"image": "registry.example.com/pp:latest"}}}),
        "/environments/prod/tasks/extract/image",
        "latest",
    ),
    (
        "env-bad-quantity",
        _env(prod={"tasks": {"load": {"resources": {"requests": {"cpu": "-1"}}}}}),
        "/environments/prod/tasks/load/resources/requests/cpu",
        "greater than or equal to 0",
    ),
    (
        "env-request-above-limit",
        _env(
            prod={
                "tasks": {"load": {"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}}}
            }
        ),
        "/environments/prod/tasks/load/resources/requests/memory",
        "must be less than or equal to",
    ),
    (
        "env-unknown-task",
        _env(prod={"tasks": {"transform": {"image": "registry.example.com/pp:1.2.4"}}}),
        "/environments/prod/tasks/transform",
        "no task 'transform'",
    ),
    (
        "env-job-on-tasks",
        _env(prod={"job": {"image": "registry.example.com/pp:1.2.4"}}),
        "/environments/prod/job",
        "has tasks, not a job",
    ),
    ("env-bad-cron", _env(dev={"schedule": "0 25 * * *"}), "/environments/dev/schedule", "hour field '25'"),
    (
        "env-undeclared-param",
        _env(prod={"params": {"days": {"default": 2}}}),
        "/environments/prod/params/days",
        "no param 'days'",
    ),
    (
        "env-param-default-breaks-rules",
        _env(prod={"params": {"day": {"default": 0}}}),
        "/environments/prod/params/day/default",
        "less than the minimum of 1",
    ),
    ("env-bad-name", _env(Prod={}), "/environments", "does not match"),
    (
        "env-bad-env-name",
        _env(prod={"task_defaults": {"env": {"1X": "a"}}}),
        "/environments/prod/task_defaults/env/1X",
        "valid",
    ),
]

CASES += ENVIRONMENT_CASES


def _stamped(provenance: Any, **overlays: Any) -> bytes:
    doc = {"provenance": provenance, **copy.deepcopy(GOOD)}
    if overlays:
        doc["environments"] = overlays
    return json.dumps(doc).encode()


STAMP = {"release": "20240101T120000.123Z-1a2b3c", "git_sha": "abc123"}

# The publisher's provenance stamp: a published manifest's is checked everywhere; an overlay has none.
PROVENANCE_CASES: list[tuple[str, bytes, str, str]] = [
    ("provenance-bad-release", _stamped({"release": "yesterday"}), "/provenance/release", "is not valid"),
    ("provenance-no-release", _stamped({"git_sha": "abc123"}), "/provenance/release", "required field"),
    ("provenance-unknown-field", _stamped({**STAMP, "by": "me"}), "/provenance/by", "unknown field 'by'"),
    (
        "provenance-sha-with-space",
        _stamped({**STAMP, "git_sha": "abc 123"}),
        "/provenance/git_sha",
        "is not valid",
    ),
    ("provenance-not-object", _stamped("20240101T120000.123Z-1a2b3c"), "/provenance", "expected object"),
    (
        "provenance-in-overlay",
        _env(prod={"provenance": STAMP}),
        "/environments/prod/provenance",
        "unknown field",
    ),
]

CASES += PROVENANCE_CASES

# Refused in a source manifest only (validate, plan, publish, promote): the loader serves these, stamped
# by the publisher. (file bytes, pointer, text) as above.
SOURCE_CASES: list[tuple[str, bytes, str, str]] = [
    ("source-with-stamp", _stamped(STAMP), "/provenance", "written by the publisher"),
    (
        "source-with-release-only-stamp",
        _stamped({"release": "20240101T120000.123Z-1a2b3c"}),
        "/provenance",
        "written by the publisher",
    ),
]
