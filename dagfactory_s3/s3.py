"""S3 access for the publisher and the sidecar: the standard AWS chain only, errors made plain.

Credentials, region and endpoint come from the standard chain (environment, shared profiles,
instance/pod identity, ``AWS_ENDPOINT_URL``); there are no credential flags on purpose. Every
request either returns what it promises (a whole listing, a whole body) or raises
:class:`~dagfactory_s3.errors.StorageError` with one line saying what to check.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from dagfactory_s3.errors import ConfigError, RecordConflict, StorageError
from dagfactory_s3.naming import check_environment

__all__ = [
    "Listed",
    "client",
    "delete",
    "describe",
    "etag_matches",
    "get",
    "list_environments",
    "list_objects",
    "list_prefixes",
    "put",
    "storage_errors",
]

_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_CONFLICT = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_MD5 = re.compile(r"[0-9a-f]{32}")


# boto3 and urllib3 cost ~0.2 s to import: only a command that talks to S3 pays it (validate,
# generate and render do not). Both are loaded by the time a request can fail.
def _transport_error() -> type[Exception]:
    """urllib3's base error, raised by a connection that drops mid-body."""
    from urllib3.exceptions import HTTPError

    return HTTPError


@functools.cache
def _loader() -> Any:
    """botocore's service models and endpoints, loaded once per process: a new session would parse
    them again (about 0.1 s of JSON per client, most of a failed ``publish``'s time)."""
    from botocore.loaders import create_loader

    return create_loader()


def session() -> Any:
    """A fresh botocore session (so the standard chain is read now: environment, profile,
    ``AWS_ENDPOINT_URL``) sharing the process's loaded service models."""
    import botocore.session

    core = botocore.session.Session()
    core.register_component("data_loader", _loader())
    return core


def client(*, max_pool_connections: int = 16, retries: int | None = None) -> Any:
    """A boto3 S3 client from the standard chain (honours AWS_ENDPOINT_URL, AWS_PROFILE, AWS_MAX_ATTEMPTS ...).

    Retries: botocore's standard mode; the attempts come from the chain (``AWS_MAX_ATTEMPTS``, the
    profile's ``max_attempts``; 3 by default) unless ``retries`` says otherwise.
    """
    from botocore.config import Config

    config = Config(
        max_pool_connections=max_pool_connections,
        retries={"mode": "standard", **({"max_attempts": retries} if retries else {})},
        connect_timeout=5,
        read_timeout=30,
    )
    try:
        return session().create_client("s3", config=config)
    except ValueError as exc:  # botocore: "Invalid endpoint: ...", a malformed region name
        if "endpoint" in str(exc).lower():
            raise ConfigError(
                f"AWS_ENDPOINT_URL (or the profile's endpoint_url): {exc}; give a URL such as "
                "https://s3.us-east-1.amazonaws.com, or http://127.0.0.1:5000 for a local S3"
            ) from None
        raise ConfigError(f"AWS configuration: {exc}") from None


