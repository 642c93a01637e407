"""``airflow-dag-publisher policy``: the platform policy of an environment, published like a release.

``policy publish`` writes the policy's bytes to ``<env>/_platform/objects/<sha256>.json`` (never over
other bytes), then the pointer ``<env>/_platform/policy.json`` last, conditionally on the ETag it read:
a reader (CI, the sidecar, the bundle) sees the old policy or the new one, and of two concurrent
writers one loses with a clear error. The layout and the read side: :mod:`dagfactory_s3.serve.policy`.

A policy change can refuse DAGs that are served today. ``policy plan`` reads every served manifest of
the environment (each package's current release record; content verified by sha256) and lists what the
new policy refuses that the current one does not; ``policy publish`` and ``policy rollback`` refuse such
a change unless ``--allow-breaking``. Exit codes: 0 ok (or nothing to do), 2 the change would refuse
served DAGs, 1 any error.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from dagfactory_s3 import manifest as manifests
from dagfactory_s3 import naming, platform, s3, settings
from dagfactory_s3.errors import (
    ConfigError,
    ManifestError,
    Problem,
    PublishError,
    RecordConflict,
    StorageError,
    SyncError,
)
from dagfactory_s3.publisher.store import PackageStore, env_packages
from dagfactory_s3.publisher.terminal import (
    Progress,
    add_output,
    add_setting,
    command,
    count,
    emit,
    log,
    require,
)
from dagfactory_s3.publisher.transaction import new_release_id, parallel
from dagfactory_s3.serve import policy as published
from dagfactory_s3.serve.rules import ServedFile, served_files

__all__ = ["Impact", "Refused", "impact", "register"]


# -- what a policy change refuses ---------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    """A served DAG the new policy refuses, with the problems the current policy does not report."""

    package: str
    dag_id: str
    file: str  # s3://<bucket>/<env>/<package>/dags/<dag_id>.json
    problems: tuple[Problem, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "dag_id": self.dag_id,
            "file": self.file,
            "problems": [p.to_dict() for p in self.problems],
        }


@dataclass
class Impact:
    """What a policy change does to the served DAGs: those it refuses, and what could not be checked."""

    packages: int = 0
    dags: int = 0
    refused: list[Refused] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # one line each: a package's record, a file

    def to_dict(self) -> dict[str, Any]:
        return {
            "packages": self.packages,
            "dags_checked": self.dags,
            "refused": [r.to_dict() for r in self.refused],
            "unchecked": self.unchecked,
            "breaking": bool(self.refused),
        }

    def lines(self) -> list[str]:
        out = [str(p) for r in self.refused for p in r.problems]
        return out + [f"not checked: {u}" for u in self.unchecked]


def _problems(raw: bytes, file: str, package: str, policy: platform.Policy) -> list[Problem]:
    try:
        manifests.parse(raw, file=file, package=package, policy=policy)
    except ManifestError as exc:
        return exc.problems()
    except Exception as exc:  # a gap in our own checks (as the sidecar does): this manifest is refused
        return [Problem(file, "", f"manifest could not be checked ({type(exc).__name__}: {exc})")]
    return []


def _same(problem: Problem, policy: platform.Policy) -> tuple[str, str, str]:
    """A problem without the name of the policy that found it (messages name it: "(new.json)")."""
    return problem.file, problem.pointer, problem.message.replace(policy.file, "")


def impact(
    client: Any,
    bucket: str,
    environment: str,
    new: platform.Policy,
    current: platform.Policy,
    *,
    parallelism: int,
    reading: Callable[[int], Callable[[], None]] | None = None,
) -> Impact:
    """Every served DAG of the environment that ``new`` refuses with a problem ``current`` does not
    report. A package whose record cannot be used, or a file whose content is missing or is not the
    recorded bytes, is one ``unchecked`` line; an S3 failure stops it (StorageError).
    ``reading(total)`` returns the callback called after each manifest is checked."""
    packages = env_packages(client, bucket, environment)

    def record(package: str) -> tuple[str, Any, str | None]:
        found = PackageStore(client, bucket, environment, package).current()
        return package, found.record, found.problem

    out = Impact(packages=len(packages))
    work: list[tuple[str, ServedFile]] = []
    for package, rec, problem in parallel(record, packages, parallelism):
        if problem:
            out.unchecked.append(problem)
        elif rec is not None:  # None: nothing committed yet, nothing served
            served, _ = served_files(rec, environment)
            work += [(package, f) for f in served if not f.python]
    step = reading(len(work)) if reading else None

    def check(item: tuple[str, ServedFile]) -> Refused | str | None:
        package, f = item
        try:
            return _check(client, bucket, package, f, new, current)
        finally:
            if step:
                step()

    for result in parallel(check, work, parallelism):
        if isinstance(result, Refused):
            out.refused.append(result)
        elif result:
            out.unchecked.append(result)
    out.dags = len(work)
    out.refused.sort(key=lambda r: r.file)
    return out


def _check(
    client: Any, bucket: str, package: str, f: ServedFile, new: platform.Policy, current: platform.Policy
) -> Refused | str | None:
    file = f"s3://{bucket}/{f.key}"
    try:
        fetched = s3.get(client, bucket, f.source, version_id=f.version_id, max_bytes=f.size, missing_ok=True)
    except StorageError as exc:
        if exc.code != s3.TOO_LARGE:
            raise
        fetched = None
    if fetched is None or hashlib.sha256(fetched.data).hexdigest() != f.sha256:
        return f"{file}: its content (s3://{bucket}/{f.source}) is missing or not the bytes its record names"
    problems = _problems(fetched.data, file, package, new)
    if not problems:
        return None
    known = {_same(p, current) for p in _problems(fetched.data, file, package, current)}
    fresh = tuple(p for p in problems if _same(p, new) not in known)
    return Refused(package, naming.dag_id_of(f.rest), file, fresh) if fresh else None


# -- writing: the object first, the pointer last ------------------------------------------------


def _write_object(client: Any, bucket: str, environment: str, raw: bytes, sha: str) -> None:
    """``objects/<sha>.json``: written only when absent; an object already there is trusted only once
    its bytes are verified, and replaced when they are not the policy's (a damaged copy)."""
    key = published.object_key(environment, sha)
    try:
        s3.put(client, bucket, key, raw, if_none_match=True, ContentType="application/json")
        return
    except RecordConflict:
        pass
    try:
        fetched = s3.get(client, bucket, key, max_bytes=len(raw), missing_ok=True)
    except StorageError as exc:
        if exc.code != s3.TOO_LARGE:
            raise
        fetched = None
    if fetched is None or hashlib.sha256(fetched.data).hexdigest() != sha:
        s3.put(client, bucket, key, raw, ContentType="application/json")


