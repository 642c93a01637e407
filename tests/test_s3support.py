"""The test S3 stack itself: moto over HTTP through the counting proxy."""

import boto3
import pytest
from botocore.exceptions import ClientError


def test_proxy_counts_real_requests(s3, bucket):
    """Requests through the proxy reach moto and are counted by kind."""
    client = boto3.client("s3")
    client.put_object(Bucket=bucket, Key="dev/a.txt", Body=b"x" * 100)
    assert client.get_object(Bucket=bucket, Key="dev/a.txt")["Body"].read() == b"x" * 100
    client.list_objects_v2(Bucket=bucket, Prefix="dev/")
    assert (s3.count("PUT"), s3.count("GET"), s3.count("LIST")) == (1, 1, 1)


def test_proxy_injects_server_errors(s3, bucket):
    """A fault rule turns requests into 500s that boto3 sees as errors."""
    s3.fault = lambda request, index: "500" if request.method == "PUT" else None
    client = boto3.client("s3", config=boto3.session.Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError):
        client.put_object(Bucket=bucket, Key="dev/a.txt", Body=b"x")
