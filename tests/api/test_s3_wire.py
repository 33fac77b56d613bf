"""S3 on the wire, with hand-made requests where boto3 would not send them: aws-chunked bodies
with trailing checksums, bad XML, oversized bodies, hostile bucket names, broken or missing
authentication, presigned URLs gone bad, and operations sageport does not serve."""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import os
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock
from xml.etree import ElementTree as ET

import boto3
import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

from sageport.cli.process import ServerProcess

MiB = 1024 * 1024


@pytest.fixture
def s3(server: ServerProcess) -> Any:
    return server.client("s3")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"wire-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def _error(body: bytes) -> dict[str, str]:
    root = ET.fromstring(body)
    assert root.tag == "Error", body
    return {child.tag: child.text or "" for child in root}


def _send(
    server: ServerProcess,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    sign: bool = True,
    context: dict[str, Any] | None = None,
) -> tuple[int, bytes]:
    """A request signed with botocore's S3 SigV4 signer, sent with the path exactly as given."""
    req = AWSRequest(method=method, url=server.url + path, data=body, headers=headers or {})
    req.context.update(context or {})
    if sign:
        access, secret = server.keys
        S3SigV4Auth(Credentials(access, secret), "s3", server.region).add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        # http.client sends the path as given: no normalising of ``..`` on the way
        conn.request(method, path, body=body, headers=dict(req.headers.items()))
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _chunked(data: bytes, *, wrong_checksum: bool = False) -> tuple[bytes, dict[str, str]]:
    """``data`` encoded aws-chunked by botocore, with its CRC32 in a trailer."""
    wrapper = AwsChunkedWrapper(
        io.BytesIO(data),
        checksum_cls=Crc32Checksum,
        checksum_name="x-amz-checksum-crc32",
        chunk_size=64 * 1024,
    )
    body = wrapper.read()
    if wrong_checksum:
        good = base64.b64encode(zlib.crc32(data).to_bytes(4, "big"))
        bad = base64.b64encode(((zlib.crc32(data) + 1) % 2**32).to_bytes(4, "big"))
        assert good in body
        body = body.replace(good, bad)
    headers = {
        "Content-Encoding": "aws-chunked",
        "X-Amz-Decoded-Content-Length": str(len(data)),
        "X-Amz-Trailer": "x-amz-checksum-crc32",
        "Content-Type": "application/octet-stream",
    }
    return body, headers


TRAILER = {"checksum": {"request_algorithm": {"in": "trailer", "algorithm": "crc32"}}}


# -- aws-chunked bodies with trailing checksums ----------------------------------------------


def test_aws_chunked_put_with_trailing_checksum(
    server: ServerProcess, s3: Any, bucket: str
) -> None:
    data = os.urandom(300 * 1024 + 17)
    body, headers = _chunked(data)
    status, answer = _send(server, "PUT", f"/{bucket}/chunked.bin", body, headers, context=TRAILER)
    assert status == 200, answer
    head = s3.head_object(Bucket=bucket, Key="chunked.bin", ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert head["ChecksumCRC32"] == base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    # the framing is not the object's: no aws-chunked Content-Encoding is kept
    assert "ContentEncoding" not in head
    assert s3.get_object(Bucket=bucket, Key="chunked.bin")["Body"].read() == data


def test_aws_chunked_upload_part(server: ServerProcess, s3: Any, bucket: str) -> None:
    first, last = os.urandom(5 * MiB), os.urandom(1000)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp.bin")["UploadId"]
    etags = []
    for number, data in ((1, first), (2, last)):
        body, headers = _chunked(data)
        path = f"/{bucket}/mp.bin?partNumber={number}&uploadId={uid}"
        status, answer = _send(server, "PUT", path, body, headers, context=TRAILER)
        assert status == 200, answer
        etags.append(hashlib.md5(data).hexdigest())
    parts = s3.list_parts(Bucket=bucket, Key="mp.bin", UploadId=uid)["Parts"]
    assert [p["ETag"].strip('"') for p in parts] == etags
    assert (
        parts[1]["ChecksumCRC32"] == base64.b64encode(zlib.crc32(last).to_bytes(4, "big")).decode()
    )
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp.bin",
        UploadId=uid,
        MultipartUpload={
            "Parts": [{"PartNumber": n, "ETag": e} for n, e in ((1, etags[0]), (2, etags[1]))]
        },
    )
    assert s3.get_object(Bucket=bucket, Key="mp.bin")["Body"].read() == first + last