def _next_id(record: published.PolicyRecord | None) -> str:
    """A new release-style id, later than the current policy's (readers require newest first)."""
    for _ in range(100):
        policy_id = new_release_id()
        if record is None or policy_id > record.current.policy_id:
            return policy_id
        time.sleep(0.01)  # the same millisecond as the current one, or this machine's clock is behind
    raise PublishError(
        f"the current policy's id {record.current.policy_id} is later than this machine's clock; check the clock"
    )


def _commit(
    client: Any,
    bucket: str,
    read: tuple[published.PolicyRecord | None, str],
    environment: str,
    raw: bytes,
    *,
    published_by: str,
    note: str = "",
) -> published.PolicyEntry:
    """Write the pointer naming ``raw`` as current (carrying its bytes when small: a reader of the current
    policy then makes one GET), the previous current first in its history, only if the pointer is still
    the one read (If-Match its ETag, or If-None-Match when there was none)."""
    record, etag = read
    entry = published.PolicyEntry(
        _next_id(record),
        hashlib.sha256(raw).hexdigest(),
        len(raw),
        published_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        published_by=published_by,
        note=note,
    )
    history = tuple(record.entries()[: published.KEEP]) if record else ()
    key = published.pointer_key(environment)
    try:
        s3.put(
            client,
            bucket,
            key,
            published.PolicyRecord(environment, entry, history).with_content(raw).to_json(),
            if_match=etag or None,
            if_none_match=not etag,
            ContentType="application/json",
            CacheControl="no-cache",
        )
    except RecordConflict:
        raise RecordConflict(f"s3://{bucket}/{key}: policy changed since it was read; rerun") from None
    return entry


# -- the commands -------------------------------------------------------------------------------

_TARGET = "--bucket etl-airflow-dags-dev --environment dev"
_BREAKING = "Exit codes: 0 ok, 2 the change would refuse served DAGs (listed; nothing written), 1 any error"


