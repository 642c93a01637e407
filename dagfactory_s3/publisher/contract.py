"""Which platform policy a command checks manifests against: one per command, chosen before any check.

1. ``--policy FILE`` (``DAGFACTORY_POLICY``): that file, read offline.
2. Else, when the command knows a bucket and an environment (``plan``, ``publish``, ``promote``'s
   ``--to``; ``validate`` and ``render`` when given both): the policy published for that environment,
   ``s3://<bucket>/<env>/_platform/policy.json``, read and verified by :mod:`dagfactory_s3.serve.policy`,
   the reader Airflow's side uses too. A published policy that cannot be used is an error, never a
   quiet fall back to weaker checks.
3. Else the built-in default, and one warning line naming the checks it cannot make (the names only a
   platform's policy defines); ``--require-policy`` makes that an error.

The code below the command line takes the :class:`~dagfactory_s3.platform.Policy` chosen here, never a path.
"""

from __future__ import annotations

import argparse
from typing import Any

from dagfactory_s3 import naming, platform
from dagfactory_s3.errors import ConfigError, DagFactoryError, SyncError
from dagfactory_s3.publisher.terminal import add_setting, log
from dagfactory_s3.serve import policy as published

__all__ = ["add_flags", "label", "resolve", "unchecked"]


def add_flags(parser: argparse.ArgumentParser) -> None:
    add_setting(parser, "policy")
    add_setting(parser, "require_policy")


def unchecked(policy: platform.Policy = platform.DEFAULT) -> list[str]:
    """What ``policy`` leaves unchecked that a platform's policy checks: the names it cannot know."""
    skipped = {
        "notifiers": policy.notifiers is None,
        "image registries": policy.image_registries is None,
        "grants": not policy.from_file,
        "namespaces": policy.namespaces is None,
        "service accounts": policy.service_accounts is None,
    }
    return [name for name, yes in skipped.items() if yes]


def label(policy: platform.Policy) -> str | None:
    """How ``--output json`` names the policy a command checked against (None: the built-in default)."""
    return policy.file if policy.from_file else None


def resolve(
    args: argparse.Namespace, *, bucket: str | None, environment: str | None, client: Any = None
) -> platform.Policy:
    """The one policy this command checks against (the module's docstring says which). ``client``:
    the command's S3 client; None makes one from the standard chain, only if S3 is read."""
    if args.policy:
        return platform.load(args.policy)
    if bucket and environment:
        reason = naming.check_environment(environment)
        if reason:
            raise ConfigError(reason)
        if client is None:
            from dagfactory_s3.s3 import client as s3_client  # here: offline validate never imports boto3

            client = s3_client()
        found = _published(client, bucket, environment)
        if found is not None:
            return found
        where = f"nothing at s3://{bucket}/{published.pointer_key(environment)}"
    else:
        where = "no --bucket and --environment to read the published one from"
    missing = f"no platform policy (no --policy, {where})"
    if args.require_policy:
        raise ConfigError(f"{missing}, and --require-policy (DAGFACTORY_REQUIRE_POLICY) asks for one")
    skipped = unchecked()
    log(args, f"warning: {missing}: {', '.join(skipped[:-1])} and {skipped[-1]} are not checked")
    return platform.DEFAULT


def _published(client: Any, bucket: str, environment: str) -> platform.Policy | None:
    try:  # S3 refusing or not answering (StorageError) is an S3 error like any other (exit 3)
        found = published.read_current(client, bucket, environment)
    except (ConfigError, SyncError) as exc:
        # The pointer or the bytes it names are not a valid policy (a digest that does not match, a
        # policy that does not parse): checking against the default instead would pass what Airflow refuses.
        raise DagFactoryError(
            f"{exc}; the platform policy published for {environment!r} cannot be used, so nothing was "
            "checked (the platform republishes or rolls it back; --policy FILE checks against a file)"
        ) from None
    return found.policy if found else None
