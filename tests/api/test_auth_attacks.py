"""A signature authorises exactly what it signs: the attacks of issue 11, with real clients.

Each test takes something a key holder legitimately signed (a presigned URL handed to a
colleague, a captured header-signed request) or signs for the wrong service or region, bends
it, sends it to a live server over raw HTTP, and asserts the refusal (in the form of the
protocol the request looks like) and that nothing changed. The legitimate uses of the same
signatures are checked to still work.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

import boto3
import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from server_helpers import aws_error, module_server
from training_helpers import ROLE, unique

from sageport.cli.process import ServerProcess

server = module_server("auth-attacks")

BUCKET = "auth-attacks"
JSON = "application/x-amz-json-1.1"


Answer = tuple[int, dict[str, str], bytes]


def _send(
    server: ServerProcess,
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> Answer:
    """One raw request (``target``: path and query, or a whole URL on the server); headers
    as given, repeats included."""
    if target.startswith("http"):
        parts = urllib.parse.urlsplit(target)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if body or method in ("PUT", "POST"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _json_error(answer: Answer) -> tuple[int, str, str]:
    status, _, body = answer
    doc = json.loads(body)
    return status, doc["__type"], doc.get("message", "")


def _xml_error(answer: Answer) -> tuple[int, str, ET.Element]:
    status, _, body = answer
    root = ET.fromstring(body)
    error = root if root.tag == "Error" else root.find("{*}Error")
    assert error is not None, body
    code = error.find("{*}Code")
    if code is None:
        code = error.find("Code")
    assert code is not None, body
    return status, str(code.text), error


def _s3(server: ServerProcess, version: str = "s3v4", region: str | None = None) -> Any:
    access, secret = server.keys
    return boto3.client(
        "s3",
        endpoint_url=server.url,
        region_name=region or server.region,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        config=Config(signature_version=version, retries={"max_attempts": 1}),
    )


def _signed(
    server: ServerProcess,
    service: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes = b"",
    region: str | None = None,
) -> list[tuple[str, str]]:
    """The headers botocore's own SigV4 signer sends for this request."""
    access, secret = server.keys
    req = AWSRequest(method=method, url=server.url + path, data=body, headers=headers)
    signer = S3SigV4Auth if service == "s3" else SigV4Auth
    signer(Credentials(access, secret), service, region or server.region).add_auth(req)
    return [(k, v) for k, v in req.prepare().headers.items() if k.lower() != "content-length"]


def _create_job_body(name: str) -> bytes:
    return json.dumps(
        {
            "TrainingJobName": name,
            "AlgorithmSpecification": {
                "TrainingImage": "python:3.11",
                "TrainingInputMode": "File",
            },
            "RoleArn": ROLE,
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/out"},
            "ResourceConfig": {
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 1,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        }
    ).encode()


def _jobs_named(server: ServerProcess, name: str) -> list[str]:
    found = server.client("sagemaker").list_training_jobs(NameContains=name)
    return [j["TrainingJobName"] for j in found["TrainingJobSummaries"]]


@pytest.fixture(scope="module")
def bucket(server: ServerProcess) -> str:
    s3 = server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="secret.txt", Body=b"top secret")
    return BUCKET


# -- presigned URLs repurposed ----------------------------------------------------------------


@pytest.mark.parametrize("version", ["s3", "s3v4"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_presigned_get_plus_target_runs_no_job(
    server: ServerProcess, bucket: str, version: str, method: str
) -> None:
    url = _s3(server, version).generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "secret.txt"}, ExpiresIn=300
    )
    # the URL does what it was made for
    status, _, body = _send(server, "GET", url)
    assert (status, body) == (200, b"top secret")
    name = unique("presigned-attack")
    # (no Content-Type: SigV2 signs it, and the JSON protocol does not need it)
    target = [("X-Amz-Target", "SageMaker.CreateTrainingJob")]
    answer = _send(server, method, url, target, _create_job_body(name))
    status, code, message = _json_error(answer)
    assert 400 <= status < 500
    if method == "GET":  # the signature holds for a GET: the confinement refuses it
        assert code == "AccessDeniedException"
        assert "query-string signature" in message
    assert _jobs_named(server, name) == []


