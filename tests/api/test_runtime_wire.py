"""InvokeEndpoint at the wire: authentication and body errors in the runtime's own form, bodies
sent in pieces, and S3 still owning a bucket called ``endpoints`` (the runtime is answered
before the generic protocol machinery, so these are checked with real clients)."""

from __future__ import annotations

import http.client
import json
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from sageport.cli.process import ServerProcess

PATH = "/endpoints/no-such-endpoint/invocations"


def _runtime(server: ServerProcess, access: str, secret: str) -> Any:
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=server.url,
        region_name=server.region,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def _post(
    server: ServerProcess, headers: dict[str, str], chunks: list[bytes]
) -> tuple[int, dict[str, str], dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("POST", PATH, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        for chunk in chunks:
            conn.send(chunk)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(resp.read())
    finally:
        conn.close()


def _signed_headers(server: ServerProcess, body: bytes, chunked: bool) -> dict[str, str]:
    req = AWSRequest(
        method="POST",
        url=server.url + PATH,
        data=body,
        headers={"Content-Type": "application/json"},
    )
    SigV4Auth(Credentials(*server.keys), "sagemaker", server.region).add_auth(req)
    headers = {k: v for k, v in req.headers.items() if k.lower() != "content-length"}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
    else:
        headers["Content-Length"] = str(len(body))
    return headers


@pytest.mark.parametrize(
    ("wrong", "code", "status"),
    [("key", "UnrecognizedClientException", 400), ("secret", "InvalidSignatureException", 403)],
)
def test_bad_credentials_get_the_runtime_s_error(
    server: ServerProcess, wrong: str, code: str, status: int
) -> None:
    access, secret = server.keys
    client = _runtime(
        server,
        "SPWRONGKEY" if wrong == "key" else access,
        secret + "x" if wrong == "secret" else secret,
    )
    with pytest.raises(ClientError) as err:
        client.invoke_endpoint(EndpointName="anything", Body=b"[1]", ContentType="text/csv")
    assert err.value.response["Error"]["Code"] == code
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_unsigned_and_tampered_requests_are_refused(server: ServerProcess) -> None:
    status, headers, body = _post(
        server, {"Content-Type": "application/json", "Content-Length": "3"}, [b"[1]"]
    )
    assert (status, body["ErrorCode"]) == (403, "MissingAuthenticationTokenException")
    assert headers["x-amzn-errortype"] == "MissingAuthenticationTokenException:"
    assert headers["x-amzn-requestid"]
    signed = _signed_headers(server, b"[1]", chunked=False)
    status, _, body = _post(server, signed, [b"[2]"])
    assert (status, body["ErrorCode"]) == (403, "InvalidSignatureException")


def test_a_body_sent_in_chunks_is_read_whole_and_verified(server: ServerProcess) -> None:
    body = json.dumps([[0.5] * 784] * 40).encode()
    pieces = [body[i : i + 4096] for i in range(0, len(body), 4096)]
    framed = [f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces] + [b"0\r\n\r\n"]
    status, _, answer = _post(server, _signed_headers(server, body, chunked=True), framed)
    # the signature held over the reassembled body: the request got as far as routing
    assert (status, answer["ErrorCode"]) == (400, "ValidationError")
    assert "no-such-endpoint" in answer["Message"]


def test_a_body_over_the_server_s_limit_is_refused_with_413(server: ServerProcess) -> None:
    body = b"1" * (9 * 1024 * 1024)
    headers = _signed_headers(server, body, chunked=False)
    status, _, answer = _post(
        server, headers, [body[i : i + 65536] for i in range(0, len(body), 65536)]
    )
    assert (status, answer["ErrorCode"]) == (413, "RequestEntityTooLargeException")


def test_s3_keeps_a_bucket_called_endpoints(server: ServerProcess) -> None:
    s3 = server.client("s3")
    s3.create_bucket(Bucket="endpoints")
    key = "my-ep/invocations"
    upload = s3.create_multipart_upload(Bucket="endpoints", Key=key)  # POST /endpoints/...
    part = s3.upload_part(
        Bucket="endpoints", Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"data"
    )
    s3.complete_multipart_upload(
        Bucket="endpoints",
        Key=key,
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert s3.get_object(Bucket="endpoints", Key=key)["Body"].read() == b"data"
    s3.delete_object(Bucket="endpoints", Key=key)
    s3.delete_bucket(Bucket="endpoints")
