"""The publisher's commands that talk to S3: publish, plan, list, rollback, retire, iam-policy.

Each handler turns flags into a :mod:`~dagfactory_s3.publisher.transaction` call and its result into
text or JSON; the release engine itself knows nothing about argparse.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import sys
from pathlib import Path
from typing import Any

import orjson

from dagfactory_s3.errors import ConfigError
from dagfactory_s3.naming import DAGS_DIR, history_name, object_name
from dagfactory_s3.publisher import iam
from dagfactory_s3.publisher.store import PackageStore, env_packages
from dagfactory_s3.publisher.terminal import add_output, add_setting, emit
from dagfactory_s3.publisher.transaction import (
    DEFAULT_GC_GRACE,
    DEFAULT_KEEP,
    DEFAULT_PARALLELISM,
    ReleasePlan,
    Stop,
    execute,
    history_ids,
    make_plan,
    parallel,
    retire,
    rollback,
    wanted_from_dir,
)
from dagfactory_s3.release import CONTENT_OBJECTS
from dagfactory_s3.s3 import client as s3_client

__all__ = ["register", "status"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def status(store: PackageStore, *, parallelism: int = DEFAULT_PARALLELISM) -> dict[str, Any]:
    """The current record and whether S3 agrees with it.

    ``content_missing``: manifests the record names whose immutable content is not in the content
    store (what readers fetch: a reader could not serve the release). ``missing``, ``extra`` and
    ``mismatched``: the readable ``dags/`` copies against the record.
    """
    current = store.current()
    listing = store.list()
    rec = current.record
    out: dict[str, Any] = {
        "package": store.package,
        "environment": store.environment,
        "release_id": None,
        "dags": [],
    }
    if current.problem:
        out["problem"] = current.problem
    live = {r for r in listing if r.startswith(f"{DAGS_DIR}/")}
    if rec is None:
        out.update(
            consistent=not live,
            content_missing=[],
            missing=[],
            extra=sorted(live),
            mismatched=[],
            history=history_ids(listing, None),
        )
        return out
    content_missing = sorted(
        rest
        for rest, entry in rec.files.items()
        if rec.content == CONTENT_OBJECTS
        and rest.endswith(".json")
        and getattr(listing.get(object_name(entry.sha256)), "size", None) != entry.size
    )
    missing = sorted(r for r in rec.files if r not in listing)
    extra = sorted(live - set(rec.files))
    unsure = []
    mismatched = []
    etags = {rest: entry.md5 for rest, entry in rec.files.items() if entry.md5}
    if not etags and history_name(rec.release_id) in listing:  # a record of 0.2 or older: its history copy
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            etags = orjson.loads(store.get(history_name(rec.release_id)) or b"{}").get("etags") or {}
    for rest, entry in sorted(rec.files.items()):
        listed = listing.get(rest)
        if listed is None:
            continue
        if listed.size != entry.size:
            mismatched.append(rest)
        elif etags.get(rest) != listed.etag:
            unsure.append(rest)  # no MD5 to compare with (or it differs): read the bytes
    datas = parallel(store.get, unsure, parallelism)
    mismatched += [
        r for r, d in zip(unsure, datas, strict=True) if d is None or _sha(d) != rec.files[r].sha256
    ]
    out.update(
        release_id=rec.release_id,
        previous_release_id=rec.previous_release_id,
        published_at=rec.published_at,
        package_version=rec.package_version,
        git_sha=rec.git_sha,
        tombstone=rec.tombstone,
        images=list(rec.images),
        dags=[{"dag_id": d, **rec.dags[d]} for d in sorted(rec.dags)],
        content_missing=content_missing,
        missing=missing,
        extra=extra,
        mismatched=sorted(mismatched),
        consistent=not (content_missing or missing or extra or mismatched),
        history=history_ids(listing, rec),
    )
    return out


def _target_flags(p: argparse.ArgumentParser, *, package: bool = True) -> None:
    add_setting(p, "bucket")
    add_setting(p, "environment")
    if package:
        add_setting(p, "package_name")
    add_setting(p, "parallelism")
    add_output(p)


def register(sub: argparse._SubParsersAction) -> None:
    for name, helptext in (
        ("publish", "publish a package's DAGs as one atomic release"),
        ("plan", "show what publish would change (a dry run)"),
    ):
        p = sub.add_parser(name, help=helptext)
        _target_flags(p)
        p.add_argument(
            "--dag-path", type=Path, required=True, help="directory of manifests (and optionally their stubs)"
        )
        p.add_argument("--package-version", help="version recorded in the release record")
        p.add_argument("--git-sha", help="commit recorded in the release record")
        if name == "publish":
            p.add_argument(
                "--dry-run", action="store_true", help="print the plan, write nothing (same as 'plan')"
            )
            add_setting(p, "keep")
            add_setting(p, "gc_grace")
        p.set_defaults(handler=cmd_publish, dry_run=name == "plan")

    p = sub.add_parser("list", help="list a package's published DAGs and check S3 against its release record")
    _target_flags(p, package=False)
    add_setting(p, "package_name", help="package to list", required=False)
    p.add_argument("--all-packages", action="store_true", help="list every package of the environment")
    p.add_argument("--history", action="store_true", help="also list the release ids kept for rollback")
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("rollback", help="re-publish the exact files of an earlier release")
    _target_flags(p)
    p.add_argument("--to", dest="to", required=True, help="release id (see 'list --history')")
    p.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    add_setting(p, "keep")
    add_setting(p, "gc_grace")
    p.set_defaults(handler=cmd_rollback)

    p = sub.add_parser("retire", help="remove a package: write a tombstone release, then delete its DAGs")
    _target_flags(p)
    p.add_argument(
        "--yes", action="store_true", help="really retire (without it: print what would be deleted)"
    )
    p.set_defaults(handler=cmd_retire)

    p = sub.add_parser(
        "iam-policy", help="print least-privilege IAM policies for the package CI role and Airflow"
    )
    add_setting(p, "bucket")
    add_setting(p, "environment")
    add_setting(p, "package_name", help="package whose CI role the policy is for")
    p.set_defaults(handler=cmd_iam_policy)


def _store(args: argparse.Namespace, package: str | None = None) -> PackageStore:
    client = s3_client(max_pool_connections=max(10, args.parallelism + 2))
    return PackageStore(client, args.bucket, args.environment, package or args.package_name)


def _warn(plan: ReleasePlan) -> None:
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _plan_text(plan: ReleasePlan) -> str:
    lines = (
        [f"  + {r}" for r in plan.add] + [f"  ~ {r}" for r in plan.update] + [f"  - {r}" for r in plan.delete]
    )
    lines.append(
        f"  {len(plan.add)} to add, {len(plan.update)} to update, {len(plan.delete)} to delete, {len(plan.unchanged)} unchanged"
    )
    return "\n".join(lines)


def _interruptible(handler: Any) -> Any:
    """While ``handler`` runs, SIGINT/SIGTERM stop it between requests, never inside the commit."""

    def run(args: argparse.Namespace) -> int:
        with Stop() as stop:
            return handler(args, stop)

    return run


def _apply(args: argparse.Namespace, plan: ReleasePlan, verb: str, stop: Stop) -> int:
    _warn(plan)
    store = plan.store
    where = f"{store.package} in s3://{store.bucket}/{store.prefix}"
    if args.dry_run:
        emit(args, f"plan for {where}:\n{_plan_text(plan)}", {"ok": True, "dry_run": True, **plan.to_dict()})
        return 0
    record = execute(
        plan,
        keep=getattr(args, "keep", DEFAULT_KEEP),
        parallelism=args.parallelism,
        progress=sys.stderr.isatty(),
        stop=stop,
        gc_grace=getattr(args, "gc_grace", DEFAULT_GC_GRACE),
    )
    data = {"ok": True, "dry_run": False, **plan.to_dict(), "changed": record is not None}
    if record is None:
        rec = plan.current.record
        data["release_id"] = rec.release_id if rec else None
        emit(args, f"{where}: up to date, release {data['release_id']} stays current (nothing written)", data)
        return 0
    data.update(release_id=record.release_id, previous_release_id=record.previous_release_id)
    emit(
        args,
        f"{verb} {where}: release {record.release_id} (previous {record.previous_release_id})\n{_plan_text(plan)}",
        data,
    )
    return 0


@_interruptible
def cmd_publish(args: argparse.Namespace, stop: Stop) -> int:
    store = PackageStore(None, args.bucket, args.environment, args.package_name)  # names first, no client yet
    wanted = wanted_from_dir(args.dag_path, store.package)  # invalid input: nothing else happens
    store.client = _store(args).client
    wanted.package_version, wanted.git_sha = args.package_version, args.git_sha
    return _apply(args, make_plan(store, wanted, parallelism=args.parallelism), "published", stop)


@_interruptible
def cmd_rollback(args: argparse.Namespace, stop: Stop) -> int:
    store = _store(args)
    history_name(args.to)  # a release id, not a path
    plan = rollback(store, args.to, parallelism=args.parallelism)
    return _apply(args, plan, f"rolled back to {args.to}:", stop)


@_interruptible
def cmd_retire(args: argparse.Namespace, stop: Stop) -> int:
    store = _store(args)
    plan = retire(store)
    args.dry_run = not args.yes
    if not args.yes:
        print("dry run: pass --yes to retire", file=sys.stderr)
    return _apply(args, plan, "retired", stop)


def _status_text(s: dict[str, Any], history: bool) -> str:
    head = f"{s['package']} in {s['environment']}: "
    if s["release_id"] is None:
        lines = [head + "no release" + (f" ({s['problem']})" if "problem" in s else "")]
    else:
        lines = [
            head
            + f"release {s['release_id']} published {s['published_at']}"
            + (f", version {s['package_version']}" if s.get("package_version") else "")
            + (f", git {s['git_sha']}" if s.get("git_sha") else "")
            + (" (retired: tombstone)" if s.get("tombstone") else "")
        ]
        for d in s["dags"]:
            lines.append(
                f"  {d['dag_id']}  schedule={d.get('schedule')}  image={', '.join(d.get('images', []))}"
            )
    if s["consistent"]:
        lines.append("  S3 matches the release record")
    for kind in ("content_missing", "missing", "extra", "mismatched"):
        lines += [f"  {kind}: {r}" for r in s[kind]]
    if history:
        lines += [
            f"  release {r}" + (" (current)" if r == s["release_id"] else "") for r in reversed(s["history"])
        ]
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    if args.all_packages:
        names = env_packages(s3_client(), args.bucket, args.environment)
    elif args.package_name:
        names = [args.package_name]
    else:
        raise ConfigError("list needs --package-name (or DAG_PACKAGE_NAME) or --all-packages")
    results = [status(_store(args, package=n), parallelism=args.parallelism) for n in names]
    if not args.history:
        for r in results:
            r.pop("history", None)
    text = "\n".join(_status_text(r, args.history) for r in results) or "no packages"
    emit(args, text, {"ok": True, "packages": results} if args.all_packages else {"ok": True, **results[0]})
    return 0


def cmd_iam_policy(args: argparse.Namespace) -> int:
    print(iam.dumps(iam.policies(args.bucket, args.environment, args.package_name)), end="")
    return 0
