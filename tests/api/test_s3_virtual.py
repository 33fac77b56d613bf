"""Virtual-hosted-style S3 (the bucket in the Host) against a live server, with boto3 clients
in ``addressing_style='virtual'`` and raw signed requests.

``*.localhost`` is loopback by RFC 6761 and resolves so where systemd-resolved or macOS
answer, but not under every resolver (not in minimal containers): the tests make this
process resolve it so, as those systems do, and leave the server untouched.
"""

from __future__ import annotations

import socket
import uuid
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from server_helpers import aws_error

from sageport.cli.process import ServerProcess


def unique(prefix: str = "vh") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def localhost_is_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.lower().rstrip(".").endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


def _client(server: ServerProcess, signature: str = "s3v4") -> Any:
    """A client for ``http://localhost:PORT`` in virtual addressing: Host ``<bucket>.localhost``."""
    access, secret = server.keys
    config = Config(
        signature_version=signature, s3={"addressing_style": "virtual"}, retries={"max_attempts": 1}
    )
    return boto3.client(
        "s3",
        endpoint_url=f"http://localhost:{server.port}",
        region_name=server.region,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        config=config,
    )


def _hosts(client: Any) -> list[str]:
    seen: list[str] = []
    client.meta.events.register(
        "before-send", lambda request, **_: seen.append(request.url.split("/")[2])
    )
    return seen


@pytest.mark.parametrize("signature", ["s3v4", "s3"])
def test_boto3_virtual_addressing_round_trip(server: ServerProcess, signature: str) -> None:
    s3 = _client(server, signature)
    hosts = _hosts(s3)
    bucket = unique()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="dir/a.txt", Body=b"virtual", Metadata={"m": "1"})
    s3.put_object(Bucket=bucket, Key="/leading-slash", Body=b"kept")
    got = s3.get_object(Bucket=bucket, Key="dir/a.txt")
    assert (got["Body"].read(), got["Metadata"]) == (b"virtual", {"m": "1"})
    listed = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["/leading-slash", "dir/a.txt"]
    assert all(h == f"{bucket}.localhost:{server.port}" for h in hosts)
    # the same objects, path-style
    plain = server.client("s3")
    assert plain.get_object(Bucket=bucket, Key="/leading-slash")["Body"].read() == b"kept"
    assert bucket in [b["Name"] for b in plain.list_buckets()["Buckets"]]
    # a presigned URL (SigV2 query for "s3", SigV4 for "s3v4") carries the bucket in its host
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "dir/a.txt"})
    assert url.startswith(f"http://{bucket}.localhost:")
    assert httpx.get(url).content == b"virtual"
    s3.delete_object(Bucket=bucket, Key="dir/a.txt")
    s3.delete_object(Bucket=bucket, Key="/leading-slash")
    s3.delete_bucket(Bucket=bucket)
    with aws_error("NoSuchBucket"):
        plain.list_objects_v2(Bucket=bucket)


def _signed_put(server: ServerProcess, host: str, path: str) -> httpx.Response:
    access, secret = server.keys
    request = AWSRequest(method="PUT", url=f"{server.url}{path}", data=b"", headers={"Host": host})
    S3SigV4Auth(Credentials(access, secret), "s3", server.region).add_auth(request)
    headers = dict(request.headers.items())
    return httpx.put(f"{server.url}{path}", content=b"", headers=headers)


def test_a_bucket_before_an_ip_address_is_virtual_hosted(server: ServerProcess) -> None:
    """What botocore sends for a dotted bucket on an IP endpoint (``my.bucket.127.0.0.1``):
    no resolver knows such a name, but a request that has it is not read path-style."""
    plain = server.client("s3")
    bucket = f"{unique()}.dotted"
    plain.create_bucket(Bucket=bucket)
    resp = _signed_put(server, f"{bucket}.127.0.0.1:{server.port}", "/k")
    assert resp.status_code == 200, resp.content
    assert plain.head_object(Bucket=bucket, Key="k")["ContentLength"] == 0


def test_a_virtual_host_put_is_never_read_as_create_bucket(server: ServerProcess) -> None:
    """The bug this guards: ``PUT /key`` with ``Host: bucket.localhost`` and no body created
    a bucket named after the key."""
    plain = server.client("s3")
    missing, key = unique("absent"), unique("key")
    resp = _signed_put(server, f"{missing}.localhost:{server.port}", f"/{key}")
    assert resp.status_code == 404
    assert b"<Code>NoSuchBucket</Code>" in resp.content
    # a host it cannot read either way is refused, not guessed at
    resp = _signed_put(server, f"{missing}.example.net:{server.port}", f"/{key}")
    assert resp.status_code == 400
    assert b"<Code>InvalidRequest</Code>" in resp.content
    assert b"server_names" in resp.content
    names = [b["Name"] for b in plain.list_buckets()["Buckets"]]
    assert key not in names
    assert missing not in names
    # and on a bucket that exists, the same request writes the (empty) object
    bucket = unique()
    plain.create_bucket(Bucket=bucket)
    resp = _signed_put(server, f"{bucket}.s3.localhost:{server.port}", f"/{key}")
    assert resp.status_code == 200, resp.content
    assert plain.head_object(Bucket=bucket, Key=key)["ContentLength"] == 0


def test_a_host_is_signed_so_the_bucket_in_it_cannot_be_swapped(server: ServerProcess) -> None:
    plain = server.client("s3")
    mine, other = unique(), unique()
    for name in (mine, other):
        plain.create_bucket(Bucket=name)
    access, secret = server.keys
    request = AWSRequest(
        method="PUT", url=f"{server.url}/k", data=b"", headers={"Host": f"{mine}.localhost"}
    )
    S3SigV4Auth(Credentials(access, secret), "s3", server.region).add_auth(request)
    headers = dict(request.headers.items())
    headers["Host"] = f"{other}.localhost"
    resp = httpx.put(f"{server.url}/k", content=b"", headers=headers)
    assert resp.status_code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in resp.content
    assert plain.list_objects_v2(Bucket=other)["KeyCount"] == 0
