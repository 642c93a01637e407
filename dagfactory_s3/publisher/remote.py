"""The publisher's commands that talk to S3: publish, plan, list, rollback, retire, iam-policy.

Each handler turns flags into plain values, calls the domain (:mod:`~dagfactory_s3.publisher.transaction`
for releases, :mod:`~dagfactory_s3.publisher.diff` for what a plan changes,
:mod:`~dagfactory_s3.publisher.status` and :mod:`~dagfactory_s3.publisher.history` for ``list``) and
turns its plain data into text or JSON; progress lines are the callbacks it hands the domain. The
domain knows nothing about argparse and prints nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from dagfactory_s3 import settings
from dagfactory_s3.errors import ConfigError
from dagfactory_s3.naming import history_name
from dagfactory_s3.platform import Policy
from dagfactory_s3.publisher import contract, iam
from dagfactory_s3.publisher.diff import dag_changes, dag_counts
from dagfactory_s3.publisher.history import rollback_target
from dagfactory_s3.publisher.scan import missing_stubs
from dagfactory_s3.publisher.status import package_statuses
from dagfactory_s3.publisher.store import PackageStore
from dagfactory_s3.publisher.terminal import (
    Progress,
    add_output,
    add_setting,
    command,
    count,
    emit,
    log,
    require,
    schedule_text,
)
from dagfactory_s3.publisher.transaction import (
    DEFAULT_GC_GRACE,
    DEFAULT_KEEP,
    ReleasePlan,
    Stop,
    execute,
    make_plan,
    promote,
    retire,
    rollback,
    wanted_from_dir,
)
from dagfactory_s3.s3 import client as s3_client

__all__ = ["register"]


def _target_flags(p: argparse.ArgumentParser, *, package_help: str | None = None) -> None:
    add_setting(p, "bucket")
    add_setting(p, "environment")
    add_setting(p, "package_name", help=package_help)
    add_setting(p, "parallelism")
    add_output(p)


_TARGET = "--bucket etl-airflow-dags-dev --environment dev --package-name pipeline_processing"
_CONFIRM = (
    "Commands that change what another environment or a past release serves (promote, rollback, retire) "
    "print their plan and write nothing unless --yes is given."
)


def register(sub: argparse._SubParsersAction) -> None:
    for name, summary, examples in (
        (
            "publish",
            "validate a directory and publish it as one atomic release of the package",
            [
                f"airflow-dag-publisher publish {_TARGET} --dag-path airflow_dags",
                "DAG_BUCKET=etl-airflow-dags-dev ENVIRONMENT=dev DAG_PACKAGE_NAME=pipeline_processing \\\n"
                "      airflow-dag-publisher publish --dag-path airflow_dags --package-version 1.4.0 --git-sha $SHA",
                f"airflow-dag-publisher publish {_TARGET} --dag-path airflow_dags --output json --quiet",
            ],
        ),
        (
            "plan",
            "show what publish would change, field by field; write nothing",
            [
                f"airflow-dag-publisher plan {_TARGET} --dag-path airflow_dags",
                f"airflow-dag-publisher plan {_TARGET} --dag-path airflow_dags --detailed-exitcode  # 2: changes",
                f"airflow-dag-publisher plan {_TARGET} --dag-path airflow_dags --output json",
            ],
        ),
    ):
        p = command(
            sub,
            name,
            summary,
            examples,
            "Validates with the same rules as 'validate' first, under the platform policy published for\n"
            "--environment (or --policy FILE).",
        )
        _target_flags(p)
        p.add_argument(
            "--dag-path", type=Path, required=True, help="directory of manifests (and optionally their stubs)"
        )
        p.add_argument(
            "--package-version",
            help="version recorded in the release record and stamped on changed manifests",
        )
        p.add_argument(
            "--git-sha",
            help="commit recorded in the release record and stamped on changed manifests "
            "[default: GITHUB_SHA, CI_COMMIT_SHA, else none]",
        )
        contract.add_flags(p)
        _detailed_exitcode(p)
        if name == "publish":
            p.add_argument("--dry-run", action="store_true", help="print the plan, write nothing (= 'plan')")
            add_setting(p, "keep")
            add_setting(p, "gc_grace")
            add_setting(p, "published_by")
        p.set_defaults(handler=cmd_publish, dry_run=name == "plan")

    p = command(
        sub,
        "promote",
        "publish the sources a release of another environment recorded, resolved for this one",
        [
            "airflow-dag-publisher promote --bucket etl-airflow-dags --package-name pipeline_processing --from dev --to prod    # the plan",
            "airflow-dag-publisher promote --bucket etl-airflow-dags --package-name pipeline_processing \\\n"
            "      --from dev --to prod --release 20240101T120000.123Z-1a2b3c --yes",
        ],
        "Reads S3 only (no --dag-path): the source manifests the release recorded, each verified by its "
        "sha256, resolved for --to, checked with the same rules as 'publish' (under the platform policy "
        "published for --to, or --policy FILE), published to "
        "--to as one atomic release that records where it came from. Both environments must be in one bucket. "
        + _CONFIRM,
    )
    add_setting(p, "bucket")
    add_setting(p, "package_name")
    p.add_argument("--from", dest="source", required=True, help="environment whose release is promoted")
    p.add_argument("--to", dest="target", required=True, help="environment to publish to")
    p.add_argument(
        "--release",
        help="release id of --from to promote (see 'list --history') [default: its current release]",
    )
    add_setting(p, "parallelism")
    add_output(p)
    contract.add_flags(p)
    _confirm_flags(p, "promote")
    _detailed_exitcode(p)
    add_setting(p, "keep")
    add_setting(p, "gc_grace")
    add_setting(p, "published_by")
    p.set_defaults(handler=cmd_promote)

    p = command(
        sub,
        "list",
        "show a package's current release and DAGs, and whether S3 matches its release record",
        [
            f"airflow-dag-publisher list {_TARGET}",
            f"airflow-dag-publisher list {_TARGET} --history",
            "airflow-dag-publisher list --bucket etl-airflow-dags-dev --environment dev --all-packages --check",
        ],
        "--check exits 1 when S3 disagrees with any listed release record.",
    )
    _target_flags(p, package_help="package to list (or --all-packages)")
    p.add_argument("--all-packages", action="store_true", help="list every package of the environment")
    p.add_argument(
        "--history",
        action="store_true",
        help="also list the kept releases, newest first: id, date, version, git sha, publisher, DAGs, rollbacks",
    )
    p.add_argument("--check", action="store_true", help="exit 1 when S3 disagrees with a release record")
    p.set_defaults(handler=cmd_list)

    p = command(
        sub,
        "rollback",
        "re-publish the exact files of a kept release as a new release",
        [
            f"airflow-dag-publisher rollback {_TARGET} --to previous          # show the plan",
            f"airflow-dag-publisher rollback {_TARGET} --to previous --yes    # do it",
            f"airflow-dag-publisher rollback {_TARGET} --to 20240101T120000.123Z-1a2b3c --yes",
        ],
        _CONFIRM,
    )
    _target_flags(p)
    p.add_argument(
        "--to",
        dest="to",
        required=True,
        help="release id (see 'list --history'), or 'previous': the release before the current one",
    )
    _confirm_flags(p, "roll back")
    _detailed_exitcode(p)
    add_setting(p, "keep")
    add_setting(p, "gc_grace")
    add_setting(p, "published_by")
    p.set_defaults(handler=cmd_rollback)

    p = command(
        sub,
        "retire",
        "remove a package: write a tombstone release, then delete its DAGs (history is kept)",
        [f"airflow-dag-publisher retire {_TARGET}", f"airflow-dag-publisher retire {_TARGET} --yes"],
        _CONFIRM,
    )
    _target_flags(p)
    _confirm_flags(p, "retire")
    add_setting(p, "published_by")
    p.set_defaults(handler=cmd_retire)

    p = command(
        sub,
        "iam-policy",
        "print least-privilege IAM policies for the package's CI role and for Airflow",
        [
            f"airflow-dag-publisher iam-policy {_TARGET} > policies.json",
            "airflow-dag-publisher iam-policy --bucket etl-airflow-dags --environment prod "
            "--package-name pipeline_processing --promote-from dev "
            "--queue-arn arn:aws:sqs:us-east-1:123456789012:dag-processor-sync --bundle-index",
            "airflow-dag-publisher iam-policy --bucket etl-airflow-dags --environment prod --platform",
        ],
    )
    add_setting(p, "bucket")
    add_setting(p, "environment")
    add_setting(p, "package_name", help="package whose CI role the policy is for")
    p.add_argument(
        "--promote-from",
        action="append",
        default=[],
        metavar="ENV",
        help="an environment the role promotes from: adds read access to the package's records and "
        "content there, nothing else (repeatable)",
    )
    p.add_argument(
        "--platform",
        action="store_true",
        help="print the platform role's policy instead: it alone writes <env>/_platform/ ('policy publish')",
    )
    p.add_argument(
        "--queue-arn",
        action="append",
        default=[],
        metavar="ARN",
        help="an SQS queue Airflow reads S3 events from (push delivery): adds sqs:ReceiveMessage and "
        "sqs:DeleteMessage on it to Airflow's role, nothing else (repeatable)",
    )
    p.add_argument(
        "--bundle-index",
        action="store_true",
        help="Airflow serves through the versioned DAG bundle: lets its role write and read the bundle's "
        "version indexes (s3://<bucket>/_bundle/<env>/ only), so a task start reads one object",
    )
    p.set_defaults(handler=cmd_iam_policy)


def _detailed_exitcode(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when nothing would change, 2 when changes are pending, 1 on any error",
    )


def _confirm_flags(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument(
        "--yes", action="store_true", help=f"really {verb} (without it: print the plan, write nothing)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan, write nothing (the default)")


def _store(
    args: argparse.Namespace, package: str | None = None, environment: str | None = None
) -> PackageStore:
    client = s3_client(max_pool_connections=max(10, args.parallelism + 2))
    return PackageStore(client, args.bucket, environment or args.environment, package or args.package_name)


def _interruptible(handler: Any) -> Any:
    """While ``handler`` runs, SIGINT/SIGTERM stop it between requests, never inside the commit."""

    def run(args: argparse.Namespace) -> int:
        with Stop() as stop:
            return handler(args, stop)

    return run


# -- plan and apply: drawing what changes, DAG by DAG and field by field ----------------------

_WIDTH = 60
_WHOLE = 300  # a string this long is shown whole: the middle of an image reference is what changed


def _value(change: dict[str, Any], side: str) -> str:
    if side not in change:
        return "(unset)"
    value = change[side]
    text = orjson.dumps(value).decode()
    if isinstance(value, str) and len(text) <= _WHOLE:  # an image reference, a command: shown whole
        return text
    if len(text) > _WIDTH:  # keep the end: a long list's last item
        text = text[:16] + "…" + text[-(_WIDTH - 17) :]
    return text


def _show(change: dict[str, Any]) -> str:
    """``/pointer: old → new``, long values elided in the middle."""
    return f"{change['pointer']}: {_value(change, 'old')} → {_value(change, 'new')}"


def _plan_lines(dags: list[dict[str, Any]]) -> list[str]:
    sign = {"add": "+", "change": "~", "delete": "-"}
    lines = []
    for d in dags:
        lines.append(f"  {sign[d['action']]} {d['dag_id']}" + (f"  ({d['note']})" if d.get("note") else ""))
        lines += [f"      {_show(c)}" for c in d["changes"]]
        if "schedule" in d:  # an added DAG's, or a changed one's new schedule or time zone
            lines.append(f"      schedule: {schedule_text(d)}")
    return lines


def _plan_data(args: argparse.Namespace, plan: ReleasePlan) -> dict[str, Any]:
    bar: Progress | None = None

    def reading(total: int) -> Callable[[], None]:
        nonlocal bar
        bar = Progress("reading", total, tty=_tty(args), quiet=args.quiet or total < 20)
        return bar.step

    try:
        dags = dag_changes(plan, fields=args.dry_run, parallelism=args.parallelism, reading=reading)
    finally:
        if bar:
            bar.close()
    return {
        "ok": True,
        **plan.to_dict(),
        "dags": dags,
        "summary": dag_counts(plan, dags),
        "changes_pending": not plan.noop,
    }


def _apply(
    args: argparse.Namespace,
    plan: ReleasePlan,
    verb: str,
    stop: Stop,
    *,
    to: str = "",
    policy: Policy | None = None,
) -> int:
    """Show or apply ``plan``; ``policy``: the platform policy its manifests were checked against (none
    for rollback and retire, which check nothing)."""
    plan.wanted.published_by = getattr(args, "published_by", None) or settings.ci_identity(os.environ)
    for warning in plan.warnings:
        log(args, f"warning: {warning}")
    store = plan.store
    where = f"{store.package} in s3://{store.bucket}/{store.prefix}"
    data = _plan_data(args, plan)
    if policy is not None:
        data["policy"] = contract.label(policy)
    n = data["summary"]
    pending = 2 if getattr(args, "detailed_exitcode", False) and data["changes_pending"] else 0
    if args.dry_run:
        summary = f"Plan: {n['add']} to add, {n['change']} to change, {n['delete']} to delete, {n['unchanged']} unchanged."
        if not data["changes_pending"]:
            summary = f"No changes: release {data['current_release_id']} is up to date ({count(n['unchanged'], 'DAG')})."
        emit(
            args,
            "\n".join([f"plan for {where}:", *_plan_lines(data["dags"]), summary]),
            {**data, "dry_run": True},
        )
        return pending
    bar = Progress("uploading", len(plan.uploads), tty=_tty(args), quiet=args.quiet)
    try:
        record = execute(
            plan,
            keep=getattr(args, "keep", DEFAULT_KEEP),
            parallelism=args.parallelism,
            on_upload=bar.step,
            stop=stop,
            gc_grace=getattr(args, "gc_grace", DEFAULT_GC_GRACE),
        )
    finally:  # the line ends before any error is printed
        bar.close()
    data.update(dry_run=False, changed=record is not None)
    if record is None:
        data["release_id"] = data["current_release_id"]
        emit(args, f"{where}: up to date, release {data['release_id']} stays current (nothing written)", data)
        return pending
    data.update(release_id=record.release_id, previous_release_id=record.previous_release_id)
    after = f" after {record.previous_release_id}" if record.previous_release_id else " (first release)"
    counts = f"added {n['add']}, changed {n['change']}, deleted {n['delete']}, unchanged {n['unchanged']}"
    lines = [f"{verb} {where}{to}: release {record.release_id}{after}"]
    if not args.quiet:
        lines += _plan_lines(data["dags"])
    emit(args, "\n".join([*lines, f"  {counts}"]), data)
    return pending


def _tty(args: argparse.Namespace) -> bool:
    return sys.stderr.isatty() and getattr(args, "output", "text") != "json"


@_interruptible
def cmd_publish(args: argparse.Namespace, stop: Stop) -> int:
    require(args, "bucket", "environment", "package_name")
    store = PackageStore(None, args.bucket, args.environment, args.package_name)  # names first, no client yet
    labels = _release_labels(args)
    store.client = _store(args).client
    policy = contract.resolve(args, bucket=store.bucket, environment=store.environment, client=store.client)
    # invalid input: nothing else is read or written; manifests with environments are resolved for this one
    wanted = wanted_from_dir(args.dag_path, store.package, policy=policy, environment=args.environment)
    for warning in missing_stubs(sorted(args.dag_path.glob("*.json"))):  # as validate warns
        log(args, f"warning: {warning}")
    wanted.package_version, wanted.git_sha = labels
    plan = make_plan(store, wanted, parallelism=args.parallelism)
    return _apply(args, plan, "published", stop, policy=policy)


@_interruptible
def cmd_promote(args: argparse.Namespace, stop: Stop) -> int:
    require(args, "bucket", "package_name")
    if args.release is not None:
        history_name(args.release)  # a release id, not a path
    source = PackageStore(None, args.bucket, args.source, args.package_name)  # names first, no client yet
    target = PackageStore(None, args.bucket, args.target, args.package_name)
    if source.environment == target.environment:
        raise ConfigError(
            f"--from and --to are both {source.environment!r}; promote between two environments"
        )
    source.client = target.client = _store(args, environment=args.target).client
    # the target's policy: what Airflow there will check the promoted manifests against
    policy = contract.resolve(
        args, bucket=target.bucket, environment=target.environment, client=target.client
    )
    plan = promote(source, target, args.release, policy=policy, parallelism=args.parallelism)
    _confirm(args, "promote")
    origin = plan.wanted.promoted_from
    return _apply(args, plan, "promoted", stop, to=f" from {origin}", policy=policy)


def _release_labels(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """--package-version, and --git-sha or the commit CI builds (GITHUB_SHA, CI_COMMIT_SHA)."""
    version = args.package_version and settings.release_label("--package-version", args.package_version)
    commit = ("--git-sha", args.git_sha) if args.git_sha else settings.ci_commit(os.environ)
    return version, commit and settings.release_label(*commit)


def _confirm(args: argparse.Namespace, verb: str) -> None:
    """The one confirm model: without --yes, a destructive command is a dry run."""
    if not args.yes and not args.dry_run:
        log(args, f"dry run: pass --yes to {verb}")
    args.dry_run = args.dry_run or not args.yes


@_interruptible
def cmd_rollback(args: argparse.Namespace, stop: Stop) -> int:
    require(args, "bucket", "environment", "package_name")
    store = _store(args)
    target = rollback_target(store, args.to)
    plan = rollback(store, target, parallelism=args.parallelism)
    _confirm(args, "roll back")
    return _apply(args, plan, "rolled back", stop, to=f" to the files of {target}")


@_interruptible
def cmd_retire(args: argparse.Namespace, stop: Stop) -> int:
    require(args, "bucket", "environment", "package_name")
    plan = retire(_store(args))
    _confirm(args, "retire")
    return _apply(args, plan, "retired", stop)


# -- list --------------------------------------------------------------------------------------


def _history_line(h: dict[str, Any]) -> str:
    parts = [
        h["release_id"],
        h["published_at"],
        f"version {h['package_version'] or '-'}",
        f"git {(h['git_sha'] or '-')[:12]}",
        f"by {h['published_by'] or '-'}",
        h["publisher"],
        "retired (tombstone)" if h["tombstone"] else count(h["dags"], "DAG"),
    ]
    marks = (
        (["rollback to " + h["rollback_of"]] if h["rollback_of"] else [])
        + (["promoted from " + h["promoted_from"]] if h.get("promoted_from") else [])
        + (["current"] if h["current"] else [])
    )
    return "    " + "  ".join(parts) + (f"  ({', '.join(marks)})" if marks else "")


def _status_text(s: dict[str, Any]) -> str:
    head = f"{s['package']} in {s['environment']}: "
    if s["release_id"] is None:
        lines = [head + "no release" + (f" ({s['problem']})" if "problem" in s else "")]
    else:
        lines = [
            head
            + f"release {s['release_id']} published {s['published_at']}"
            + (f", version {s['package_version']}" if s.get("package_version") else "")
            + (f", git {s['git_sha']}" if s.get("git_sha") else "")
            + (f", by {s['published_by']}" if s.get("published_by") else "")
            + (
                f", promoted from {s['promoted_from']['environment']} release {s['promoted_from']['release_id']}"
                if s.get("promoted_from")
                else ""
            )
            + (" (retired: tombstone)" if s.get("tombstone") else "")
        ]
        lines += [f"  {d['dag_id']}  {schedule_text(d)}  {', '.join(d.get('images', []))}" for d in s["dags"]]
    if s["consistent"]:
        lines.append("  S3 matches the release record")
    for kind in ("content_missing", "missing", "extra", "mismatched"):
        lines += [f"  {kind}: {r}" for r in s[kind]]
    if "history" in s:
        lines.append("  history (newest first):")
        lines += [_history_line(h) for h in s["history"]]
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    require(args, "bucket", "environment")
    client = _store(args, package="x").client
    if not args.all_packages and not args.package_name:
        raise ConfigError("list needs --package-name (or DAG_PACKAGE_NAME) or --all-packages")
    results = package_statuses(
        client,
        args.bucket,
        args.environment,
        None if args.all_packages else args.package_name,
        history=args.history,
        parallelism=args.parallelism,
    )
    bad = [r["package"] for r in results if not r["consistent"]] if args.check else []
    emit(
        args,
        "\n".join(_status_text(r) for r in results),
        {"ok": not bad, "packages": results} if args.all_packages else {"ok": not bad, **results[0]},
    )
    if bad:  # an error, so --quiet does not hide it
        print(f"error: S3 does not match the release record of {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


def cmd_iam_policy(args: argparse.Namespace) -> int:
    if args.platform:
        require(args, "bucket", "environment")
        if args.promote_from:
            raise ConfigError("--promote-from is for a package's CI role, not --platform")
        if args.queue_arn or args.bundle_index:
            flag = "--queue-arn" if args.queue_arn else "--bundle-index"
            raise ConfigError(f"{flag} is for Airflow's role, not --platform")
        print(iam.dumps({"platform_role": iam.platform_policy(args.bucket, args.environment)}), end="")
        return 0
    require(args, "bucket", "environment", "package_name")
    print(
        iam.dumps(
            iam.policies(
                args.bucket,
                args.environment,
                args.package_name,
                args.promote_from,
                args.queue_arn,
                bundle_index=args.bundle_index,
            )
        ),
        end="",
    )
    return 0
