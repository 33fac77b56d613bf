from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.auth import S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sageport.api.auth import AuthFailure, AuthProblem, SignedRequest, Verifier
from sageport.services.credentials import KeyPair

KEY = KeyPair("SPTESTKEY", "secret/with+chars")
NOW = datetime.now(UTC).replace(microsecond=0)


def _sign(
    body: bytes, secret: str = KEY.secret_access_key, access: str = KEY.access_key_id
) -> AWSRequest:
    req = AWSRequest(
        method="POST",
        url="http://127.0.0.1:5757/",
        data=body,
        headers={
            "X-Amz-Target": "SageMaker.ListModels",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    SigV4Auth(Credentials(access, secret), "sagemaker", "us-east-1").add_auth(req)
    return req


def _as_received(req: AWSRequest) -> SignedRequest:
    headers = {k.lower(): v for k, v in req.headers.items()}
    headers["host"] = "127.0.0.1:5757"
    path, _, query = req.url.split("127.0.0.1:5757", 1)[1].partition("?")
    return SignedRequest(req.method, path, query, headers, "127.0.0.1:5757")


def test_botocore_signature_verifies() -> None:
    req = _sign(b"{}")
    scope = Verifier([KEY], 900).verify(_as_received(req), b"{}", datetime.now(UTC))
    assert (scope.access_key, scope.region, scope.service) == (
        "SPTESTKEY",
        "us-east-1",
        "sagemaker",
    )


@pytest.mark.parametrize(
    ("req_kwargs", "body", "problem"),
    [
        ({"secret": "wrong"}, b"{}", AuthProblem.BAD_SIGNATURE),
        ({"access": "NOSUCHKEY"}, b"{}", AuthProblem.UNKNOWN_KEY),
        ({}, b'{"tampered": 1}', AuthProblem.BAD_SIGNATURE),
    ],
)
def test_bad_requests_are_refused(
    req_kwargs: dict[str, str], body: bytes, problem: AuthProblem
) -> None:
    req = _sign(b"{}", **req_kwargs)
    with pytest.raises(AuthFailure) as info:
        Verifier([KEY], 900).verify(_as_received(req), body, datetime.now(UTC))
    assert info.value.problem is problem


def test_skewed_clock_is_refused() -> None:
    req = _sign(b"{}")
    with pytest.raises(AuthFailure) as info:
        Verifier([KEY], 900).verify(
            _as_received(req), b"{}", datetime.now(UTC) + timedelta(minutes=20)
        )
    assert info.value.problem is AuthProblem.SKEWED


def test_missing_and_garbled_authorization() -> None:
    bare = SignedRequest("POST", "/", "", {"host": "h"}, "h")
    with pytest.raises(AuthFailure) as missing:
        Verifier([KEY], 900).verify(bare, b"", NOW)
    assert missing.value.problem is AuthProblem.MISSING
    garbled = SignedRequest(
        "POST", "/", "", {"host": "h", "authorization": "AWS4-HMAC-SHA256 nonsense"}, "h"
    )
    with pytest.raises(AuthFailure) as bad:
        Verifier([KEY], 900).verify(garbled, b"", NOW)
    assert bad.value.problem is AuthProblem.MALFORMED


def test_presigned_s3_url_verifies_and_expires() -> None:
    req = AWSRequest(method="GET", url="http://127.0.0.1:5757/bucket/some%20key.txt")
    S3SigV4QueryAuth(
        Credentials(KEY.access_key_id, KEY.secret_access_key), "s3", "us-east-1", expires=60
    ).add_auth(req)
    received = _as_received(req)
    assert Verifier([KEY], 900).verify(received, None, datetime.now(UTC)).service == "s3"
    with pytest.raises(AuthFailure) as info:
        Verifier([KEY], 900).verify(received, None, datetime.now(UTC) + timedelta(seconds=120))
    assert info.value.problem is AuthProblem.EXPIRED


def test_presigned_v2_url_from_plain_boto3_verifies() -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:5757",
        region_name="us-east-1",
        aws_access_key_id=KEY.access_key_id,
        aws_secret_access_key=KEY.secret_access_key,
    )
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": "bkt", "Key": "a b.txt"}, ExpiresIn=60
    )
    path, _, query = url.split("127.0.0.1:5757", 1)[1].partition("?")
    received = SignedRequest("GET", path, query, {"host": "127.0.0.1:5757"}, "127.0.0.1:5757")
    assert (
        Verifier([KEY], 900).verify(received, None, datetime.now(UTC)).access_key
        == KEY.access_key_id
    )
    with pytest.raises(AuthFailure) as info:
        Verifier([KEY], 900).verify(received, None, datetime.now(UTC) + timedelta(seconds=120))
    assert info.value.problem is AuthProblem.EXPIRED
    tampered = SignedRequest(
        "GET", path.replace("bkt", "other"), query, {"host": "127.0.0.1:5757"}, "127.0.0.1:5757"
    )
    with pytest.raises(AuthFailure):
        Verifier([KEY], 900).verify(tampered, None, datetime.now(UTC))


def _v2_signed(secret: str = KEY.secret_access_key) -> SignedRequest:
    from botocore.auth import HmacV1Auth

    req = AWSRequest(
        method="PUT",
        url="http://127.0.0.1:5757/bkt/a%20b.txt?uploadId=u&partNumber=1",
        headers={"Content-Type": "text/plain", "x-amz-meta-owner": "me"},
    )
    HmacV1Auth(Credentials(KEY.access_key_id, secret)).add_auth(req)
    return _as_received(req)


def test_s3_v2_header_signature_verifies_for_s3_only() -> None:
    verifier = Verifier([KEY], 900)
    scope = verifier.verify(_v2_signed(), None, datetime.now(UTC))
    assert (scope.access_key, scope.service) == (KEY.access_key_id, "s3")
    with pytest.raises(AuthFailure) as wrong:
        verifier.verify(_v2_signed("nope"), None, datetime.now(UTC))
    assert wrong.value.problem is AuthProblem.BAD_SIGNATURE
    with pytest.raises(AuthFailure) as late:
        verifier.verify(_v2_signed(), None, datetime.now(UTC) + timedelta(minutes=20))
    assert late.value.problem is AuthProblem.SKEWED
    # a service that signs its body (JSON, query) never takes the v2 form, which does not
    with pytest.raises(AuthFailure) as json_service:
        verifier.verify(_v2_signed(), b"{}", datetime.now(UTC))
    assert json_service.value.problem is AuthProblem.MALFORMED


@pytest.mark.parametrize(
    ("authorization", "bad_argument"),
    [("Bearer x", True), ("AWS no-colon", True), ("AWS4-HMAC-SHA256 Credential=x", False)],
)
def test_unknown_authorization_kinds_are_marked(authorization: str, bad_argument: bool) -> None:
    req = SignedRequest("GET", "/b", "", {"host": "h", "authorization": authorization}, "h")
    with pytest.raises(AuthFailure) as info:
        Verifier([KEY], 900).verify(req, None, NOW)
    assert info.value.problem is AuthProblem.MALFORMED
    assert info.value.bad_argument is bad_argument
