"""The publisher's local commands: ``generate``, ``validate``, ``render`` and ``schema``.

None of them needs S3; only ``render`` needs Airflow (it builds pods with the operator's own code).
"""

from __future__ import annotations

import argparse
import os
import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from dagfactory_s3 import manifest as manifests
from dagfactory_s3 import naming, stub
from dagfactory_s3.errors import ConfigError, ManifestError, Problem
from dagfactory_s3.fs import atomic_write
from dagfactory_s3.publisher.scan import scan
from dagfactory_s3.publisher.terminal import add_output, add_setting, emit
from dagfactory_s3.schema import schema_text

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="write a manifest and its stub, or (re)generate the stubs of a directory"
    )
    add_setting(p, "package_name", help="package that owns the DAG", required=False)
    p.add_argument("--dag-id", help="DAG id, <package>_<name>")
    p.add_argument("--job-name", help="task id of the single job")
    p.add_argument("--image-tag", help="container image with a pinned tag or digest")
    p.add_argument(
        "--output", dest="output_file", type=Path, help="stub path X.py; the manifest goes to X.json"
    )
    p.add_argument("--command", dest="job_command", help="job command line (split like a shell)")
    p.add_argument("--schedule", help="cron expression or preset; default: none (manual)")
    p.add_argument("--start-date", help="absolute start date YYYY-MM-DD (default: today, timezone.utc)")
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

    p = sub.add_parser("validate", help="check manifests and stubs: a file or a whole directory")
    add_setting(p, "package_name", help="package the manifests must belong to", required=False)
    p.add_argument("--dag-file", type=Path, help="a manifest (.json), a stub (.py) or a directory")
    p.add_argument("--dag-path", type=Path, help="a directory of manifests and stubs")
    add_output(p)
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser(
        "render", help="print the Kubernetes pod of every task as YAML (needs the [render] extra)"
    )
    p.add_argument("--dag-file", type=Path, required=True, help="a manifest (.json) or its stub (.py)")
    p.add_argument(
        "--kubernetes-version",
        default=None,
        help="Kubernetes version to validate against (default: newest known)",
    )
    p.add_argument("--output", choices=("yaml", "json"), default="yaml")
    p.set_defaults(handler=cmd_render)

    p = sub.add_parser("schema", help="print the job manifest JSON Schema")
    p.set_defaults(handler=cmd_schema)


def _manifest_path(path: Path) -> Path:
    return path.with_name(naming.manifest_of(path.name)) if path.suffix == ".py" else path


# -- generate ----------------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> int:
    if args.dag_path is not None:
        return _generate_directory(args)
    missing = [
        f for f in ("package_name", "dag_id", "job_name", "image_tag", "output_file") if not getattr(args, f)
    ]
    if missing:
        flags = ", ".join("--" + f.replace("_", "-").replace("output-file", "output") for f in missing)
        raise ConfigError(f"generate needs {flags} (or --dag-path DIR to regenerate stubs)")
    out: Path = args.output_file
    if out.suffix != ".py":
        raise ConfigError(
            f"{out}: --output must name the stub file, ending in .py (the manifest goes next to it)"
        )
    manifest_path = out.with_name(naming.manifest_of(out.name))
    if manifest_path.exists() and not args.force:
        raise ConfigError(f"{manifest_path}: already exists; pass --force to overwrite it")
    document: dict[str, Any] = {
        "schema_version": 1,
        "package": args.package_name,
        "dag_id": args.dag_id,
        "schedule": args.schedule,
        "start_date": args.start_date or datetime.now(timezone.utc).date().isoformat(),
        "job": {"name": args.job_name, "image": args.image_tag},
    }
    if args.job_command:
        document["job"]["command"] = shlex.split(args.job_command)
    raw = orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"
    manifests.parse(raw, file=str(manifest_path), package=args.package_name)  # refuse to write bad input
    stub_bytes = stub.render(manifest_path.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(manifest_path, raw)  # the manifest first: a stub never exists without it
    atomic_write(out, stub_bytes)
    print(f"wrote {manifest_path} and {out}")
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
        print(f"{len(found.manifests)} stubs up to date")
        return 0
    for target, want in stale:
        atomic_write(target, want)
    print(f"{len(stale)} stubs written, {len(found.manifests) - len(stale)} already up to date")
    return 0


# -- validate ----------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    target = args.dag_path or args.dag_file
    if target is None:
        raise ConfigError("validate needs --dag-file FILE or --dag-path DIR")
    if not target.exists():
        raise ConfigError(f"{target}: no such file or directory")
    if target.is_dir():
        found = scan(target, package=args.package_name, strict_names=False)
        dags = sorted(found.manifests.values(), key=lambda m: m.dag_id)
    else:
        if target.suffix == ".py" and not stub.is_canonical(target.name, target.read_bytes()):
            raise ManifestError(
                [
                    Problem(
                        str(target),
                        "",
                        "not the canonical stub (edited or stale); regenerate it with 'airflow-dag-publisher generate --dag-path'",
                    )
                ]
            )
        if target.suffix not in (".py", ".json"):
            raise ConfigError(f"{target}: expected a .json manifest, a .py stub or a directory")
        dags = [manifests.load(_manifest_path(target), package=args.package_name)]
    summary = [
        {"dag_id": m.dag_id, "file": m.file, "sha256": m.sha256, "tasks": [t.task_id for t in m.tasks]}
        for m in dags
    ]
    emit(
        args,
        "\n".join(f"ok {m.file} ({m.dag_id}, {len(m.tasks)} tasks)" for m in dags),
        {"ok": True, "dags": summary, "problems": []},
    )
    return 0


# -- render ------------------------------------------------------------------------------------


def cmd_render(args: argparse.Namespace) -> int:
    # Airflow logs "Building pod ..." at INFO on stdout, which is where the YAML goes. Its logging
    # config is read once, on first import, so this must be set before importing the factory.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    try:
        import kubernetes_validate
        import yaml

        from dagfactory_s3 import factory
    except ImportError as exc:
        raise ConfigError(
            f"render needs Airflow and kubernetes-validate: pip install 'dagfactory-s3[render]' ({exc})"
        ) from None
    path = _manifest_path(args.dag_file)
    m = manifests.load(path)
    version = args.kubernetes_version or kubernetes_validate.utils.latest_version()
    problems, documents = [], []
    for task, (task_id, pod) in zip(m.tasks, factory.render_pods(m), strict=True):
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
        documents.append(pod)
    if problems:
        raise ManifestError(problems)
    if args.output == "json":
        print(orjson.dumps(documents, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
    else:
        print(yaml.safe_dump_all(documents, sort_keys=True, default_flow_style=False), end="")
    return 0


# -- schema ------------------------------------------------------------------------------------


def cmd_schema(args: argparse.Namespace) -> int:
    print(schema_text(), end="")
    return 0