def register(sub: argparse._SubParsersAction) -> None:
    group = command(
        sub,
        "policy",
        "publish, plan, show and roll back the platform policy of an environment (in the bucket)",
        [
            f"airflow-dag-publisher policy plan {_TARGET} --file policy.json",
            f"airflow-dag-publisher policy publish {_TARGET} --file policy.json",
            f"airflow-dag-publisher policy show {_TARGET} --history",
        ],
        "The policy lives at <env>/_platform/policy.json (a pointer with history) and "
        "<env>/_platform/objects/<sha256>.json (its bytes); CI and Airflow read it from there.",
    )
    policy_sub = group.add_subparsers(dest="policy_command", required=True, metavar="SUBCOMMAND")

    p = command(
        policy_sub,
        "plan",
        "list every served DAG a new policy would refuse (file, pointer, reason); write nothing",
        [
            f"airflow-dag-publisher policy plan {_TARGET} --file policy.json",
            f"airflow-dag-publisher policy plan {_TARGET} --file policy.json --output json",
        ],
        "Reads each package's current release record and its manifests (verified by sha256); lists the "
        "problems the new policy finds that the current one (the published policy, else the built-in "
        f"default) does not. {_BREAKING}.",
    )
    _flags(p)
    p.set_defaults(handler=cmd_plan)

    p = command(
        policy_sub,
        "publish",
        "publish a policy file as the environment's current policy (bytes first, pointer last)",
        [f"airflow-dag-publisher policy publish {_TARGET} --file policy.json"],
        "Runs 'policy plan' first and refuses a change that would refuse served DAGs unless "
        f"--allow-breaking; the same bytes as the current policy write nothing. {_BREAKING}.",
    )
    _flags(p)
    _allow_breaking(p)
    add_setting(p, "published_by")
    p.set_defaults(handler=cmd_publish)

    p = command(
        policy_sub,
        "show",
        "show the environment's current policy (id, sha256, who published it when) and its history",
        [
            f"airflow-dag-publisher policy show {_TARGET}",
            f"airflow-dag-publisher policy show {_TARGET} --history",
        ],
    )
    _flags(p, file=False)
    p.add_argument("--history", action="store_true", help="also list the kept policies, newest first")
    p.set_defaults(handler=cmd_show)

    p = command(
        policy_sub,
        "rollback",
        "make the bytes of a kept policy current again, as a new policy",
        [
            f"airflow-dag-publisher policy rollback {_TARGET} --to previous          # show the plan",
            f"airflow-dag-publisher policy rollback {_TARGET} --to previous --yes    # do it",
        ],
        "Prints its plan and writes nothing unless --yes is given; checks the served DAGs like "
        f"'policy publish'. {_BREAKING}.",
    )
    _flags(p, file=False)
    p.add_argument(
        "--to",
        required=True,
        help="policy id (see 'policy show --history'), or 'previous': the policy before the current one",
    )
    p.add_argument("--yes", action="store_true", help="really roll back (without it: print the plan)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, write nothing (the default)")
    _allow_breaking(p)
    add_setting(p, "published_by")
    p.set_defaults(handler=cmd_rollback)


def _flags(p: argparse.ArgumentParser, *, file: bool = True) -> None:
    add_setting(p, "bucket")
    add_setting(p, "environment")
    add_setting(p, "parallelism")
    add_output(p)
    if file:
        p.add_argument("--file", required=True, help="the policy file (JSON; docs/deploy.md)")
    p.set_defaults(detailed_exitcode=True)  # 2 means "would refuse served DAGs": errors are 1


def _allow_breaking(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-breaking",
        action="store_true",
        help="publish even when the new policy refuses served DAGs (they are listed)",
    )


@dataclass
class _Env:
    """One command's view of the environment: the client and the pointer as read."""

    client: Any
    bucket: str
    environment: str
    record: published.PolicyRecord | None
    etag: str

    @property
    def pointer(self) -> str:
        return f"s3://{self.bucket}/{published.pointer_key(self.environment)}"


def _open(args: argparse.Namespace) -> _Env:
    require(args, "bucket", "environment")
    why = naming.check_environment(args.environment)
    if why:
        raise ConfigError(why)
    client = s3.client(max_pool_connections=max(10, args.parallelism + 2))
    record, etag = published.read_record(client, args.bucket, args.environment)
    return _Env(client, args.bucket, args.environment, record, etag)


def _read_file(path: str) -> tuple[bytes, platform.Policy]:
    """The policy file's bytes and the policy they define; a ConfigError naming the file otherwise."""
    raw = platform.read(path)
    return raw, platform.parse(raw, path)