@pytest.mark.parametrize("version", ["s3", "s3v4"])
def test_presigned_put_repurposed_as_copy_changes_nothing(
    server: ServerProcess, bucket: str, version: str
) -> None:
    s3 = server.client("s3")
    key = f"victim-{version}.txt"
    s3.put_object(Bucket=bucket, Key=key, Body=b"original")
    url = _s3(server, version).generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300
    )
    for extra in (
        [("x-amz-copy-source", f"/{bucket}/secret.txt")],
        [("x-amz-copy-source", f"{bucket}/secret.txt"), ("x-amz-metadata-directive", "COPY")],
    ):
        status, code, error = _xml_error(_send(server, "PUT", url, extra))
        assert (status, code) == (403, "AccessDenied")
        if version == "s3v4":
            assert "x-amz-copy-source" in str(error.findtext("HeadersNotSigned"))
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"original"
    # and the URL still uploads what it was made for
    status, _, _ = _send(server, "PUT", url, [], b"replaced by the URL's holder")
    assert status == 200
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"replaced by the URL's holder"


def test_presigned_url_with_other_unsigned_headers_is_refused(
    server: ServerProcess, bucket: str
) -> None:
    url = _s3(server).generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "tagged.txt"}, ExpiresIn=300
    )
    status, code, error = _xml_error(_send(server, "PUT", url, [("x-amz-tagging", "a=b")], b"x"))
    assert (status, code, error.findtext("HeadersNotSigned")) == (
        403,
        "AccessDenied",
        "x-amz-tagging",
    )
    with aws_error("NoSuchKey"):
        server.client("s3").get_object(Bucket=bucket, Key="tagged.txt")


def test_presigned_url_for_sagemaker_scope_is_refused(server: ServerProcess) -> None:
    """A query signature made for the JSON control plane (no client makes one) covers no
    body: refused, whatever the signature."""
    access, secret = server.keys
    from botocore.auth import SigV4QueryAuth

    req = AWSRequest(
        method="POST", url=server.url + "/", headers={"X-Amz-Target": "SageMaker.ListModels"}
    )
    SigV4QueryAuth(Credentials(access, secret), "sagemaker", server.region, 300).add_auth(req)
    answer = _send(
        server,
        "POST",
        req.url,
        [("X-Amz-Target", "SageMaker.ListModels"), ("Content-Type", JSON)],
        b"{}",
    )
    status, code, _ = _json_error(answer)
    assert (status, code) == (400, "AccessDeniedException")


def test_presigned_expiry_longer_than_a_week_is_refused(server: ServerProcess, bucket: str) -> None:
    s3 = _s3(server)
    week = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "secret.txt"}, ExpiresIn=604800
    )
    assert _send(server, "GET", week)[0] == 200
    for expires, message in [
        (604801, "X-Amz-Expires must be less than a week (in seconds) that is 604800"),
        (-1, "X-Amz-Expires must be non-negative"),
    ]:
        url = week.replace("X-Amz-Expires=604800", f"X-Amz-Expires={expires}")
        status, code, error = _xml_error(_send(server, "GET", url))
        assert (status, code) == (400, "AuthorizationQueryParametersError")
        assert error.findtext("Message") == message
    url = week.replace("X-Amz-Expires=604800", "X-Amz-Expires=soon")
    status, code, _ = _xml_error(_send(server, "GET", url))
    assert (status, code) == (400, "AuthorizationQueryParametersError")


def test_presigned_sts_get_caller_identity_works(server: ServerProcess) -> None:
    """EKS-style tokens: a presigned STS GetCallerIdentity GET."""
    sts = server.client("sts")
    url = sts.generate_presigned_url(
        "get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET"
    )
    status, _, body = _send(server, "GET", url)
    assert status == 200, body
    assert server.keys[0].encode() in body