def test_wrong_trailing_checksum_is_bad_digest_and_stores_nothing(
    server: ServerProcess, s3: Any, bucket: str
) -> None:
    body, headers = _chunked(b"precious bytes", wrong_checksum=True)
    status, answer = _send(server, "PUT", f"/{bucket}/bad.bin", body, headers, context=TRAILER)
    assert status == 400
    error = _error(answer)
    assert error["Code"] == "BadDigest"
    assert "CRC32" in error["Message"]
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="bad.bin")
    assert exc.value.response["Error"]["Code"] == "404"

    uid = s3.create_multipart_upload(Bucket=bucket, Key="bad-mp")["UploadId"]
    path = f"/{bucket}/bad-mp?partNumber=1&uploadId={uid}"
    status, answer = _send(server, "PUT", path, body, headers, context=TRAILER)
    assert (status, _error(answer)["Code"]) == (400, "BadDigest")
    assert s3.list_parts(Bucket=bucket, Key="bad-mp", UploadId=uid).get("Parts", []) == []


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"<Delete><Object><Key>x</Key>", b"not xml at all", b"<a></b>"])
def test_malformed_xml_is_malformed_xml(
    server: ServerProcess, s3: Any, bucket: str, body: bytes
) -> None:
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    status, answer = _send(server, "POST", f"/{bucket}?delete", body, {"Content-MD5": md5})
    assert (status, _error(answer)["Code"]) == (400, "MalformedXML")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    status, answer = _send(server, "POST", f"/{bucket}/k?uploadId={uid}", body)
    assert (status, _error(answer)["Code"]) == (400, "MalformedXML")
    # the upload is untouched and still completes
    etag = s3.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=1, Body=b"z")["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )  # fmt: skip
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"z"


def test_oversized_bodies(server: ServerProcess, s3: Any, bucket: str) -> None:
    # a PutObject over 5 GiB is refused from its headers, before any byte is read
    too_big = str(5 * 1024**3 + 1)
    status, answer = _send(
        server, "PUT", f"/{bucket}/huge", headers={"Content-Length": too_big,
                                                  "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"},
    )  # fmt: skip
    error = _error(answer)
    assert (status, error["Code"]) == (400, "EntityTooLarge")
    assert error["MaxSizeAllowed"] == str(5 * 1024**3)
    # an aws-chunked one declares its size in x-amz-decoded-content-length
    body, headers = _chunked(b"tiny")
    headers["X-Amz-Decoded-Content-Length"] = too_big
    status, answer = _send(server, "PUT", f"/{bucket}/huge", body, headers, context=TRAILER)
    assert (status, _error(answer)["Code"]) == (400, "EntityTooLarge")
    # XML request bodies have a small limit of their own
    objects = "".join(f"<Object><Key>{'k' * 1000}-{i}</Key></Object>" for i in range(5000))
    xml = f"<Delete>{objects}</Delete>".encode()
    status, answer = _send(server, "POST", f"/{bucket}?delete", xml)
    error = _error(answer)
    assert (status, error["Code"]) == (400, "MaxMessageLengthExceeded")
    assert "too big" in error["Message"]
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="huge")
    assert s3.list_buckets()["Buckets"]  # and the server keeps serving


@pytest.mark.parametrize(
    "path",
    ["/../etc/passwd", "/%2E%2E/etc/passwd", "/./x", "/.hidden/k", "/a..b/k", "/Upper_Case",
     "/ab", "/" + "a" * 64, "/bad%00name/k", "/192.168.1.1"],
)  # fmt: skip
def test_invalid_bucket_names_are_invalid_bucket_name(server: ServerProcess, path: str) -> None:
    for method in ("GET", "PUT"):
        status, answer = _send(server, method, path)
        error = _error(answer)
        assert (status, error["Code"]) == (400, "InvalidBucketName"), (method, path, error)
    # nothing was created beside the data folder
    assert not (server.data_dir.parent / "etc").exists()
    assert not (server.data_dir / "etc").exists()