def _current(args: argparse.Namespace, env: _Env) -> tuple[platform.Policy, bool]:
    """The policy served DAGs are checked under today, and whether its bytes could be verified. An
    unreadable current policy is a warning: the comparison then starts from the built-in default."""
    if env.record is None:
        return platform.DEFAULT, False
    try:
        return published.read_policy(env.client, env.bucket, env.environment, env.record.current)[1], True
    except (StorageError, SyncError, ConfigError) as exc:  # SyncError: not the bytes its pointer records
        log(args, f"warning: the current policy cannot be read ({exc}); comparing with the built-in default")
        return platform.DEFAULT, False


def _impact(args: argparse.Namespace, env: _Env, new: platform.Policy, current: platform.Policy) -> Impact:
    bar: Progress | None = None

    def reading(total: int) -> Callable[[], None]:
        nonlocal bar
        tty = sys.stderr.isatty() and args.output != "json"
        bar = Progress("reading", total, tty=tty, quiet=args.quiet or total < 20)
        return bar.step

    try:
        return impact(
            env.client,
            env.bucket,
            env.environment,
            new,
            current,
            parallelism=args.parallelism,
            reading=reading,
        )
    finally:
        if bar:
            bar.close()


def _summary(found: Impact, what: str) -> str:
    checked = f"{count(found.dags, 'served DAG')} of {count(found.packages, 'package')}"
    if not found.refused:
        return f"No served DAG would be refused by {what} (checked {checked})."
    return f"{what} would refuse {len(found.refused)} of {checked}:"


def _report(
    args: argparse.Namespace,
    found: Impact,
    what: str,
    head: list[str],
    data: dict[str, Any],
    *,
    write: str = "",
) -> int:
    """Print a plan: what a change would refuse; 2 when it refuses served DAGs. ``write``: the command
    would have written (``publish``, ``rollback --yes``) and says why it did not."""
    emit(args, "\n".join([*head, _summary(found, what), *found.lines()]), {**data, **found.to_dict()})
    if write and found.refused:
        print(
            f"error: {what} would refuse {count(len(found.refused), 'served DAG')} (listed); nothing written; "
            f"rerun with --allow-breaking to {write} it anyway",
            file=sys.stderr,
        )
    return 2 if found.refused else 0


def _current_dict(env: _Env) -> dict[str, Any] | None:
    return env.record.current.to_dict() if env.record else None


def cmd_plan(args: argparse.Namespace) -> int:
    raw, new = _read_file(args.file)
    env = _open(args)
    current, _ = _current(args, env)
    found = _impact(args, env, new, current)
    data = {
        "ok": True,
        "bucket": env.bucket,
        "environment": env.environment,
        "file": args.file,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "current": _current_dict(env),
    }
    return _report(args, found, args.file, [], data)


def _who(args: argparse.Namespace) -> str:
    return args.published_by or settings.ci_identity(os.environ)


def cmd_publish(args: argparse.Namespace) -> int:
    raw, new = _read_file(args.file)
    sha = hashlib.sha256(raw).hexdigest()
    env = _open(args)
    current, verified = _current(args, env)
    base = {"bucket": env.bucket, "environment": env.environment, "file": args.file, "sha256": sha}
    same = env.record is not None and env.record.current.sha256 == sha
    if same and verified:
        assert env.record is not None
        policy_id = env.record.current.policy_id
        emit(
            args,
            f"{env.pointer}: no change: policy {policy_id} has these bytes (nothing written)",
            {**base, "ok": True, "changed": False, "policy_id": policy_id},
        )
        return 0
    found = _impact(args, env, new, current)
    if found.refused and not args.allow_breaking:
        return _report(args, found, args.file, [], {**base, "ok": False, "changed": False}, write="publish")
    _write_object(env.client, env.bucket, env.environment, raw, sha)
    if same:  # the current policy's object did not verify: rewritten, the pointer stays
        assert env.record is not None
        policy_id = env.record.current.policy_id
        emit(
            args,
            f"{env.pointer}: no change: policy {policy_id} has these bytes; its damaged object was rewritten",
            {**base, "ok": True, "changed": False, "policy_id": policy_id},
        )
        return 0
    entry = _commit(
        env.client, env.bucket, (env.record, env.etag), env.environment, raw, published_by=_who(args)
    )
    after = f" after {env.record.current.policy_id}" if env.record else " (the environment's first)"
    lines = [f"{env.pointer}: published policy {entry.policy_id} (sha256 {sha}){after}"]
    if found.refused:
        lines.append(f"it refuses {count(len(found.refused), 'served DAG')} (--allow-breaking):")
    lines += found.lines()
    data = {
        **base,
        "ok": True,
        "changed": True,
        **entry.to_dict(),
        "previous": _current_dict(env),
        **found.to_dict(),
    }
    emit(args, "\n".join(lines), data)
    return 0


