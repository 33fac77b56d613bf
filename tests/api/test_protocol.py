"""The wire: authentication, routing and protocol-level errors, with real clients."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from sageport.cli.process import ServerProcess


def _raw(
    server: ServerProcess, headers: dict[str, str], body: bytes, sign: bool = True
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Send a hand-made JSON 1.1 request, signed with botocore unless told otherwise."""
    req = AWSRequest(method="POST", url=server.url + "/", data=body, headers=headers)
    if sign:
        access, secret = server.keys
        SigV4Auth(Credentials(access, secret), "sagemaker", server.region).add_auth(req)
    prepared = req.prepare()
    http = urllib.request.Request(
        prepared.url, data=body, headers=dict(prepared.headers), method="POST"
    )
    try:
        with urllib.request.urlopen(http, timeout=10) as resp:
            return (
                resp.status,
                json.loads(resp.read() or b"{}"),
                {k.lower(): v for k, v in resp.headers.items()},
            )
    except urllib.error.HTTPError as err:
        return (
            err.code,
            json.loads(err.read() or b"{}"),
            {k.lower(): v for k, v in err.headers.items()},
        )


def _client_with(server: ServerProcess, service: str, access: str, secret: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name=server.region,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def _code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return str(err.value.response["Error"]["Code"])


def test_sts_get_caller_identity(server: ServerProcess) -> None:
    ident = server.client("sts").get_caller_identity()
    assert ident["Account"] == "000000000000"
    assert ident["UserId"] == server.keys[0]


@pytest.mark.parametrize(
    ("service", "call", "wrong", "code", "status"),
    [
        ("sagemaker", lambda c: c.list_models(), "key", "UnrecognizedClientException", 400),
        ("sagemaker", lambda c: c.list_models(), "secret", "InvalidSignatureException", 403),
        ("logs", lambda c: c.describe_log_groups(), "secret", "InvalidSignatureException", 403),
        ("s3", lambda c: c.list_buckets(), "key", "InvalidAccessKeyId", 403),
        ("s3", lambda c: c.list_buckets(), "secret", "SignatureDoesNotMatch", 403),
        ("sts", lambda c: c.get_caller_identity(), "key", "InvalidClientTokenId", 403),
        ("sts", lambda c: c.get_caller_identity(), "secret", "SignatureDoesNotMatch", 403),
    ],
)
def test_bad_credentials_get_each_protocols_error(
    server: ServerProcess, service: str, call: Any, wrong: str, code: str, status: int
) -> None:
    access, secret = server.keys
    client = _client_with(
        server,
        service,
        "SPWRONGKEY" if wrong == "key" else access,
        secret + "x" if wrong == "secret" else secret,
    )
    with pytest.raises(ClientError) as err:
        call(client)
    assert _code(err) == code
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_skewed_clock_is_refused(server: ServerProcess) -> None:
    past = datetime.now(UTC) - timedelta(minutes=20)
    with mock.patch("botocore.auth.get_current_datetime", return_value=past.replace(tzinfo=None)):
        with pytest.raises(ClientError) as sm_err:
            server.client("sagemaker").list_models()
        with pytest.raises(ClientError) as s3_err:
            server.client("s3").list_buckets()
    assert _code(sm_err) == "InvalidSignatureException"
    assert "Signature expired" in sm_err.value.response["Error"]["Message"]
    assert _code(s3_err) == "RequestTimeTooSkewed"


def test_missing_and_garbled_authorization(server: ServerProcess) -> None:
    headers = {"X-Amz-Target": "SageMaker.ListModels", "Content-Type": "application/x-amz-json-1.1"}
    status, body, _ = _raw(server, headers, b"{}", sign=False)
    assert (status, body["__type"]) == (403, "MissingAuthenticationTokenException")
    status, body, _ = _raw(
        server, {**headers, "Authorization": "AWS4-HMAC-SHA256 garbage"}, b"{}", sign=False
    )
    assert (status, body["__type"]) == (400, "IncompleteSignatureException")
    status, body, _ = _raw(server, {**headers, "Authorization": "Bearer xyz"}, b"{}", sign=False)
    assert status == 400
    assert body["__type"] == "IncompleteSignatureException"


def test_validation_error_uses_aws_message_form(server: ServerProcess) -> None:
    with pytest.raises(ClientError) as err:
        server.client("sagemaker").describe_model(ModelName="bad name!")
    assert _code(err) == "ValidationException"
    assert err.value.response["Error"]["Message"].startswith(
        "1 validation error detected: Value 'bad name!' at 'modelName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: "
    )


def test_operation_in_the_model_but_not_implemented_is_a_clean_4xx(server: ServerProcess) -> None:
    with pytest.raises(ClientError) as err:
        server.client("sagemaker").list_notebook_instances()
    assert _code(err) == "UnknownOperationException"
    assert "ListNotebookInstances" in err.value.response["Error"]["Message"]
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_bad_json_unknown_target_and_oversized_body(server: ServerProcess) -> None:
    headers = {"X-Amz-Target": "SageMaker.ListModels", "Content-Type": "application/x-amz-json-1.1"}
    status, body, resp_headers = _raw(server, headers, b"{not json")
    assert (status, body["__type"]) == (400, "SerializationException")
    assert resp_headers.get("x-amzn-requestid")
    status, body, _ = _raw(server, {**headers, "X-Amz-Target": "SageMaker.NoSuchThing"}, b"{}")
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    status, body, _ = _raw(server, {**headers, "X-Amz-Target": "Nope.ListModels"}, b"{}")
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    big = json.dumps({"NameContains": "x" * (9 * 1024 * 1024)}).encode()
    status, body, resp_headers = _raw(server, headers, big)
    assert (status, body["__type"]) == (413, "RequestEntityTooLargeException")
    assert body["message"] == f"Request body exceeds the limit of {8 * 1024 * 1024} bytes."
    assert resp_headers["x-amzn-errortype"] == "RequestEntityTooLargeException"
    # a body just under the limit is read, validated and refused for what it says instead
    under = json.dumps({"NameContains": "x" * (7 * 1024 * 1024)}).encode()
    status, body, _ = _raw(server, headers, under)
    assert (status, body["__type"]) == (400, "ValidationException")
    assert (
        "at 'nameContains' failed to satisfy constraint: Member must have length"
        in (body["message"])
    )
    # and the server keeps serving
    assert "Models" in server.client("sagemaker").list_models()


def test_runtime_unknown_endpoint(server: ServerProcess) -> None:
    runtime = server.client("sagemaker-runtime")
    with pytest.raises(ClientError) as err:
        runtime.invoke_endpoint(EndpointName="nope", Body=b"{}", ContentType="application/json")
    assert _code(err) == "ValidationError"
    assert (
        err.value.response["Error"]["Message"] == "Endpoint nope of account 000000000000 not found."
    )
