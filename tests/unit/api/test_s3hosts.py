"""Which bucket a Host names: every request is path-style, virtual-hosted or refused."""

from __future__ import annotations

import socket

import pytest

from sageport.api.s3hosts import VirtualHosts
from sageport.errors import InvalidRequestS3
from sageport.settings import Settings

HOSTS = VirtualHosts(["127.0.0.1", "gpu-box", "sageport.example.com"])


@pytest.mark.parametrize(
    ("host", "bucket"),
    [
        # path-style: the server's own names, addresses, single labels, S3 endpoint names
        ("127.0.0.1:5757", None),
        ("[::1]:5757", None),
        ("10.1.2.3", None),
        ("localhost:5757", None),
        ("LOCALHOST.", None),
        ("gpu-box:5757", None),
        ("sageport.example.com", None),
        ("sageport", None),  # a container's name
        ("s3.localhost:5757", None),
        ("s3.us-east-1.localhost", None),
        ("s3.amazonaws.com", None),
        ("s3.eu-west-1.amazonaws.com", None),
        ("s3-us-west-2.amazonaws.com", None),
        ("", None),
        # virtual-hosted
        ("bucket.localhost:5757", "bucket"),
        ("my.dotted.bucket.localhost", "my.dotted.bucket"),
        ("bucket.s3.localhost:5757", "bucket"),
        ("bucket.s3.us-east-1.localhost", "bucket"),
        ("s3-backups.localhost", "s3-backups"),  # a bucket's name, not an endpoint label
        ("data.gpu-box:5757", "data"),
        ("data.sageport.example.com", "data"),
        ("my.bucket.127.0.0.1:5757", "my.bucket"),  # botocore: a dotted bucket, IP endpoint
        ("bucket.s3.amazonaws.com", "bucket"),
        ("bucket.s3.us-west-2.amazonaws.com", "bucket"),
        ("bucket.s3-us-west-2.amazonaws.com", "bucket"),
    ],
)
def test_host_names_a_bucket_or_none(host: str, bucket: str | None) -> None:
    assert HOSTS.bucket(host) == bucket


@pytest.mark.parametrize(
    "host", ["gpu-box.lan:5757", "bucket.example.org", "s3-backups.example.com", "a.b.c"]
)
def test_a_name_the_server_does_not_know_is_refused(host: str) -> None:
    with pytest.raises(InvalidRequestS3) as exc:
        HOSTS.bucket(host)
    assert "server_names" in exc.value.message
    assert "addressing_style" in exc.value.message


def test_names_come_from_the_settings() -> None:
    hosts = VirtualHosts.of(Settings(host="10.0.0.5", server_names=["box.lan"]))
    assert hosts.bucket("box.lan:5757") is None
    assert hosts.bucket("b.box.lan:5757") == "b"
    assert hosts.bucket(f"b.{socket.gethostname()}") == "b"
    assert hosts.bucket("b.10.0.0.5") == "b"
    with pytest.raises(ValueError, match="server_names"):
        Settings(server_names="box.lan")  # type: ignore[arg-type]
