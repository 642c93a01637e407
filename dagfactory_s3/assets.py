"""Asset URIs: what Airflow accepts as an ``Asset``, and the one form it stores. No Airflow here.

A DAG scheduled on assets runs when tasks that name the same assets in their ``outlets`` succeed, in
any package: coupling by data, not by code. Airflow identifies an asset by its name and its
normalized URI (``airflow.sdk.definitions.asset._sanitize_uri``: scheme lowercased, user info,
fragment and trailing slashes dropped, query sorted, then the scheme's provider normalizer). The
factory names each asset by that normalized URI, so ``s3://b/orders/`` in one package and
``s3://b/orders`` in another are one asset rather than two that conflict in Airflow's asset table.
tests/test_assets.py compares :func:`normalize` with Airflow's own on a corpus.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MAX_URI", "check_uri", "normalize"]

MAX_URI = 1500  # Airflow's limit on an asset's name and URI (its database columns)
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
# Schemes whose provider normalizer refuses a URI without a bucket at parse time
# (apache-airflow-providers-amazon's and -google's ``sanitize_uri``).
_BUCKET_SCHEMES = {"s3": "bucket", "gs": "bucket"}


def check_uri(uri: str) -> str | None:
    """Why Airflow (or its s3/gs/file normalizers) would refuse ``uri`` as an asset, or None.

    Stricter on purpose where Airflow would accept something that cannot mean what was written: a
    scheme-less name, an uppercase scheme, a password (Airflow drops it with a warning), a fragment
    (Airflow ignores it, so ``#v1`` and ``#v2`` would be one asset).
    """
    if not uri.isascii():
        return "asset URI must be ASCII (percent-encode other characters; Airflow refuses non-ASCII asset names on MySQL)"
    space = next((i for i, c in enumerate(uri) if c.isspace() or not c.isprintable()), None)
    if space is not None:
        return f"asset URI has whitespace or a control character at position {space}; percent-encode it"
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return "asset URI must look like scheme://location (such as s3://bucket/path)"
    if not _SCHEME.fullmatch(scheme):
        return f"asset URI scheme {scheme!r} must match [a-z][a-z0-9+.-]* (lowercase)"
    if scheme == "airflow":
        return "the 'airflow' asset URI scheme is reserved by Airflow"
    if not rest:
        return f"asset URI names nothing after {scheme}://"
    try:
        parts = urlsplit(uri)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket: Airflow's urlsplit raises the same
        return f"asset URI cannot be parsed: {exc}"
    if parts.password is not None:
        return "asset URI must not carry a password (Airflow drops user info; keep secrets in connections)"
    if "#" in uri:
        return "asset URI must not have a #fragment (Airflow ignores it when it identifies the asset)"
    if scheme in _BUCKET_SCHEMES and not parts.netloc:
        return f"{scheme}:// asset URI needs a {_BUCKET_SCHEMES[scheme]}: {scheme}://<bucket>/<path>"
    return None


def normalize(uri: str) -> str:
    """The URI Airflow stores for ``uri`` (a URI :func:`check_uri` accepts)."""
    parts = urlsplit(uri)
    if parts.scheme.startswith("x-"):  # Airflow leaves experimental schemes as written
        return uri
    query = urlencode(sorted(parse_qsl(parts.query))) if parts.query else ""
    return urlunsplit(
        parts._replace(
            path=parts.path.rstrip("/") or "/",
            query=query,
            fragment="",
        )
    )