# -- captured header signatures ---------------------------------------------------------------


def test_captured_signature_with_other_target_or_body_is_refused(server: ServerProcess) -> None:
    name = unique("captured")
    describe = json.dumps({"TrainingJobName": name}).encode()
    headers = {"X-Amz-Target": "SageMaker.DescribeTrainingJob", "Content-Type": JSON}
    captured = _signed(server, "sagemaker", "POST", "/", headers, describe)
    # replayed as is, it is what it was (the job does not exist)
    status, code, _ = _json_error(_send(server, "POST", "/", captured, describe))
    assert (status, code) == (400, "ValidationException")
    other_target = [
        (k, "SageMaker.CreateTrainingJob" if k.lower() == "x-amz-target" else v)
        for k, v in captured
    ]
    for hdrs, body in [
        (other_target, describe),
        (other_target, _create_job_body(name)),
        (captured, _create_job_body(name)),
    ]:
        status, code, _ = _json_error(_send(server, "POST", "/", hdrs, body))
        assert (status, code) == (403, "InvalidSignatureException")
    # the target sent twice: the verifier reads one, the handler the other
    status, code, message = _json_error(
        _send(
            server,
            "POST",
            "/",
            [("X-Amz-Target", "SageMaker.CreateTrainingJob"), *captured],
            describe,
        )
    )
    assert (status, code) == (400, "AccessDeniedException")
    assert "more than once" in message
    assert _jobs_named(server, name) == []


def test_target_outside_the_signed_headers_is_refused(server: ServerProcess) -> None:
    name = unique("unsigned-target")
    body = _create_job_body(name)
    signed = _signed(server, "sagemaker", "POST", "/", {"Content-Type": JSON}, body)
    answer = _send(
        server, "POST", "/", [*signed, ("X-Amz-Target", "SageMaker.CreateTrainingJob")], body
    )
    status, code, message = _json_error(answer)
    assert (status, code) == (400, "AccessDeniedException")
    assert "X-Amz-Target is not among the signed headers" in message
    assert _jobs_named(server, name) == []


def test_unsigned_payload_is_for_s3_only(server: ServerProcess) -> None:
    name = unique("unsigned-payload")
    headers = {
        "X-Amz-Target": "SageMaker.CreateTrainingJob",
        "Content-Type": JSON,
        "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD",
    }
    signed = _signed(server, "sagemaker", "POST", "/", headers, b"{}")
    status, code, message = _json_error(_send(server, "POST", "/", signed, _create_job_body(name)))
    assert (status, code) == (403, "InvalidSignatureException")
    assert "x-amz-content-sha256" in message
    assert _jobs_named(server, name) == []


def test_captured_s3_put_with_added_copy_source_is_refused(
    server: ServerProcess, bucket: str
) -> None:
    s3 = server.client("s3")
    s3.put_object(Bucket=bucket, Key="captured.txt", Body=b"mine")
    path = f"/{bucket}/captured.txt"
    signed = _signed(server, "s3", "PUT", path, {}, b"")
    status, code, error = _xml_error(
        _send(server, "PUT", path, [*signed, ("x-amz-copy-source", f"/{bucket}/secret.txt")])
    )
    assert (status, code, error.findtext("HeadersNotSigned")) == (
        403,
        "AccessDenied",
        "x-amz-copy-source",
    )
    assert s3.get_object(Bucket=bucket, Key="captured.txt")["Body"].read() == b"mine"


# -- scope: service and region ----------------------------------------------------------------


def test_sagemaker_call_signed_for_s3_is_refused(server: ServerProcess) -> None:
    name = unique("s3-scoped")
    body = _create_job_body(name)
    headers = {"X-Amz-Target": "SageMaker.CreateTrainingJob", "Content-Type": JSON}
    signed = _signed(server, "s3", "POST", "/", headers, body)
    status, code, message = _json_error(_send(server, "POST", "/", signed, body))
    assert (status, code) == (403, "InvalidSignatureException")
    assert message.startswith("Credential should be scoped to correct service: 'sagemaker'.")
    assert _jobs_named(server, name) == []