def describe(exc: BaseException, bucket: str) -> str:
    """One line, no traceback, saying what went wrong talking to S3 and what to check."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "")
        if code == "NoSuchBucket":
            return (
                f"s3://{bucket}: bucket does not exist; check the name and the account, or for a local "
                "S3 set AWS_ENDPOINT_URL to its URL and create the bucket there"
            )
        if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
            return f"s3://{bucket}: access denied ({exc.operation_name}); check the IAM policy of these credentials"
        if code in _EXPIRED:
            return f"s3://{bucket}: credentials expired ({code}); refresh them"
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return f"s3://{bucket}: credentials rejected ({code})"
        return f"s3://{bucket}: {exc.operation_name} failed: {code} {message}".rstrip()
    if isinstance(exc, NoCredentialsError):
        return (
            "no AWS credentials found (environment, profile or instance role); set AWS_PROFILE, or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; for a local S3, set AWS_ENDPOINT_URL to its "
            "URL and both keys to any value"
        )
    if isinstance(exc, EndpointConnectionError | ReadTimeoutError):
        return f"s3://{bucket}: cannot reach S3: {exc}"
    return f"s3://{bucket}: {exc}"


@contextlib.contextmanager
def storage_errors(bucket: str, key: str = "") -> Iterator[None]:
    """Turn botocore and connection failures into StorageError with a one-line message."""
    try:
        yield
    except (ClientError, BotoCoreError, OSError, _transport_error()) as exc:
        raise _storage_error(exc, bucket, key) from exc


def _storage_error(exc: BaseException, bucket: str, key: str = "") -> StorageError:
    code = _code(exc) if isinstance(exc, ClientError) else ""
    return StorageError(describe(exc, bucket) + (f" ({key})" if key else ""), code=code)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def etag_matches(etag: str, data: bytes) -> bool | None:
    """Whether ``data`` has this ETag; None when the ETag is not an MD5 (multipart, SSE-KMS).

    The ETag rule: a single-part upload without KMS has the MD5 of its bytes as its ETag.
    """
    value = etag.strip('"')
    if not _MD5.fullmatch(value):
        return None
    return hashlib.md5(data, usedforsecurity=False).hexdigest() == value


@dataclass(frozen=True)
class Listed:
    """One object of a listing: full key, size and ETag (unquoted)."""

    key: str
    size: int
    etag: str
    modified: float = 0.0  # LastModified, seconds since the epoch

    def same_bytes(self, data: bytes) -> bool | None:
        """True/False when the size or MD5 ETag can tell; None when it cannot (KMS, multipart)."""
        if self.size != len(data):
            return False
        return etag_matches(self.etag, data)


def list_objects(
    s3: Any,
    bucket: str,
    prefix: str,
    *,
    page_size: int = 1000,
    on_page: Callable[[], None] | None = None,
    delimiter: str | None = None,
    max_pages: int | None = None,
) -> dict[str, Listed]:
    """Every object under ``prefix`` by key (with ``delimiter``, only those not below a further
    delimiter), or StorageError: a partial listing is never returned (nor one longer than
    ``max_pages`` pages)."""
    out: dict[str, Listed] = {}
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page_size}
    if delimiter:
        kwargs["Delimiter"] = delimiter
    pages = 0
    while True:
        if max_pages is not None and pages == max_pages:
            raise StorageError(
                f"s3://{bucket}/{prefix}: more than {max_pages * page_size} keys; not listing further"
            )
        pages += 1
        with storage_errors(bucket):
            page = s3.list_objects_v2(**kwargs)
        if on_page:
            on_page()
        contents = page.get("Contents", [])
        if "KeyCount" in page and page["KeyCount"] != len(contents) + len(page.get("CommonPrefixes", [])):
            raise StorageError(
                f"s3://{bucket}: listing page is inconsistent (KeyCount != entries); not trusting it"
            )
        for obj in contents:
            modified = obj["LastModified"].timestamp() if "LastModified" in obj else 0.0
            out[obj["Key"]] = Listed(
                obj["Key"], int(obj.get("Size", 0)), obj.get("ETag", "").strip('"'), modified
            )
        if not page.get("IsTruncated"):
            return out
        token = page.get("NextContinuationToken")
        if not token:
            raise StorageError(
                f"s3://{bucket}: listing truncated without a continuation token; not trusting it"
            )
        kwargs["ContinuationToken"] = token


def list_environments(s3: Any, bucket: str) -> list[str]:
    """The environments a bucket holds: its top-level prefixes that are environment names (not the
    versioned bundle's ``_bundle/``)."""
    return [name for name in list_prefixes(s3, bucket, "") if not check_environment(name)]


def list_prefixes(s3: Any, bucket: str, prefix: str) -> list[str]:
    """The names of the "folders" directly under ``prefix`` (a delimited listing), sorted."""
    names: list[str] = []
    with storage_errors(bucket):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            names += [p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", [])]
    return sorted(names)


@dataclass(frozen=True)
class Fetched:
    data: bytes
    etag: str
    modified: float = 0.0  # LastModified, seconds since the epoch (0 when S3 did not say)


# Every GET is capped: a caller that does not say how much it expects gets this much at most.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024  # read the body this much at a time; never more than cap + one chunk held
TOO_LARGE = "EntityTooLarge"  # StorageError.code of an object refused for its size (not an outage)


def get(
    s3: Any,
    bucket: str,
    key: str,
    *,
    version_id: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    missing_ok: bool = False,
) -> Fetched | None:
    """The whole body of one object, at most ``max_bytes``, checked against its Content-Length.

    An object larger than ``max_bytes`` is refused (StorageError with ``code == TOO_LARGE``): before
    its body is read when Content-Length says so, else as soon as the streamed body passes the cap,
    so at most ``max_bytes + CHUNK_BYTES`` are ever held. ``missing_ok`` returns None for a missing
    key instead of raising.
    """
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        kwargs["VersionId"] = version_id
    too_large = f"s3://{bucket}/{key}: larger than the {max_bytes} bytes allowed"
    try:
        response = s3.get_object(**kwargs)
        body = response["Body"]
        length = int(response.get("ContentLength", -1))
        if length > max_bytes:
            body.close()
            raise StorageError(f"{too_large} ({length} bytes)", code=TOO_LARGE)
        buffer = io.BytesIO()  # getvalue() hands its buffer over without a copy
        while chunk := body.read(CHUNK_BYTES):
            buffer.write(chunk)
            if buffer.tell() > max_bytes:
                body.close()
                raise StorageError(too_large, code=TOO_LARGE)
        data = buffer.getvalue()
    except ClientError as exc:
        if missing_ok and _code(exc) in _NOT_FOUND:
            return None
        raise _storage_error(exc, bucket, key) from exc
    except BotoCoreError as exc:
        raise _storage_error(exc, bucket, key) from exc
    except (OSError, _transport_error()) as exc:
        raise StorageError(f"s3://{bucket}/{key}: download failed: {exc}") from exc
    if length >= 0 and len(data) != length:
        raise StorageError(f"s3://{bucket}/{key}: body cut short ({len(data)} of {length} bytes)")
    modified = response.get("LastModified")
    return Fetched(data, response.get("ETag", "").strip('"'), modified.timestamp() if modified else 0.0)


def put(
    s3: Any,
    bucket: str,
    key: str,
    data: bytes,
    *,
    if_match: str | None = None,
    if_none_match: bool = False,
    **extra: Any,
) -> str | None:
    """Write one object; returns its VersionId on a versioned bucket.

    ``if_match`` (an ETag) / ``if_none_match`` make the write conditional: losing the condition raises
    :class:`RecordConflict` (S3 answers 412, or 409 for a concurrent conditional write).
    """
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": data, **extra}
    if if_match:
        kwargs["IfMatch"] = f'"{if_match}"'
    elif if_none_match:
        kwargs["IfNoneMatch"] = "*"
    try:
        response = s3.put_object(**kwargs)
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        conditional = bool(if_match or if_none_match)
        if conditional and (
            _code(exc) in _CONFLICT or status in (409, 412) or (if_match and _code(exc) in _NOT_FOUND)
        ):
            raise RecordConflict(f"s3://{bucket}/{key} changed since it was read") from None
        raise _storage_error(exc, bucket, key) from exc
    except (BotoCoreError, OSError, _transport_error()) as exc:
        raise _storage_error(exc, bucket, key) from exc
    version = response.get("VersionId")
    return version if version and version != "null" else None


def delete(s3: Any, bucket: str, key: str) -> None:
    with storage_errors(bucket, key):
        s3.delete_object(Bucket=bucket, Key=key)
