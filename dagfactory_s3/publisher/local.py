"""The publisher's local commands: ``generate``, ``validate``, ``render`` and ``schema``.

None of them needs S3: ``validate`` and ``render`` read one object, the environment's published platform
policy, only when given a bucket and an environment (:mod:`.contract`). Only ``render`` needs Airflow
(it builds pods with the operator's own code).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shlex
import sys
import warnings
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from dagfactory_s3 import k8s, naming, stub
from dagfactory_s3 import manifest as manifests
from dagfactory_s3.errors import ConfigError, ManifestError, Problem
from dagfactory_s3.fs import atomic_write
from dagfactory_s3.publisher import contract
from dagfactory_s3.publisher.scan import scan
from dagfactory_s3.publisher.terminal import (
    add_output,
    add_setting,
    command,
    count,
    emit,
    log,
    schedule_text,
)
from dagfactory_s3.release import dag_summary
from dagfactory_s3.schema import schema, schema_text

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = command(
        sub,
        "generate",
        "write a new manifest and its stub, or (re)generate the stubs of a directory",
        [
            "airflow-dag-publisher generate --package-name pipeline_processing --dag-id pipeline_processing_example \\\n"
            "      --job-name example_job --image registry.example.com/pp:v1.0.0 --out-dir airflow_dags",
            "airflow-dag-publisher generate --dag-path airflow_dags          # rewrite missing or stale stubs",
            "airflow-dag-publisher generate --dag-path airflow_dags --check  # CI: fail if a stub is stale",
        ],
        "Writes <out-dir>/<dag_id>.json (with $schema) and <dag_id>.py, the names publish requires;\n"
        "--manifest DIR/<dag_id>.json names the manifest's path instead (its stub goes next to it).",
    )
    add_setting(p, "package_name", help="package that owns the DAG")
    p.add_argument("--dag-id", help="DAG id, <package>_<name>")
    p.add_argument("--job-name", help="task id of the single job")
    p.add_argument(
        "--image",
        "--image-tag",
        dest="image",
        help="container image reference with a pinned tag or digest (--image-tag: the seed's name)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--out-dir", type=Path, default=None, help="directory to write into [default: current directory]"
    )
    where.add_argument(
        "--manifest",
        type=Path,
        metavar="FILE",
        help="the manifest's path, named <dag_id>.json; the stub <dag_id>.py is written next to it",
    )
    p.add_argument(
        "--output",
        default="text",
        metavar="{text,json} | FILE.py",
        help="output format [default: text]; the seed's '--output FILE.py' still works: it writes <dag_id>.json and .py into FILE's directory",
    )
    p.add_argument("--command", dest="job_command", help="job command line (split like a shell)")
    p.add_argument("--schedule", help="cron expression or preset [default: none (manual)]")
    p.add_argument("--start-date", help="absolute start date YYYY-MM-DD [default: today, UTC]")
    p.add_argument("--force", action="store_true", help="overwrite an existing manifest")
    p.add_argument(
        "--dag-path", type=Path, help="instead: (re)generate the stub of every manifest in this directory"
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="with --dag-path: write nothing, fail if any stub is missing or stale",
    )
    p.set_defaults(handler=cmd_generate)

    p = command(
        sub,
        "validate",
        "check manifests and stubs with exactly the rules plan and publish apply",
        [
            "airflow-dag-publisher validate --package-name pipeline_processing --dag-path airflow_dags",
            "airflow-dag-publisher validate --dag-file airflow_dags/pipeline_processing_example_job.json",
            "airflow-dag-publisher validate --dag-path airflow_dags --bucket etl-airflow-dags --environment dev"
            "  # under dev's published policy",
        ],
        "Every problem at once, one line each: file: /json/pointer: reason. Exit 1 when any.\n"
        "The platform policy: --policy FILE, else the one published for --environment in --bucket, else\n"
        "the built-in default (a warning names the checks it skips).",
    )
    add_setting(p, "package_name", help="package the manifests must belong to (as publish checks)")
    p.add_argument("--dag-file", type=Path, help="a manifest (.json) or its stub (.py): checks the pair")
    p.add_argument("--dag-path", type=Path, help="a directory of manifests and stubs")
    add_setting(p, "bucket", help=_POLICY_BUCKET)
    add_setting(
        p, "environment", help="with --bucket: check against this environment's published platform policy"
    )
    contract.add_flags(p)
    add_output(p)
    p.set_defaults(handler=cmd_validate)

    p = command(
        sub,
        "render",
        "print the Kubernetes pod of every task, validated against the Kubernetes schema ([render] extra)",
        [
            "airflow-dag-publisher render --dag-file airflow_dags/pipeline_processing_example_job.json",
            "airflow-dag-publisher render --dag-file airflow_dags/x.json --kubernetes-version 1.30.0 --output json",
        ],
        "The pods go to stdout (YAML or JSON); the DAG's schedule (a cron with its time zone) and\n"
        "'validated N pods against Kubernetes V schema' to stderr.",
    )
    p.add_argument("--dag-file", type=Path, required=True, help="a manifest (.json) or its stub (.py)")
    add_setting(
        p,
        "environment",
        help="render the manifest resolved for this environment (its environments); with --bucket, "
        "under its published platform policy",
    )
    add_setting(p, "bucket", help=_POLICY_BUCKET)
    contract.add_flags(p)
    p.add_argument(
        "--kubernetes-version",
        default=None,
        help="Kubernetes version to validate against [default: newest known to kubernetes-validate]",
    )
    p.add_argument(
        "--output", choices=("yaml", "json"), default="yaml", help="output format of the pods [default: yaml]"
    )
    p.set_defaults(handler=cmd_render)

    p = command(
        sub,
        "schema",
        "print the job manifest JSON Schema (for editors and check-jsonschema)",
        [
            "airflow-dag-publisher schema > .dagfactory/job-manifest.v1.json",
            "check-jsonschema --schemafile .dagfactory/job-manifest.v1.json airflow_dags/*.json",
        ],
    )
    p.set_defaults(handler=cmd_schema)


_POLICY_BUCKET = "with --environment: the bucket the environment's platform policy is published in"


def _manifest_path(path: Path) -> Path:
    return path.with_name(naming.manifest_of(path.name)) if path.suffix == ".py" else path


# -- generate ----------------------------------------------------------------------------------


def _manifest_target(args: argparse.Namespace) -> Path:
    """Where generate writes the manifest: ``--manifest FILE``, ``<--out-dir>/<dag_id>.json``, or
    ``<dag_id>.json`` in the directory of the seed's ``--output FILE.py``. Its stub goes next to it."""
    name = naming.manifest_name(args.dag_id)
    if args.output not in ("text", "json"):
        if args.manifest is not None or args.out_dir is not None:
            raise ConfigError(
                "the seed's --output FILE.py names where to write; with --manifest or --out-dir use --output text|json"
            )
        seed = Path(args.output)
        if seed.suffix != ".py":
            raise ConfigError(
                f"{seed}: --output is the output format (text or json); the seed's --output FILE.py alias names the stub"
            )
        if seed.name != naming.stub_of(naming.manifest_name(args.dag_id)):
            print(
                f"note: {seed.name} would not publish; writing {naming.manifest_name(args.dag_id)} and its stub in {seed.parent}",
                file=sys.stderr,
            )
        args.output = "text"
        return seed.parent / name
    if args.manifest is not None:
        if args.manifest.name != name:
            raise ConfigError(
                f"{args.manifest}: --manifest must be named {name}: publish serves a DAG only as <dag_id>.json"
            )
        return args.manifest
    return (args.out_dir or Path(".")) / name