def _history_line(entry: published.PolicyEntry, current: bool) -> str:
    marks = [m for m in (entry.note, "current" if current else "") if m]
    parts = [
        entry.policy_id,
        entry.published_at or "-",
        f"by {entry.published_by or '-'}",
        f"sha256 {entry.sha256[:12]}",
    ]
    return "    " + "  ".join(parts) + (f"  ({', '.join(marks)})" if marks else "")


def cmd_show(args: argparse.Namespace) -> int:
    env = _open(args)
    data: dict[str, Any] = {
        "ok": True,
        "bucket": env.bucket,
        "environment": env.environment,
        "pointer": env.pointer,
        "current": _current_dict(env),
    }
    if env.record is None:
        emit(args, f"{env.pointer}: no platform policy published for {env.environment}", data)
        return 0
    cur = env.record.current
    by = f" by {cur.published_by}" if cur.published_by else ""
    lines = [
        f"policy of {env.environment} in s3://{env.bucket}: {cur.policy_id}, published {cur.published_at or '-'}{by}",
        f"  sha256 {cur.sha256}, {count(cur.size, 'byte')}" + (f" ({cur.note})" if cur.note else ""),
    ]
    if args.history:
        data["history"] = [e.to_dict() for e in env.record.entries()]
        lines.append("  history (newest first):")
        lines += [_history_line(e, e is cur) for e in env.record.entries()]
    emit(args, "\n".join(lines), data)
    return 0


def _rollback_target(env: _Env, to: str) -> published.PolicyEntry:
    """The kept policy ``to`` names: ``previous`` is the one before the current one."""
    if env.record is None:
        raise PublishError(f"{env.pointer}: no platform policy published; nothing to roll back")
    if to == "previous":
        if not env.record.history:
            raise PublishError(f"{env.pointer}: no policy before the current one to roll back to")
        return env.record.history[0]
    target = env.record.entry(to) if naming.RELEASE_ID_RE.fullmatch(to) else None
    if target is None:
        raise PublishError(
            f"{env.pointer}: policy {to!r} is not kept; 'policy show --history' lists those that are"
        )
    return target


def cmd_rollback(args: argparse.Namespace) -> int:
    env = _open(args)
    target = _rollback_target(env, args.to)
    assert env.record is not None
    cur = env.record.current
    base = {
        "bucket": env.bucket,
        "environment": env.environment,
        "to": target.to_dict(),
        "current": cur.to_dict(),
    }
    if target.sha256 == cur.sha256:
        emit(
            args,
            f"{env.pointer}: no change: policy {cur.policy_id} already has the bytes of {target.policy_id}",
            {**base, "ok": True, "changed": False},
        )
        return 0
    doing = args.yes and not args.dry_run
    if not args.yes and not args.dry_run:
        log(args, "dry run: pass --yes to roll back")
    raw, new = published.read_policy(env.client, env.bucket, env.environment, target)  # verified
    current, _ = _current(args, env)
    found = _impact(args, env, new, current)
    what = f"policy {target.policy_id}"
    if not doing or (found.refused and not args.allow_breaking):
        head = [f"{env.pointer}: roll back from {cur.policy_id} to the bytes of {target.policy_id}"]
        blocked = doing and not args.allow_breaking
        return _report(
            args,
            found,
            what,
            head,
            {**base, "ok": not blocked, "changed": False},
            write="roll back" if blocked else "",
        )
    entry = _commit(
        env.client,
        env.bucket,
        (env.record, env.etag),
        env.environment,
        raw,
        published_by=_who(args),
        note=f"rollback to {target.policy_id}",
    )
    lines = [
        f"{env.pointer}: published policy {entry.policy_id}, the bytes of {target.policy_id} (rollback)",
        *found.lines(),
    ]
    data = {**base, "ok": True, "changed": True, **entry.to_dict(), **found.to_dict()}
    emit(args, "\n".join(lines), data)
    return 0
