"""The JSON Schema of job manifests, shipped in the wheel, and its translation into Problems."""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match

from dagfactory_s3.errors import Problem

__all__ = ["SCHEMA_FILE", "schema", "schema_problems", "schema_text", "to_pointer"]

SCHEMA_FILE = "job-manifest.v1.json"
_UNEXPECTED = re.compile(r"\((.*) (?:was|were) unexpected\)")
_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}


def schema_text() -> str:
    return resources.files("dagfactory_s3").joinpath("schemas", SCHEMA_FILE).read_text("utf-8")


@functools.cache
def schema() -> dict[str, Any]:
    return json.loads(schema_text())


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Any:
    """``pattern`` with ECMA-262 semantics for ``$``: Python's ``$`` also matches before a final
    newline, which would let ``"name\n"`` through every anchored pattern of the schema."""
    if not validator.is_type(instance, "string"):
        return
    if not re.search(pattern, instance) or (pattern.endswith("$") and instance.endswith("\n")):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


_StrictValidator = validators.extend(Draft202012Validator, {"pattern": _pattern})


@functools.cache
def _validator() -> Any:
    return _StrictValidator(schema())


def to_pointer(path: Any) -> str:
    """RFC 6901 JSON pointer of a path of keys and indexes."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def _known_keys(error: ValidationError) -> list[str]:
    props = dict(error.schema.get("properties", {}))
    ref = error.schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        props.update(schema()["$defs"][ref.removeprefix("#/$defs/")].get("properties", {}))
    return sorted(props)


def _messages(error: ValidationError) -> list[tuple[str, str]]:
    """Turn one jsonschema error into (pointer, message) pairs a person can act on."""
    pointer = to_pointer(error.absolute_path)
    kind, instance = error.validator, error.instance
    if kind in ("additionalProperties", "unevaluatedProperties"):
        match = _UNEXPECTED.search(error.message)
        names = [n.strip().strip("'") for n in match.group(1).split(",")] if match else []
        import difflib  # only on the error path: keeps the parse-time import light

        known = _known_keys(error)
        out = []
        for name in names:
            hint = difflib.get_close_matches(name, known, n=1)
            fix = (
                f"; did you mean {hint[0]!r}?"
                if hint
                else (f"; known fields: {', '.join(known)}" if known else "")
            )
            out.append((f"{pointer}/{name}", f"unknown field {name!r}{fix}"))
        return out or [(pointer, error.message)]
    if kind == "required":
        missing = _UNEXPECTED_REQUIRED.search(error.message)
        name = missing.group(1) if missing else "?"
        return [(f"{pointer}/{name}", f"required field {name!r} is missing")]
    if kind == "type":
        return [(pointer, f"expected {error.validator_value}, got {_json_type(instance)}")]
    if kind == "oneOf" and not error.absolute_path:  # the root's tasks-or-job choice
        if not isinstance(instance, dict):
            return []  # the type error already says it all
        both = "tasks" in instance and "job" in instance
        return [
            (
                pointer,
                "give either 'tasks' (a list of tasks) or 'job' (the single-job shorthand)"
                + (", not both" if both else ""),
            )
        ]
    if kind in ("oneOf", "anyOf") and error.context:
        # The branch that got furthest into the value is the one the author meant.
        depth = max(len(e.absolute_path) for e in error.context)
        if depth > len(error.absolute_path):
            return _messages(best_match(e for e in error.context if len(e.absolute_path) == depth))
        types = [e.validator_value for e in error.context if e.validator == "type"]
        if len(types) == len(error.context):
            return [(pointer, f"expected {' or '.join(types)}, got {_json_type(instance)}")]
        # An object that has the required keys of exactly one object branch (schedule's asset
        # condition or interval): that branch's own errors say what is wrong.
        if isinstance(instance, dict):
            branches = {e.relative_schema_path[0] for e in error.context if e.validator != "type"}
            meant = [b for b in branches if set(error.schema[kind][b].get("required", ())) <= set(instance)]
            if len(meant) == 1:
                return sorted(
                    {m for e in error.context if e.relative_schema_path[0] == meant[0] for m in _messages(e)}
                )
        if "description" in error.schema:
            return [(pointer, f"invalid value; {error.schema['description']}")]
        return _messages(best_match(error.context))
    if kind == "pattern":
        hint = error.schema.get("description")
        if hint:
            return [(pointer, f"{instance!r} is not valid: {hint}")]
        return [(pointer, f"{instance!r} does not match {error.validator_value}")]
    if kind == "const":
        return [(pointer, f"must be {error.validator_value!r}, got {instance!r}")]
    if kind == "enum":
        return [(pointer, f"{instance!r} is not one of {', '.join(map(repr, error.validator_value))}")]
    if kind == "maxLength":
        return [(pointer, f"is {len(instance)} characters long; at most {error.validator_value} allowed")]
    if kind in ("maxItems", "maxProperties"):
        return [(pointer, f"has {len(instance)} entries; at most {error.validator_value} allowed")]
    if kind == "uniqueItems":
        return [(pointer, "entries must be unique")]
    return [(pointer, error.message)]


_UNEXPECTED_REQUIRED = re.compile(r"^'(.*)' is a required property")


def schema_problems(document: Any, file: str) -> list[Problem]:
    """Every schema violation of ``document`` as Problems (empty when it is valid)."""
    problems = []
    for error in _validator().iter_errors(document):
        for pointer, message in _messages(error):
            problems.append(Problem(file, pointer, message))
    return problems


def _type_of(spec: dict[str, Any]) -> str:
    root = schema()
    if "$ref" in spec and spec["$ref"].startswith("#/$defs/"):
        name = spec["$ref"].removeprefix("#/$defs/")
        target = root["$defs"][name]
        return {"task_fields": "task fields", "task": "task", "job": "job"}.get(name, _type_of(target))
    if "const" in spec:
        return f"`{spec['const']}`"
    if "enum" in spec:
        return " \\| ".join(f"`{v}`" for v in spec["enum"])
    if "oneOf" in spec:
        return " or ".join(_type_of(s) for s in spec["oneOf"])
    kind = spec.get("type", "any")
    if kind == "array" and "items" in spec:
        return f"array of {_type_of(spec['items'])}"
    if kind == "object" and isinstance(spec.get("additionalProperties"), dict):
        return f"map of {_type_of(spec['additionalProperties'])}"
    return str(kind)


def _describe(spec: dict[str, Any]) -> str:
    root = schema()
    text = spec.get("description", "")
    if not text and "$ref" in spec and spec["$ref"].startswith("#/$defs/"):
        text = root["$defs"][spec["$ref"].removeprefix("#/$defs/")].get("description", "")
    return text.replace("|", "\\|").replace("\n", " ")


def _table(properties: dict[str, Any], required: list[str]) -> list[str]:
    rows = ["| field | type | required | default | description |", "|---|---|---|---|---|"]
    for name, spec in properties.items():
        default = f"`{json.dumps(spec['default'])}`" if "default" in spec else ""
        rows.append(
            f"| `{name}` | {_type_of(spec)} | {'yes' if name in required else ''} | {default} | {_describe(spec)} |"
        )
    return rows


def reference_markdown() -> str:
    """docs/manifest.md, generated from the schema so the reference cannot drift from it."""
    root = schema()
    defs = root["$defs"]
    lines = [
        "# Job manifest reference (schema version 1)",
        "",
        "<!-- Generated by `python -m dagfactory_s3.schema > docs/manifest.md`; tests/test_docs.py checks it. -->",
        "",
        f"Schema: `{root['$id']}` (JSON Schema 2020-12, shipped in the wheel; print it with",
        "`airflow-dag-publisher schema`). Unknown fields are errors everywhere. A manifest has either",
        "`tasks` or the single-job shorthand `job`.",
        "",
        root["description"],
        "",
        "## Top level",
        "",
        *_table(root["properties"], root["required"]),
        "",
        "## Task fields",
        "",
        "Allowed in each entry of `tasks`, in `job` and in `task_defaults`. A task inherits every field it does not",
        "set from `task_defaults`; `env`, `labels`, `annotations`, `node_selector` and `resources` merge key by key.",
        "",
        *_table(defs["task_fields"]["properties"], []),
        "",
        "## Task-only fields",
        "",
        *_table(defs["task"]["properties"], defs["task"]["required"]),
        "",
        "In `job`, `name` is the task id:",
        "",
        *_table(defs["job"]["properties"], defs["job"]["required"]),
        "",
        "## Pod parts",
        "",
        "Lists (`volumes`, `volume_mounts`, `env_from`, `init_containers`, `host_aliases`) and the security",
        "contexts set on a task replace those of `task_defaults` as a whole. Names are Kubernetes names, file",
        "modes decimal integers (420 = 0644). Each becomes the provider's `kubernetes.client.models` type.",
        "",
        "### A volume (`volumes` item): `name` and exactly one source",
        "",
        *_table(defs["volume"]["properties"], defs["volume"]["required"]),
        "",
        "`projected.sources` items hold one of `secret`, `config_map` (`name`, `items`, `optional`) or",
        "`service_account_token` (`path`, `audience`, `expiration_seconds` >= 600).",
        "",
        "### A mount (`volume_mounts` item)",
        "",
        *_table(defs["volume_mount"]["properties"], defs["volume_mount"]["required"]),
        "",
        "### `env_from` item",
        "",
        *_table(defs["env_from"]["properties"], []),
        "",
        "### `security_context` (container) and `pod_security_context`",
        "",
        *_table(defs["security_context"]["properties"], []),
        "",
        *_table(defs["pod_security_context"]["properties"], []),
        "",
        "### `init_containers` item",
        "",
        *_table(defs["init_container"]["properties"], defs["init_container"]["required"]),
        "",
        "### `pod_override`",
        "",
        "A partial Kubernetes Pod in API form (camelCase) passed to the operator as `full_pod_spec`: the pod",
        "the operator builds from the manifest is merged over it, so every modelled field wins. For the rare",
        "field the manifest does not model (`spec.dnsConfig`, `spec.enableServiceLinks`, a sidecar container,",
        "`ports` of the task's container ...). Refused: `metadata` other than `labels`/`annotations`, labels",
        "with the `dagfactory-s3/` prefix or `app.kubernetes.io/managed-by`, any `spec` field the manifest",
        "models (the error names the manifest field to use), `restartPolicy`, `nodeName`, a first container",
        "not named `base` (it is merged into the task's own container, which may not get its `image`,",
        "`command`, `args`, `env`, `envFrom`, `resources`, `volumeMounts`, `securityContext` or",
        "`imagePullPolicy` here), extra containers without a pinned image, and host namespaces or",
        "privileged containers the platform policy does not allow. Unknown fields and wrong types are refused",
        "when the DAG is built (the Kubernetes client would drop them); `render` checks the merged pod",
        "against the Kubernetes schema.",
        "",
        "## Dynamic task mapping (`expand`) and task groups",
        "",
        *_table(defs["expand"]["properties"], []),
        "",
        '`expand.arguments` as a list gives one task instance per argument list; as `{"from_task": id}` one',
        "per item of the list that task pushed (it must set `do_xcom_push`: the provider's xcom sidecar reads",
        "`/airflow/xcom/return.json`, which must hold a JSON list of argument lists; an empty list skips the",
        "task). `expand.env` gives one instance per map, merged over the task's `env` (which then may hold",
        "only literal values; use `env_from` for secrets). Both lists: one instance per pair (Airflow's",
        "cross product), at most 1024 (`[core] max_map_length`). `max_active_tis_per_dagrun` bounds how",
        "many run at once. `render` shows one pod per item (`task[0]`, `task[1]` ...) or `task[*]`.",
        "",
        "`group` puts a task in a task group of that name (one level; task ids stay as written, the group is",
        "a UI fold). A group name may not be a task id.",
        "",
        "## Templates",
        "",
        "Templates are a small checked language, not Python. `validate`, the factory at parse and the task's",
        "operator just before it renders run the same checker (`dagfactory_s3/templates.py`); anything outside",
        "the language is refused with its file, pointer and reason (`/tasks/1/arguments/1: template",
        "{{ var.value.team_b_key }}: Variable 'team_b_key' is not granted to package 'team_a'`).",
        "",
        "**What Airflow renders.** The operator renders these task fields when the task runs: `command`,",
        "`arguments`, `env` (names and values), `image`, `namespace`, `labels`, `annotations`,",
        "`node_selector`, `resources`, `volumes` (volume names, `persistent_volume_claim.claim_name`,",
        "`config_map.name`), `volume_mounts` (`name`, `sub_path`), `env_from` (ConfigMap names) and mapped",
        "`arguments`/`env` lists. Every other field is passed as written. Every string of `job`, `tasks`,",
        "`task_defaults` and their `environments` overlays is checked, so a template is refused wherever it",
        "is written. Parsing never renders a template, so the DAG stays deterministic. Arguments taken from",
        "another task's XCom (`from_task`) are passed as they are and never rendered.",
        "",
        "**The language.** A string may hold `{{ expression }}` blocks, at most 32 of them and 4,096",
        "characters in all. An expression is one of the following:",
        "",
        "| expression | notes |",
        "|---|---|",
        "| `ds`, `ds_nodash`, `ts`, `ts_nodash`, `ts_nodash_with_tz`, `run_id`, `task_instance_key_str` | plain strings |",
        "| `logical_date`, `data_interval_start`, `data_interval_end`, `prev_data_interval_start_success`, `prev_data_interval_end_success`, `prev_start_date_success`, `prev_end_date_success`, `dag_run.logical_date` | dates: `.year` ... `.second`, and `.strftime(...)`, `.isoformat()`, `.format(...)`, `.add(days=1)`, `.subtract(...)`, `.start_of(...)`, `.end_of(...)`, `.in_timezone(...)` with literal arguments |",
        "| `dag.dag_id`, `task.task_id`, `ti.task_id`, `ti.dag_id`, `ti.run_id`, `ti.map_index`, `ti.try_number`, `dag_run.run_id`, `dag_run.run_type` | `task_instance` works like `ti` |",
        "| `params.<name>`, `params['<name>']` | a parameter this DAG declares, then `.key` / `[key]` into its value |",
        "| `macros.ds_add(ds, 7)`, `macros.ds_format(ds, '%Y-%m-%d', '%d/%m/%Y')` | no other macros: `macros` also holds whole modules |",
        "| `ti.xcom_pull(task_ids='extract', key=..., map_indexes=..., default=...)` | tasks of **this DAG** only, named literally; never `dag_id`, `run_id` or `include_prior_dates` |",
        "| `var.value.<name>`, `var.json.<name>` | Variables granted to the package (below) |",
        "| `conn.<id>.host`, `.port`, `.login`, `.password`, `.schema`, `.conn_type`, `.extra_dejson[...]` | Connections granted to the package |",
        "| `dag_run.conf['key']`, `dag_run.conf.get('key', 'default')` | only when the policy grants `dag_run_conf` to the package |",
        "| `'text'`, `7`, `true`, `false`, `none` | literals (no backslashes) |",
        "",
        "Then, optionally, `|` filters with literal arguments: `default`, `lower`, `upper`, `trim`,",
        "`replace`, `string`, `int`, `join`, `tojson`. There are no statements (`{% %}`), no comments",
        "(`{# #}`), no operators and no arithmetic, and no attribute that starts with `_`. The output is",
        "bounded by its inputs.",
        "",
        "**Grants.** A package may name the Variables and Connections whose names start with `<package>_`",
        "(`reporting_seeder_bucket`), and those the platform policy grants it, or grants every package with",
        '`"*"` (docs/deploy.md, "Grants"). `dag_run.conf` is refused unless granted, because a run\'s conf is',
        "whatever the person who triggers it types.",
        "",
        "**Time semantics.** A cron builds a trigger timetable, so `{{ ds }}` is the date of the run itself. In",
        "an Airflow 2 DAG, `{{ ds }}` was the start of the previous period.",
        "",
        "## Environments",
        "",
        "`environments` holds per-environment values (`dev`, `prod` ...): `schedule`, `paused_on_create`, param",
        "defaults (`params.<name>.default`) and, in `task_defaults`, `job` or `tasks.<task_id>`, `image`,",
        "`namespace`, `env` and `resources` (`env` and `resources` merge key by key). `publish --environment X`",
        "uploads the manifest with X's values applied and without `environments`; `validate` checks every",
        "environment and names an overlay's problem by its pointer (`/environments/prod/...`).",
        "",
        "**Locally.** The loader refuses a manifest that still has `environments`. To try one in a local",
        "Airflow, set `DAGFACTORY_LOCAL_ENVIRONMENT=dev` for its processes: the loader builds the DAG from the",
        "manifest resolved for `dev` in memory, the bytes `publish --environment dev` would upload before its",
        "stamp (same manifest and setting, same `dag_hash`); a name the manifest does not declare is the DAG's",
        "import error, listing those it does. The setting is ignored for a manifest the publisher stamped",
        "(`provenance`) and in the `<package>/dags/` folders the sidecar and bundles serve, so what a served",
        "folder shows never depends on an Airflow process's environment.",
        "",
        "## Alerts",
        "",
        "`alerts` (DAG runs: `on_failure`, `on_success`; tasks and `task_defaults`: also `on_retry`) and",
        "`deadline` name notifiers the platform defines in its policy file (`team-slack`, `oncall-email` ...);",
        "the factory builds them from a fixed list of kinds (SMTP, Slack, Slack webhook, PagerDuty). A manifest",
        "never names a Python class. `deadline` uses Airflow's deadline alerts (Airflow 3.1+; on 3.0 it is a",
        "manifest error naming the Airflow version). Example, with the deploy kit's `oncall-email`:",
        "[`pipeline_processing_orders_export.json`](../examples/features/alerts/pipeline_processing_orders_export.json).",
        "",
        "## Assets: coupling by data, across packages",
        "",
        "A task's `outlets` name the assets it updates; when the task succeeds Airflow records an asset event",
        'for each. A DAG whose `schedule` is `{"assets": [...], "require": "all"}` runs once every listed asset',
        'has been updated since its last run (`AssetAll`); with `"require": "any"`, as soon as any of them',
        "has (`AssetAny`). Producer and consumer need not be in the same package, nor know each other: package",
        "B's DAG waits for `s3://etl-data/orders/`, whichever package's job writes it (the example",
        "`reporting_seeder_orders_report` waits for pipeline_processing's orders and its own package's tables).",
        "The condition is always built as `AssetAll`/`AssetAny`, also around one asset, so the serialized DAG",
        "states what the manifest chose. Airflow queues an asset event only for consumers that are not paused",
        "at that moment, so an asset-scheduled DAG should start unpaused (`paused_on_create: false`, as the",
        "example does). A DAG whose own `outlets` satisfy its condition would trigger itself after every run",
        "and is refused.",
        "",
        "An asset is named by its URI as Airflow normalizes it (trailing slashes dropped, query parameters",
        "sorted): `s3://b/orders/` and `s3://b/orders` are one asset in every manifest (Airflow's own",
        "`Asset(uri)` would make them two that conflict in its asset table). A hand-written DAG matches with",
        '`Asset("s3://b/orders")`: Airflow names an `Asset` by the text as written, so write it there without',
        "the trailing slash. URI rules are in the table below; a URI the image's provider normalizers refuse",
        "(a `postgres://` URI without a table, say) is a manifest error with its pointer when the DAG is built.",
        "",
        "## The platform policy",
        "",
        "What a manifest may use comes from the environment's platform policy, published in the bucket",
        "(`<env>/_platform/policy.json`, `airflow-dag-publisher policy publish`; see docs/deploy.md): allowed",
        "namespaces, service accounts, image registries, volume types (default: all but `host_path`),",
        "privileged containers and host namespaces (default: no), `capabilities.add` (default: the Kubernetes",
        "baseline Pod Security Standard list), notifiers and per-package grants. CI and Airflow read the same",
        "object: `plan`, `publish` and `promote` (and `validate` and `render` given the bucket and environment)",
        "check against it, `--policy FILE` instead of it; the sidecar and the versioned bundle serve it beside",
        "the packages and the factory applies it at every parse (`DAGFACTORY_POLICY` in the Airflow image is an",
        "explicit override). A violation is a manifest error naming the field, the policy and what it allows.",
        "",
        "## Rules beyond the schema",
        "",
        "- `dag_id` is `<package>_<name>` of the manifest's own `package`; published files are `<dag_id>.json` and `<dag_id>.py`.",
        "- Task ids are unique; `depends_on` names existing tasks, not itself, without cycles.",
        "- At most 256 KiB, nesting at most 32 levels, UTF-8 without BOM, no duplicate keys, no NaN/Infinity.",
        "- Bounded to check: at most 50,000 JSON values, counting the manifest once and again for each environment",
        "  it is resolved for (a 200-task manifest has about 1,200); over that it is refused before anything else is",
        "  checked, so no manifest can stall `validate`, the sidecar or the loader (worst case at the bound:",
        "  [benchmarks](benchmarks.md#checking-one-manifest-the-worst-case-at-the-limits)). Param `pattern`s must",
        "  start with `^` and may not backtrack (see params).",
        "",
        "### Refused in CI what Kubernetes or Airflow would refuse at run time",
        "",
        "The Kubernetes API server's validation for the pod fields a manifest emits, ported to",
        "`dagfactory_s3/k8s.py` and applied by `validate`, `publish`, the loader in Airflow and the sync sidecar;",
        "`render` applies the same rules to the rendered pod. Each problem names the field's JSON pointer",
        "(in the task, or in `task_defaults` when the value comes from there).",
        "",
        "| field | rule |",
        "|---|---|",
        "| every string, every key | no NUL (U+0000), no lone surrogate (`\\ud800`) |",
        "| every number | an integer: `3`, not `3.0` or `1e1` |",
        "| `image` | `[registry[:port]/]repository[:tag][@digest]`: repository lowercase, tag 1-128 of `[A-Za-z0-9_.-]` not starting with `.`/`-`, digest `sha256:<64 hex>` or `sha512:<128 hex>` lowercase, no `::`, no whitespace, invisible or bidi characters; pinned (tag other than `latest`, or digest) unless `allow_mutable_image` |",
        "| `resources.requests/limits.*` | a Kubernetes quantity (`500m`, `1.5`, `512Mi`, `1e9`; suffixes `n u m k M G T P E Ki Mi Gi Ti Pi Ei`), at least 0, at most 2^63-1 |",
        "| `resources` (after `task_defaults` merge) | each request at most its limit; `nvidia.com/gpu` whole, with a limit, request equal to the limit |",
        "| `labels`, `node_selector` keys | `[prefix/]name`: prefix a lowercase DNS subdomain (at most 253), name 1-63 of `[A-Za-z0-9-_.]`, alphanumeric at both ends |",
        "| `labels`, `node_selector` values | at most 63 of `[A-Za-z0-9-_.]`, alphanumeric at both ends, or empty |",
        "| `package`, `dag_id`, task ids | valid label values too (they become `dagfactory-s3/*` pod labels): no trailing `_` or `-` |",
        "| `annotations` keys | as label keys, case-insensitive (the API server lowercases them) |",
        "| `env` names | `[-._a-zA-Z][-._a-zA-Z0-9]*` |",
        "| `env.*.secret/config_map` | `name` a DNS subdomain; `key` at most 253 of `[-._a-zA-Z0-9]`, not `.`, `..` or `..*` |",
        "| `service_account`, `image_pull_secrets` | DNS subdomains (dot-separated RFC 1123 labels, at most 253) |",
        "| `tolerations` | empty `key` needs `operator: Exists`; `Exists` has no `value`; `Equal` values are label values; `toleration_seconds` only with `effect: NoExecute`, 0 to 2^63-1 |",
        "| `affinity` | `In`/`NotIn` need values, `Exists`/`DoesNotExist` have none, `Gt`/`Lt` exactly one integer; at least one node selector term; `matchFields` only `metadata.name`; weights 1-100; `topologyKey` required, a label key; selector keys and values, namespaces valid |",
        "| `owner`, `tags` | no control, invisible or bidi characters |",
        "| asset URIs (`schedule.assets`, `outlets`) | ASCII, `scheme://location` with a lowercase scheme `[a-z][a-z0-9+.-]*` other than `airflow` (reserved by Airflow), at most 1500 characters, no whitespace or control characters, no password, no `#fragment`; `s3://` and `gs://` with a bucket; one asset listed once per list, however spelled; a schedule the DAG's own `outlets` satisfy (any listed asset with `require: any`, every one with `all`) is refused |",
        '| `schedule` | a preset Airflow knows (`@once`, `@hourly`, `@daily`, `@weekly`, `@monthly`, `@quarterly`, `@yearly`, and croniter\'s `@annually`, `@midnight`) or a 5-field cron that croniter (Airflow\'s cron library) accepts and that fires (not `0 0 30 2 *`); `{"every": d}` a duration greater than zero, at most 3650 days (Airflow\'s `timedelta` schedule: a run every `d` from `start_date`); `{"cron": c}` the same rules as the string `c`; `data_intervals: true` not with `@once` (no periods to cover) |',
        "| `start_date`, `end_date` | real calendar dates within the years 1-9999 in UTC (after the offset); `end_date` after `start_date` |",
        "| durations | greater than zero, at most 3650 days; per task, `(retries + 1) x (startup_timeout + execution_timeout) + retries x retry_delay` (with `task_defaults`) at most 3650 days |",
        "| derived pod name | `<dag_id>-<task_id>` (`_` as `-`, cut to 54) is an RFC 1123 label; the `dagfactory-s3/` label prefix is reserved |",
        "| `volumes` | names unique; exactly one source; Secret, ConfigMap, claim and storage class names DNS subdomains; item keys as ConfigMap keys, item paths relative without `..` and unique; `size_limit` at least 0, ephemeral `storage` above 0 |",
        "| `volume_mounts` (task and init containers) | name a volume of the task's `volumes` (with `task_defaults`); mount paths unique; `sub_path` relative without `..` |",
        "| `env_from.*.prefix` | a valid `env` name |",
        "| security contexts | `seccomp_profile.localhost_profile` exactly when `type: Localhost`; `allow_privilege_escalation: false` not with `privileged: true` or `capabilities.add: [SYS_ADMIN]`; `run_as_non_root` not with `run_as_user: 0` (container or pod level) |",
        "| `init_containers` | names unique and not `base`; image, env, resources and mounts as for the task |",
        "| `host_aliases` | `ip` an IPv4/IPv6 address; hostnames DNS subdomains |",
        "| `expand` | not with the task's own `arguments`; `from_task` an existing other task with `do_xcom_push`, no cycle through it; `env` items valid names over literal task `env`; at most 1024 instances |",
        "",
        "Stricter than the API server on purpose: image references (the kubelet could not pull them), integer",
        "`Gt`/`Lt` values (no node could match), environment variable names (the rule every API server version",
        "applies, not the relaxed one newer versions can enable), 5-field crons only, and quantities above 2^63-1.",
        "`affinity` must also survive the Kubernetes client's conversion unchanged (checked when the DAG is built).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(reference_markdown(), end="")
