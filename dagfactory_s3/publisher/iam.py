"""Least-privilege IAM policy documents for a package's CI role, the platform role and Airflow's
read-only role.

The CI role may write only ``<env>/<package>/`` (an explicit Deny covers any broader grant attached
elsewhere), read the other packages' ``metadata.json`` (for DAG-id uniqueness) and the platform policy
(``<env>/_platform/``, which it checks manifests against); a role that promotes into ``<env>`` may
also read the package's records and content objects in each environment it promotes from
(``promote`` sends GETs only there). The platform role alone writes ``<env>/_platform/`` (``policy
publish`` and ``rollback``) and reads the whole environment (``policy plan`` reads every served
manifest). Airflow (the sync sidecar or the versioned bundle) may only list and read ``<env>/``; with
the versioned bundle, write and read its version indexes (``_bundle/<env>/``, outside every package's
prefix and verified by every reader); and, with push delivery, receive and delete the messages of its
own event queues (nothing else on SQS).
Pure data; no AWS calls.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson

from dagfactory_s3.errors import ConfigError
from dagfactory_s3.naming import METADATA, RELEASES_DIR, check_environment, check_package
from dagfactory_s3.serve.policy import PLATFORM_DIR
from dagfactory_s3.serve.versions import INDEX_DIR

__all__ = ["airflow_policy", "dumps", "package_policy", "platform_policy", "policies"]

_VERSION = "2012-10-17"
# Every action that creates, replaces or removes an object or its access settings.
_WRITES = [
    "s3:PutObject",
    "s3:PutObjectAcl",
    "s3:PutObjectTagging",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:DeleteObjectTagging",
    "s3:RestoreObject",
]
# A standard queue only: S3 event notifications cannot reach a FIFO queue (nor a FIFO topic).
_QUEUE_ARN = re.compile(r"arn:aws(-[a-z]+)*:sqs:[a-z]{2}(-[a-z]+)+-\d+:\d{12}:[A-Za-z0-9_-]{1,80}")


def _check(bucket: str, environment: str, package: str | None) -> None:
    for reason in (check_environment(environment), check_package(package) if package is not None else None):
        if reason:
            raise ConfigError(reason)
    if not bucket or "/" in bucket or "*" in bucket:
        raise ConfigError(f"bucket name {bucket!r} is invalid")


def package_policy(
    bucket: str, environment: str, package: str, promote_from: Sequence[str] = ()
) -> dict[str, Any]:
    """The CI role of ``package``: read/write its own prefix, read other packages' records, and read
    what ``promote`` needs of the package in each environment of ``promote_from``."""
    _check(bucket, environment, package)
    for source in promote_from:
        _check(bucket, source, package)
        if source == environment:
            raise ConfigError(f"--promote-from {source!r} is the role's own environment")
    bucket_arn = f"arn:aws:s3:::{bucket}"
    own = f"{environment}/{package}/"
    promotion = {
        "Sid": "ReadPromotionSources",
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": [
            f"{bucket_arn}/{source}/{package}/{rest}"
            for source in sorted(set(promote_from))
            for rest in (METADATA, f"{RELEASES_DIR}/*")
        ],
    }
    return {
        "Version": _VERSION,
        "Statement": [
            {
                "Sid": "ListOwnPrefix",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": bucket_arn,
                "Condition": {"StringLike": {"s3:prefix": [own, f"{own}*"]}},
            },
            {
                "Sid": "ListPackagesOfEnvironment",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": bucket_arn,
                "Condition": {"StringEquals": {"s3:prefix": f"{environment}/", "s3:delimiter": "/"}},
            },
            {
                "Sid": "ReadWriteOwnPrefix",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": f"{bucket_arn}/{own}*",
            },
            {
                "Sid": "ReadOtherPackagesRecords",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"{bucket_arn}/{environment}/*/{METADATA}",
            },
            {
                "Sid": "ReadPlatformPolicy",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"{bucket_arn}/{environment}/{PLATFORM_DIR}/*",
            },
            *([promotion] if promote_from else []),
            {
                "Sid": "DenyWritesOutsideOwnPrefix",
                "Effect": "Deny",
                "Action": _WRITES,
                "NotResource": f"{bucket_arn}/{own}*",
            },
        ],
    }


def _read_environment(bucket_arn: str, environment: str) -> list[dict[str, Any]]:
    """List and read everything under ``<env>/``: what Airflow's readers and the platform role need."""
    return [
        {
            "Sid": "ListEnvironment",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": [f"{environment}/", f"{environment}/*"]}},
        },
        {
            "Sid": "ReadEnvironment",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": f"{bucket_arn}/{environment}/*",
        },
    ]


def _check_queue(arn: str) -> None:
    if _QUEUE_ARN.fullmatch(arn):
        return
    hint = (
        "that is a queue URL; pass the queue's ARN (the stack's ...QueueArn output)"
        if arn.startswith(("https://", "http://"))
        else "expected arn:aws:sqs:<region>:<12-digit account>:<queue name> of a standard queue"
    )
    raise ConfigError(f"--queue-arn {arn!r} is not an SQS queue ARN: {hint}")


def airflow_policy(
    bucket: str, environment: str, queue_arns: Sequence[str] = (), *, bundle_index: bool = False
) -> dict[str, Any]:
    """Airflow's sync sidecar or bundle: list and read ``<env>/``; with ``bundle_index`` read and write
    the versioned bundle's version indexes (``_bundle/<env>/``, nothing else); with ``queue_arns``
    (push delivery) receive and delete the messages of those queues; nothing else."""
    _check(bucket, environment, None)
    for arn in queue_arns:
        _check_queue(arn)
    bucket_arn = f"arn:aws:s3:::{bucket}"
    events = {
        "Sid": "ReceiveDagEvents",
        "Effect": "Allow",
        "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage"],
        "Resource": sorted(set(queue_arns)),
    }
    index = f"{bucket_arn}/{INDEX_DIR}/{environment}/*"
    indexes = {
        "Sid": "BundleVersionIndexes",
        "Effect": "Allow",
        "Action": ["s3:GetObject", "s3:PutObject"],
        "Resource": index,
    }
    deny = (
        {"Sid": "DenyWritesOutsideVersionIndexes", "Effect": "Deny", "Action": _WRITES, "NotResource": index}
        if bundle_index
        else {"Sid": "DenyAllWrites", "Effect": "Deny", "Action": _WRITES, "Resource": f"{bucket_arn}/*"}
    )
    return {
        "Version": _VERSION,
        "Statement": [
            *_read_environment(bucket_arn, environment),
            *([indexes] if bundle_index else []),
            *([events] if queue_arns else []),
            deny,
        ],
    }


def platform_policy(bucket: str, environment: str) -> dict[str, Any]:
    """The platform role: write ``<env>/_platform/`` (the policy's objects and pointer) and nothing
    else; list and read ``<env>/`` (``policy plan`` reads every package's record and manifests)."""
    _check(bucket, environment, None)
    bucket_arn = f"arn:aws:s3:::{bucket}"
    own = f"{bucket_arn}/{environment}/{PLATFORM_DIR}/*"
    return {
        "Version": _VERSION,
        "Statement": [
            *_read_environment(bucket_arn, environment),
            {"Sid": "WritePlatformPolicy", "Effect": "Allow", "Action": "s3:PutObject", "Resource": own},
            {
                "Sid": "DenyWritesOutsidePlatformPrefix",
                "Effect": "Deny",
                "Action": _WRITES,
                "NotResource": own,
            },
        ],
    }


def policies(
    bucket: str,
    environment: str,
    package: str,
    promote_from: Sequence[str] = (),
    queue_arns: Sequence[str] = (),
    *,
    bundle_index: bool = False,
) -> dict[str, Any]:
    return {
        "package_ci_role": package_policy(bucket, environment, package, promote_from),
        "airflow_read_only_role": airflow_policy(bucket, environment, queue_arns, bundle_index=bundle_index),
    }


def dumps(document: dict[str, Any]) -> str:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"