def test_s3_call_signed_for_sagemaker_is_refused(server: ServerProcess, bucket: str) -> None:
    path = f"/{bucket}/secret.txt"
    signed = _signed(server, "sagemaker", "GET", path, {})
    status, code, error = _xml_error(_send(server, "GET", path, signed))
    assert (status, code) == (400, "AuthorizationHeaderMalformed")
    assert 'incorrect service "sagemaker"' in str(error.findtext("Message"))


@pytest.mark.parametrize(
    ("service", "target"),
    [("sagemaker", "Logs_20140328.DescribeLogGroups"), ("logs", "SageMaker.ListModels")],
)
def test_target_of_another_service_is_refused(
    server: ServerProcess, service: str, target: str
) -> None:
    signed = _signed(
        server, service, "POST", "/", {"X-Amz-Target": target, "Content-Type": JSON}, b"{}"
    )
    status, code, message = _json_error(_send(server, "POST", "/", signed, b"{}"))
    assert (status, code) == (403, "InvalidSignatureException")
    assert "Credential should be scoped to correct service" in message


def test_unknown_service_is_named(server: ServerProcess) -> None:
    signed = _signed(server, "ec2", "GET", f"/{BUCKET}", {})
    status, code, error = _xml_error(_send(server, "GET", f"/{BUCKET}", signed))
    assert (status, code) == (400, "AuthorizationHeaderMalformed")
    assert 'incorrect service "ec2"' in str(error.findtext("Message"))


def test_wrong_region_is_refused(server: ServerProcess, bucket: str) -> None:
    access, secret = server.keys
    other = "eu-west-3"
    sm = boto3.client(
        "sagemaker",
        endpoint_url=server.url,
        region_name=other,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )
    with aws_error("InvalidSignatureException") as err:
        sm.list_models()
    assert err.value.response["Error"]["Message"].startswith(
        "Credential should be scoped to a valid region."
    )
    # (boto3's S3 client reads the Region of this error and signs again for it, as with AWS)
    path = f"/{bucket}?list-type=2"
    signed = _signed(server, "s3", "GET", path, {}, region=other)
    status, code, error = _xml_error(_send(server, "GET", path, signed))
    assert (status, code) == (400, "AuthorizationHeaderMalformed")
    assert error.findtext("Message") == (
        f"The authorization header is malformed; the region '{other}' is wrong; "
        f"expecting '{server.region}'"
    )
    assert error.findtext("Region") == server.region
    assert _s3(server, region=other).list_objects_v2(Bucket=bucket)["KeyCount"] >= 1
    url = _s3(server, region=other).generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "secret.txt"}, ExpiresIn=60
    )
    status, code, error = _xml_error(_send(server, "GET", url))
    assert (status, code) == (400, "AuthorizationQueryParametersError")
    assert f"the region '{other}' is wrong" in str(error.findtext("Message"))


def test_iam_is_a_parseable_access_denied(server: ServerProcess) -> None:
    with aws_error("AccessDenied") as err:
        server.client("iam").get_role(RoleName="x")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "iam:GetRole" in err.value.response["Error"]["Message"]


def test_unsigned_variant_header_on_invoke_endpoint_is_refused(server: ServerProcess) -> None:
    path = "/endpoints/no-such-endpoint/invocations"
    signed = _signed(server, "sagemaker", "POST", path, {"Content-Type": "application/json"}, b"{}")
    status, _, body = _send(server, "POST", path, signed, b"{}")
    assert (status, json.loads(body)["ErrorCode"]) == (400, "ValidationError")
    bent = [*signed, ("X-Amzn-SageMaker-Target-Variant", "other")]
    status, _, body = _send(server, "POST", path, bent, b"{}")
    assert (status, json.loads(body)["ErrorCode"]) == (400, "AccessDeniedException")
    assert "x-amzn-sagemaker-target-variant" in json.loads(body)["Message"]