def cmd_generate(args: argparse.Namespace) -> int:
    if args.dag_path is not None:
        if args.output not in ("text", "json") or args.manifest or args.out_dir:
            raise ConfigError(
                "--manifest, --out-dir and --output FILE.py write a new DAG; with --dag-path use --output text|json"
            )
        return _generate_directory(args)
    missing = [f for f in ("package_name", "dag_id", "job_name", "image") if not getattr(args, f)]
    if missing:
        flags = ", ".join("--" + f.replace("_", "-") for f in missing)
        raise ConfigError(f"generate needs {flags} (or --dag-path DIR to regenerate stubs)")
    manifest_path = _manifest_target(args)
    out_dir = manifest_path.parent
    stub_path = out_dir / naming.stub_of(manifest_path.name)
    if manifest_path.exists() and not args.force:
        raise ConfigError(f"{manifest_path}: already exists; pass --force to overwrite it")
    document: dict[str, Any] = {
        "$schema": schema()["$id"],
        "schema_version": 1,
        "package": args.package_name,
        "dag_id": args.dag_id,
        "schedule": args.schedule,
        "start_date": args.start_date or datetime.now(timezone.utc).date().isoformat(),
        "job": {"name": args.job_name, "image": args.image},
    }
    if args.job_command:
        document["job"]["command"] = shlex.split(args.job_command)
    raw = manifests.dumps(document)
    manifests.parse(raw, file=str(manifest_path), package=args.package_name)  # refuse to write bad input
    stub_bytes = stub.render(manifest_path.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(manifest_path, raw)  # the manifest first: a stub never exists without it
    atomic_write(stub_path, stub_bytes)
    emit(
        args,
        f"wrote {manifest_path} and {stub_path}",
        {"ok": True, "dag_id": args.dag_id, "manifest": str(manifest_path), "stub": str(stub_path)},
    )
    return 0


def _generate_directory(args: argparse.Namespace) -> int:
    found = scan(args.dag_path, package=args.package_name, strict_names=False, check_stubs=False)
    stale = []
    for m in found.manifests.values():
        target = Path(naming.stub_of(m.file))
        want = stub.render(Path(m.file).name)
        if not target.exists() or target.read_bytes() != want:
            stale.append((target, want))
    if args.check:
        if stale:
            raise ManifestError(
                [
                    Problem(
                        str(t),
                        "",
                        "stub is missing or stale; run 'airflow-dag-publisher generate --dag-path'",
                    )
                    for t, _ in stale
                ]
            )
        emit(args, f"{len(found.manifests)} stubs up to date", {"ok": True, "stale": []})
        return 0
    for target, want in stale:
        atomic_write(target, want)
    emit(
        args,
        f"{len(stale)} stubs written, {len(found.manifests) - len(stale)} already up to date",
        {"ok": True, "written": [str(t) for t, _ in stale]},
    )
    return 0


# -- validate ----------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    target = args.dag_path or args.dag_file
    if target is None:
        raise ConfigError("validate needs --dag-file FILE or --dag-path DIR")
    policy = contract.resolve(args, bucket=args.bucket, environment=args.environment)
    found = scan(target, package=args.package_name, policy=policy)
    for warning in found.warnings:
        log(args, f"warning: {warning}")
    dags = sorted(found.manifests.values(), key=lambda m: m.dag_id)
    summary = [
        {"dag_id": m.dag_id, "file": m.file, "sha256": m.sha256, "tasks": [t.task_id for t in m.tasks]}
        for m in dags
    ]
    lines = [f"ok {m.file} ({m.dag_id}, {count(len(m.tasks), 'task')})" for m in dags]
    if getattr(args, "quiet", False):  # only problems (none here) and one summary line
        tasks = sum(len(m.tasks) for m in dags)
        lines = [f"ok: {count(len(dags), 'DAG')}, {count(tasks, 'task')} in {target}"]
    data = {"ok": True, "dags": summary, "problems": [], "warnings": found.warnings}
    emit(args, "\n".join(lines), {**data, "policy": contract.label(policy)})
    return 0


# -- render ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _no_airflow_deprecations() -> Iterator[None]:
    """Hide deprecation warnings that Airflow's own modules raise about Airflow's own modules: no
    manifest can act on them. Airflow 3.0 and 3.1 with newer providers warn that
    `airflow.operators.branch.BaseBranchOperator` is deprecated (a DeprecationWarning on 3.0 when
    Airflow is imported, a FutureWarning on 3.1 when the operator is built)."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category, module=r"airflow\.")
        yield


def cmd_render(args: argparse.Namespace) -> int:
    # Airflow logs "Building pod ..." at INFO on stdout, which is where the YAML goes. Its logging
    # config is read once, on first import, so this must be set before importing the factory.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    try:
        import kubernetes_validate
        import yaml

        with _no_airflow_deprecations():
            from dagfactory_s3 import factory
    except ImportError as exc:
        raise ConfigError(
            f"render needs Airflow and kubernetes-validate: pip install 'dagfactory-s3[render]' ({exc})"
        ) from None
    # kubernetes_validate.validate reads and parses its 1.8 MB of schema definitions again for every
    # pod (~20 ms of CPU a pod: 2 s of a 100-task render): read each schema file once per process instead.
    # Its own validate() still does the rest (version choice, strict schemas, errors).
    utils = kubernetes_validate.utils
    if not hasattr(utils.schema_contents, "cache_info"):
        utils.schema_contents = functools.lru_cache(maxsize=None)(utils.schema_contents)
    path = _manifest_path(args.dag_file)
    policy = contract.resolve(args, bucket=args.bucket, environment=args.environment)
    m = manifests.load(path, policy=policy)
    if "environments" in m.data:
        if not args.environment:
            raise ConfigError(f"{path} declares environments: pass --environment (or set ENVIRONMENT)")
        m = manifests.publishable(m, args.environment)
    version = args.kubernetes_version or kubernetes_validate.utils.latest_version()
    problems, documents = [], []
    with _no_airflow_deprecations():
        pods = factory.render_pods(m, policy)
    for task, task_id, pod in pods:
        try:
            kubernetes_validate.validate(pod, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            problems.append(
                Problem(
                    str(path),
                    task.where,
                    f"pod of task {task_id!r} is not a valid Kubernetes {version} Pod at {where or '/'}: {exc.message}",
                )
            )
        except kubernetes_validate.utils.VersionNotSupportedError:
            raise ConfigError(f"kubernetes version {version} is not known to kubernetes-validate") from None
        # The schema says what fields a Pod has; the API server's own rules (dagfactory_s3.k8s) say
        # what values it accepts. The manifest checks already applied them: this is the proof on the pod.
        problems.extend(
            Problem(str(path), task.where, f"pod of task {task_id!r} at {where}: {reason}")
            for where, reason in k8s.pod_problems(pod)
        )
        documents.append(pod)
    if problems:
        raise ManifestError(problems)
    if args.output == "json":
        print(orjson.dumps(documents, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
    else:
        print(yaml.safe_dump_all(documents, sort_keys=True, default_flow_style=False), end="")
    log(args, f"schedule: {schedule_text(dag_summary(m.data, m.images, len(m.tasks)))}")
    log(args, f"validated {len(documents)} pods against Kubernetes {version} schema")
    return 0


# -- schema ------------------------------------------------------------------------------------


def cmd_schema(args: argparse.Namespace) -> int:
    print(schema_text(), end="")
    return 0