# -- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "status", "code"),
    [
        (None, 403, "AccessDenied"),
        ("garbage", 400, "InvalidArgument"),
        ("Bearer abc.def", 400, "InvalidArgument"),
        ("AWS nocolon", 400, "InvalidArgument"),
        ("AWS4-HMAC-SHA256 Credential=x", 400, "AuthorizationHeaderMalformed"),
        ("AWS4-HMAC-SHA256 Credential=SPNOSUCHKEY/20250101/us-east-1/s3/aws4_request, "
         "SignedHeaders=host, Signature=00", 403, "InvalidAccessKeyId"),
        ("AWS SPNOSUCHKEY:c2lnbmF0dXJl", 403, "InvalidAccessKeyId"),
    ],
)  # fmt: skip
def test_missing_or_garbled_authorization(
    server: ServerProcess, bucket: str, authorization: str | None, status: int, code: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    headers["X-Amz-Date"] = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    got, answer = _send(server, "GET", f"/{bucket}", headers=headers, sign=False)
    error = _error(answer)
    assert (got, error["Code"]) == (status, code), error
    assert error["Message"]
    assert error["RequestId"]


def test_signature_v2_headers_are_verified(server: ServerProcess, bucket: str) -> None:
    v2 = server.client("s3", config=Config(signature_version="s3", retries={"max_attempts": 1}))
    v2.put_object(Bucket=bucket, Key="v2.txt", Body=b"signed the old way")
    assert v2.get_object(Bucket=bucket, Key="v2.txt")["Body"].read() == b"signed the old way"
    access, secret = server.keys
    wrong = boto3.client(
        "s3",
        endpoint_url=server.url,
        region_name=server.region,
        aws_access_key_id=access,
        aws_secret_access_key=secret + "x",
        config=Config(signature_version="s3", retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as exc:
        wrong.get_object(Bucket=bucket, Key="v2.txt")
    assert exc.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_tampered_expired_and_foreign_presigned_urls(
    server: ServerProcess, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="shared.txt", Body=b"for your eyes")
    s3.put_object(Bucket=bucket, Key="other.txt", Body=b"not for yours")
    v4 = server.client("s3", config=Config(signature_version="s3v4"))
    url = v4.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "shared.txt"}, ExpiresIn=300
    )
    assert httpx.get(url).content == b"for your eyes"
    for tampered in (
        url.replace("shared.txt", "other.txt"),
        url.replace("X-Amz-Expires=300", "X-Amz-Expires=301"),
        url[:-4] + ("0000" if not url.endswith("0000") else "1111"),
    ):
        resp = httpx.get(tampered)
        assert (resp.status_code, _error(resp.content)["Code"]) == (403, "SignatureDoesNotMatch")

    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=an_hour_ago):
        old = v4.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "shared.txt"}, ExpiresIn=60
        )
    resp = httpx.get(old)
    error = _error(resp.content)
    assert (resp.status_code, error["Code"]) == (403, "AccessDenied")
    assert error["Message"] == "Request has expired"

    v2 = server.client("s3")  # boto3's default presigner: SigV2 query string
    with mock.patch("time.time", return_value=datetime.now(UTC).timestamp() - 3600):
        old_v2 = v2.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "shared.txt"}, ExpiresIn=60
        )
    resp = httpx.get(old_v2)
    assert (resp.status_code, _error(resp.content)["Code"]) == (403, "AccessDenied")

    stranger = boto3.client(
        "s3", endpoint_url=server.url, region_name=server.region,
        aws_access_key_id="SPSTRANGER", aws_secret_access_key="x",
        config=Config(signature_version="s3v4"),
    )  # fmt: skip
    foreign = stranger.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "shared.txt"}, ExpiresIn=60
    )
    resp = httpx.get(foreign)
    assert (resp.status_code, _error(resp.content)["Code"]) == (403, "InvalidAccessKeyId")


# -- operations sageport does not serve ------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "operation"),
    [
        (lambda s3, b: s3.get_bucket_tagging(Bucket=b), "GetBucketTagging"),
        (lambda s3, b: s3.put_bucket_versioning(
            Bucket=b, VersioningConfiguration={"Status": "Enabled"}), "PutBucketVersioning"),
        (lambda s3, b: s3.list_object_versions(Bucket=b), "ListObjectVersions"),
        (lambda s3, b: s3.get_object_tagging(Bucket=b, Key="k"), "GetObjectTagging"),
        (lambda s3, b: s3.get_object_attributes(
            Bucket=b, Key="k", ObjectAttributes=["ETag"]), "GetObjectAttributes"),
    ],
)  # fmt: skip
def test_unserved_operation_is_not_implemented_by_name(
    s3: Any, bucket: str, call: Any, operation: str
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        call(s3, bucket)
    error = exc.value.response["Error"]
    assert error["Code"] == "NotImplemented"
    assert error["Message"].startswith(f"{operation} is not implemented by sageport")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    # the object is untouched
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
