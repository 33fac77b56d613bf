"""S3 against a live server with real boto3 clients (path-style, SigV4)."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from sageport.cli.process import ServerProcess

MiB = 1024 * 1024


def unique(prefix: str = "bkt") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3(server: ServerProcess) -> Any:
    return server.client("s3")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = unique()
    s3.create_bucket(Bucket=name)
    return name


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_bucket_lifecycle(s3: Any) -> None:
    name = unique()
    s3.create_bucket(Bucket=name)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=name)
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name)
    assert error_code(exc) == "404"


def test_create_bucket_with_location_constraint(s3: Any) -> None:
    name = unique()
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-west-1"


def test_put_get_head_delete_with_metadata(s3: Any, bucket: str) -> None:
    body = b"hello sageport"
    put = s3.put_object(
        Bucket=bucket,
        Key="dir/hello.txt",
        Body=body,
        ContentType="text/plain",
        Metadata={"Owner": "alice"},
        ServerSideEncryption="AES256",
        ExpectedBucketOwner="000000000000",
    )
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="dir/hello.txt")
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"owner": "alice"}
    assert got["ETag"] == put["ETag"]
    head = s3.head_object(Bucket=bucket, Key="dir/hello.txt")
    assert head["ContentLength"] == len(body)
    assert head["ServerSideEncryption"] == "AES256"
    s3.delete_object(Bucket=bucket, Key="dir/hello.txt")
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="dir/hello.txt")
    assert error_code(exc) == "404"


def test_range_get(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="r", Body=bytes(range(256)))
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=10-19")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == "bytes 10-19/256"
    assert got["Body"].read() == bytes(range(10, 20))
    tail = s3.get_object(Bucket=bucket, Key="r", Range="bytes=-6")
    assert tail["Body"].read() == bytes(range(250, 256))
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=300-")
    assert error_code(exc) == "InvalidRange"


def test_conditional_get(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"x")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"nope"')
    assert error_code(exc) == "PreconditionFailed"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304


def test_list_v2_with_delimiter_and_paginator(s3: Any, bucket: str) -> None:
    keys = [f"train/part-{i:03d}.csv" for i in range(7)] + ["val/a.csv", "val/b.csv", "README"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["train/", "val/"]
    assert [o["Key"] for o in top["Contents"]] == ["README"]
    assert top["KeyCount"] == 3
    pages = list(
        s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="train/", PaginationConfig={"PageSize": 3}
        )
    )
    assert [p["KeyCount"] for p in pages] == [3, 3, 1]
    assert pages[0]["IsTruncated"]
    assert "NextContinuationToken" in pages[0]
    listed = [o["Key"] for p in pages for o in p["Contents"]]
    assert listed == sorted(k for k in keys if k.startswith("train/"))
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="train/part-005.csv")
    assert [o["Key"] for o in after["Contents"]][:2] == ["train/part-006.csv", "val/a.csv"]
    v1 = s3.list_objects(Bucket=bucket, Prefix="val/")
    assert [o["Key"] for o in v1["Contents"]] == ["val/a.csv", "val/b.csv"]


def test_copy_object_and_metadata_directive(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"data", Metadata={"a": "1"})
    s3.copy_object(Bucket=bucket, Key="same-meta", CopySource={"Bucket": bucket, "Key": "src"})
    assert s3.head_object(Bucket=bucket, Key="same-meta")["Metadata"] == {"a": "1"}
    s3.copy_object(
        Bucket=bucket,
        Key="new-meta",
        CopySource=f"{bucket}/src",
        MetadataDirective="REPLACE",
        Metadata={"b": "2"},
    )
    got = s3.get_object(Bucket=bucket, Key="new-meta")
    assert got["Metadata"] == {"b": "2"}
    assert got["Body"].read() == b"data"


def test_delete_objects(s3: Any, bucket: str) -> None:
    for key in ["x", "y", "z"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b".")
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "x"}, {"Key": "y"}]})
    assert sorted(d["Key"] for d in out["Deleted"]) == ["x", "y"]
    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "z"}], "Quiet": True})
    assert "Deleted" not in quiet
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_presigned_get(server: ServerProcess, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="shared/file.bin", Body=b"presigned!")
    # boto3 presigns with SigV2 unless told otherwise; the server verifies SigV4 only
    signer = server.client("s3", config=Config(signature_version="s3v4"))
    url = signer.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "shared/file.bin"}, ExpiresIn=60
    )
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == b"presigned!"


@pytest.mark.slow
def test_multipart_upload_file(s3: Any, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    block = os.urandom(MiB)
    with open(src, "wb") as fh:
        for i in range(65):
            fh.write(block[i:] + block[:i])
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB)
    s3.upload_file(str(src), bucket, "big.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == 65 * MiB
    # S3's multipart ETag: md5 of the parts' binary md5s, "-", the part count
    data = src.read_bytes()
    parts = [data[i : i + 8 * MiB] for i in range(0, len(data), 8 * MiB)]
    assert len(parts) == 9
    expected = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    assert head["ETag"] == f'"{expected}-9"'
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="big.bin")["Contents"][0]
    assert listed["ETag"] == head["ETag"]
    del data, parts
    dst = tmp_path / "back.bin"
    s3.download_file(bucket, "big.bin", str(dst), Config=config)
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()


def test_multipart_low_level_and_abort(s3: Any, bucket: str) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ContentType="text/csv")
    uid = upload["UploadId"]
    part1 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=b"a")
    part2 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=2, Body=b"b")
    parts = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)["Parts"]
    assert [p["PartNumber"] for p in parts] == [1, 2]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [uid]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mp",
            UploadId=uid,
            MultipartUpload={
                "Parts": [
                    {"PartNumber": 1, "ETag": part1["ETag"]},
                    {"PartNumber": 2, "ETag": part2["ETag"]},
                ]
            },
        )
    assert error_code(exc) == "EntityTooSmall"
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid)
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)
    assert error_code(exc) == "NoSuchUpload"
    # a single small part is a valid last part
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=b"z")["ETag"]
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    assert done["ETag"].endswith('-1"')
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"z"


def test_errors(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=unique("missing"), Key="k")
    assert error_code(exc) == "NoSuchBucket"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="missing")
    assert error_code(exc) == "NoSuchKey"
    assert exc.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket="Not_A_Valid_Bucket")
    assert error_code(exc) == "InvalidBucketName"
    s3.put_object(Bucket=bucket, Key="keep", Body=b".")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=bucket)
    assert error_code(exc) == "BucketNotEmpty"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b".")
    assert error_code(exc) == "KeyTooLongError"
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=bucket)
    assert error_code(exc) == "BucketAlreadyOwnedByYou"


def test_sha256_mismatch_stores_nothing(server: ServerProcess, s3: Any, bucket: str) -> None:
    def tamper(request: Any, **_: Any) -> None:
        # after signing: same length, different bytes, so only the payload hash can tell
        request.body = b"PAYLOAD"

    client = server.client("s3")
    client.meta.events.register("before-send.s3.PutObject", tamper)
    with pytest.raises(ClientError) as exc:
        client.put_object(Bucket=bucket, Key="bad", Body=b"payload")
    assert error_code(exc) == "XAmzContentSHA256Mismatch"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="bad")


def test_path_traversal_keys_are_plain_keys(server: ServerProcess, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="../../etc/passwd", Body=b"not really")
    s3.put_object(Bucket=bucket, Key="a/../b", Body=b"dots")
    assert s3.get_object(Bucket=bucket, Key="../../etc/passwd")["Body"].read() == b"not really"
    assert s3.get_object(Bucket=bucket, Key="a/../b")["Body"].read() == b"dots"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="b")
    assert error_code(exc) == "NoSuchKey"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {"../../etc/passwd", "a/../b"}
    objects = (server.data_dir / "objects").resolve()
    # other servers' job folders hold sandbox account files named passwd: only the object's
    # own bytes matter, and they must be under objects/
    for path in server.data_dir.parent.rglob("passwd*"):
        if path.is_file() and path.read_bytes() == b"not really":
            assert objects in path.resolve().parents


def test_restart_keeps_buckets_and_objects(fresh_server: ServerProcess) -> None:
    s3 = fresh_server.client("s3")
    s3.create_bucket(Bucket="survivor")
    s3.put_object(Bucket="survivor", Key="deep/key.txt", Body=b"still here", Metadata={"k": "v"})
    fresh_server.restart()
    s3 = fresh_server.client("s3")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["survivor"]
    got = s3.get_object(Bucket="survivor", Key="deep/key.txt")
    assert got["Body"].read() == b"still here"
    assert got["Metadata"] == {"k": "v"}
