"""UploadPartCopy: multipart copies of real clients (``aws s3 cp``, boto3 ``copy``) and the
errors of bad part copies, against live servers (the embedded store, and a memory:// one)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from server_helpers import apply_sageport_env, aws_error, start_server

from sageport.cli.process import ServerProcess

MiB = 1024 * 1024


def unique(prefix: str = "cp") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3(server: ServerProcess) -> Any:
    return server.client("s3")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = unique()
    s3.create_bucket(Bucket=name)
    return name


def _md5(s3: Any, bucket: str, key: str) -> str:
    digest = hashlib.md5()
    for chunk in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(MiB):
        digest.update(chunk)
    return digest.hexdigest()


def test_boto3_managed_copy_is_a_multipart_copy(s3: Any, bucket: str) -> None:
    data = os.urandom(20 * MiB + 12345)
    s3.put_object(Bucket=bucket, Key="src.bin", Body=data, Metadata={"kind": "weights"})
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB)
    s3.copy({"Bucket": bucket, "Key": "src.bin"}, bucket, "dst.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="dst.bin")
    # three parts copied (8 + 8 + 4 MiB): the multipart ETag, not the source's
    assert head["ETag"].endswith('-3"')
    assert head["ContentLength"] == len(data)
    assert _md5(s3, bucket, "dst.bin") == hashlib.md5(data).hexdigest()


def test_upload_part_copy_ranges_and_result(s3: Any, bucket: str) -> None:
    data = os.urandom(6 * MiB)
    s3.put_object(Bucket=bucket, Key="src", Body=data)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="joined")["UploadId"]
    source = {"Bucket": bucket, "Key": "src"}
    first = s3.upload_part_copy(
        Bucket=bucket, Key="joined", UploadId=upload, PartNumber=1, CopySource=source,
        CopySourceRange=f"bytes=0-{5 * MiB - 1}",
    )["CopyPartResult"]  # fmt: skip
    assert first["ETag"] == f'"{hashlib.md5(data[: 5 * MiB]).hexdigest()}"'
    assert isinstance(first["LastModified"], datetime)
    whole = s3.upload_part_copy(  # no range: the whole source; a string CopySource
        Bucket=bucket, Key="joined", UploadId=upload, PartNumber=2, CopySource=f"{bucket}/src"
    )["CopyPartResult"]
    last = s3.upload_part_copy(
        Bucket=bucket, Key="joined", UploadId=upload, PartNumber=3, CopySource=source,
        CopySourceRange="bytes=10-19", CopySourceIfMatch=s3.head_object(**source)["ETag"],
    )["CopyPartResult"]  # fmt: skip
    parts = s3.list_parts(Bucket=bucket, Key="joined", UploadId=upload)["Parts"]
    assert [p["Size"] for p in parts] == [5 * MiB, 6 * MiB, 10]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="joined", UploadId=upload,
        MultipartUpload={"Parts": [
            {"PartNumber": n, "ETag": r["ETag"]} for n, r in ((1, first), (2, whole), (3, last))
        ]},
    )  # fmt: skip
    joined = s3.get_object(Bucket=bucket, Key="joined")["Body"].read()
    assert joined == data[: 5 * MiB] + data + data[10:20]


def test_upload_part_copy_refuses_bad_input(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"0123456789")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]

    def copy(**kwargs: Any) -> Any:
        args = {"Bucket": bucket, "Key": "dst", "UploadId": upload, "PartNumber": 1}
        args.setdefault("CopySource", {"Bucket": bucket, "Key": "src"})
        return s3.upload_part_copy(**{**args, **kwargs})

    for bad in ("bytes=5", "bytes=-3", "bytes=4-2", "bytes=0-1,3-4", "lines=0-1", "bytes=a-b"):
        with aws_error("InvalidArgument"):
            copy(CopySourceRange=bad)
    with aws_error("InvalidRange") as exc:
        copy(CopySourceRange="bytes=5-10")  # the last byte is 9
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    with aws_error("NoSuchKey"):
        copy(CopySource={"Bucket": bucket, "Key": "missing"})
    with aws_error("NoSuchBucket"):
        copy(CopySource={"Bucket": unique("gone"), "Key": "src"})
    with aws_error("InvalidArgument"):
        copy(CopySource=bucket)  # no key
    with aws_error("NoSuchUpload"):
        copy(UploadId="0" * 32)
    with aws_error("NoSuchUpload"):
        copy(UploadId="not-an-upload-id")
    with aws_error("InvalidArgument"):
        copy(PartNumber=10001)
    etag = s3.head_object(Bucket=bucket, Key="src")["ETag"]
    later = datetime.now(UTC) + timedelta(days=1)
    earlier = datetime.now(UTC) - timedelta(days=1)
    for condition in (
        {"CopySourceIfMatch": '"0123"'},
        {"CopySourceIfNoneMatch": etag},
        {"CopySourceIfModifiedSince": later},
        {"CopySourceIfUnmodifiedSince": earlier},
    ):
        with aws_error("PreconditionFailed"):
            copy(**condition)
    # S3's pairings: a matching If-Match overrules If-Unmodified-Since (copied) ...
    copy(CopySourceIfMatch=etag, CopySourceIfUnmodifiedSince=earlier)
    # ... and a failing If-None-Match is not rescued by If-Modified-Since
    with aws_error("PreconditionFailed"):
        copy(CopySourceIfNoneMatch=etag, CopySourceIfModifiedSince=earlier)
    # what failed stored no part: only the one copy that passed
    parts = s3.list_parts(Bucket=bucket, Key="dst", UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 10)]


def test_copy_object_takes_the_date_conditions_too(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"x")
    source = {"Bucket": bucket, "Key": "src"}
    with aws_error("PreconditionFailed"):
        s3.copy_object(
            Bucket=bucket, Key="dst", CopySource=source,
            CopySourceIfModifiedSince=datetime.now(UTC) + timedelta(days=1),
        )  # fmt: skip
    s3.copy_object(
        Bucket=bucket, Key="dst", CopySource=source,
        CopySourceIfUnmodifiedSince=datetime.now(UTC) + timedelta(days=1),
    )  # fmt: skip
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"x"


@pytest.mark.parametrize("version", ["s3", "s3v4"])
def test_presigned_upload_part_repurposed_as_part_copy_is_refused(
    server: ServerProcess, s3: Any, bucket: str, version: str
) -> None:
    """A URL presigned for UploadPart signs no ``x-amz-copy-source``: a holder who adds one
    (to copy an object the URL does not name into the upload) is refused, as for CopyObject."""
    s3.put_object(Bucket=bucket, Key="secret", Body=b"top secret")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    presigner = server.client("s3", config=Config(signature_version=version))
    url = presigner.generate_presigned_url(
        "upload_part",
        Params={"Bucket": bucket, "Key": "dst", "UploadId": upload, "PartNumber": 1},
        ExpiresIn=300,
    )
    for extra in (
        {"x-amz-copy-source": f"/{bucket}/secret"},
        {"x-amz-copy-source": f"{bucket}/secret", "x-amz-copy-source-range": "bytes=0-2"},
    ):
        resp = httpx.put(url, content=b"", headers=extra)
        assert resp.status_code == 403
        assert b"<Code>AccessDenied</Code>" in resp.content
    assert s3.list_parts(Bucket=bucket, Key="dst", UploadId=upload).get("Parts", []) == []


@pytest.fixture
def memory_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = start_server(tmp_path / "data", 'object_store_url = "memory://sageport-copy"\n')
    yield proc
    proc.stop()


def test_part_copy_on_an_fsspec_store(memory_server: ServerProcess) -> None:
    s3: Any = memory_server.client("s3")
    s3.create_bucket(Bucket="mem")
    data = os.urandom(9 * MiB)
    s3.put_object(Bucket="mem", Key="src", Body=data)
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.copy({"Bucket": "mem", "Key": "src"}, "mem", "dst", Config=config)
    assert s3.head_object(Bucket="mem", Key="dst")["ETag"].endswith('-2"')
    assert s3.get_object(Bucket="mem", Key="dst")["Body"].read() == data
    with aws_error("InvalidRange"):
        upload = s3.create_multipart_upload(Bucket="mem", Key="x")["UploadId"]
        s3.upload_part_copy(
            Bucket="mem", Key="x", UploadId=upload, PartNumber=1,
            CopySource={"Bucket": "mem", "Key": "src"}, CopySourceRange=f"bytes=0-{9 * MiB}",
        )  # fmt: skip


@pytest.mark.slow
def test_aws_cli_copies_100_mib_s3_to_s3(
    server: ServerProcess, s3: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``aws s3 cp s3://b/k s3://b/k2`` (the CLI's multipart copy past 8 MiB), with the
    environment ``sageport env`` exports."""
    apply_sageport_env(server, monkeypatch)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    data = os.urandom(MiB) * 100  # 100 MiB; one random MiB repeated is as good here
    s3.put_object(Bucket=bucket, Key="big.bin", Body=data)
    started = time.monotonic()
    done = subprocess.run(
        ["aws", "s3", "cp", f"s3://{bucket}/big.bin", f"s3://{bucket}/copy/big.bin"],
        check=False,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    head = s3.head_object(Bucket=bucket, Key="copy/big.bin")
    assert head["ContentLength"] == len(data)
    assert "-" in head["ETag"]  # a multipart copy, not a CopyObject
    assert _md5(s3, bucket, "copy/big.bin") == hashlib.md5(data).hexdigest()
    print(f"aws s3 cp of 100 MiB S3 to S3: {took:.2f} s")
