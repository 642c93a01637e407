"""S3 access for the publisher and the sidecar: the standard AWS chain only, errors made plain.

Credentials, region and endpoint come from the standard chain (environment, shared profiles,
instance/pod identity, ``AWS_ENDPOINT_URL``); there are no credential flags on purpose.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from dagfactory_s3.errors import StorageError

__all__ = ["client", "storage_errors"]

_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}


def client(*, max_pool_connections: int = 16, retries: int = 3) -> Any:
    """A boto3 S3 client from the standard chain (honours AWS_ENDPOINT_URL, AWS_PROFILE, ...)."""
    config = Config(
        max_pool_connections=max_pool_connections,
        retries={"max_attempts": retries, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
    )
    return boto3.session.Session().client("s3", config=config)


def describe(exc: BaseException, bucket: str) -> str:
    """One line, no traceback, saying what went wrong talking to S3 and what to check."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "")
        if code == "NoSuchBucket":
            return f"s3://{bucket}: bucket does not exist"
        if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
            return f"s3://{bucket}: access denied ({exc.operation_name}); check the IAM policy of these credentials"
        if code in _EXPIRED:
            return f"s3://{bucket}: credentials expired ({code}); refresh them"
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return f"s3://{bucket}: credentials rejected ({code})"
        return f"s3://{bucket}: {exc.operation_name} failed: {code} {message}".rstrip()
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials found (environment, profile or instance role)"
    if isinstance(exc, EndpointConnectionError | ReadTimeoutError):
        return f"s3://{bucket}: cannot reach S3: {exc}"
    return f"s3://{bucket}: {exc}"


@contextlib.contextmanager
def storage_errors(bucket: str) -> Iterator[None]:
    """Turn botocore failures into StorageError with a one-line message."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise StorageError(describe(exc, bucket)) from exc
