"""api.confine: the protocol a request may reach is chosen only by what its signature covers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.auth import HmacV1QueryAuth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sageport.api.auth import AuthFailure, AuthProblem, Scope, SignedRequest, Verifier
from sageport.api.confine import Claim, Confinement, SignedBy, Surface, claim_of, surface_of
from sageport.services.credentials import KeyPair

KEY = KeyPair("SPTESTKEY", "secret")
CREDS = Credentials(KEY.access_key_id, KEY.secret_access_key)
HOST = "127.0.0.1:5757"
REGION = "us-east-1"


def _received(req: AWSRequest, extra: dict[str, str] | None = None) -> SignedRequest:
    headers = {k.lower(): v for k, v in req.headers.items()}
    headers["host"] = HOST
    headers.update(extra or {})
    path, _, query = req.url.split(HOST, 1)[1].partition("?")
    return SignedRequest(req.method, path, query, headers, HOST)


def _header_signed(
    service: str, headers: dict[str, str], path: str = "/", region: str = REGION
) -> SignedRequest:
    req = AWSRequest(method="POST", url=f"http://{HOST}{path}", data=b"{}", headers=headers)
    SigV4Auth(CREDS, service, region).add_auth(req)
    return _received(req)


def _check(req: SignedRequest) -> Surface:
    claim = claim_of(req)
    surface = surface_of(req.method, req.raw_path, req.headers.get("x-amz-target", ""), claim)
    Confinement(REGION).check(req, claim, surface)
    return surface


def _refused(req: SignedRequest) -> AuthFailure:
    with pytest.raises(AuthFailure) as info:
        _check(req)
    return info.value


@pytest.mark.parametrize(
    ("method", "path", "target", "service", "surface"),
    [
        ("POST", "/", "SageMaker.ListModels", "sagemaker", Surface.SAGEMAKER),
        ("POST", "/", "SageMaker.ListModels", "logs", Surface.SAGEMAKER),
        ("POST", "/", "Logs_20140328.GetLogEvents", "sagemaker", Surface.LOGS),
        ("POST", "/", "", "logs", Surface.LOGS),
        ("POST", "/endpoints/e/invocations", "", "sagemaker", Surface.RUNTIME),
        ("POST", "/endpoints/e/invocations", "", "runtime.sagemaker", Surface.RUNTIME),
        ("POST", "/endpoints/e/invocations", "", "s3", Surface.S3),
        ("GET", "/_sageport/endpoints/e", "", "sagemaker", Surface.EXTENSIONS),
        ("POST", "/", "", "sts", Surface.STS),
        ("POST", "/", "", "iam", Surface.QUERY),
        ("POST", "/", "", "", Surface.SAGEMAKER),
        ("GET", "/bucket/key", "", "s3", Surface.S3),
        ("GET", "/bucket/key", "SageMaker.CreateTrainingJob", "s3", Surface.SAGEMAKER),
    ],
)
def test_surface_of(method: str, path: str, target: str, service: str, surface: Surface) -> None:
    claim = Claim(SignedBy.HEADER_V4, _scope(service), frozenset()) if service else None
    assert surface_of(method, path, target, claim) is surface


def _scope(service: str) -> Scope:
    return Scope("k", "20250101", REGION, service)


def test_header_signed_target_passes_and_unsigned_one_is_denied() -> None:
    assert _check(_header_signed("sagemaker", {"X-Amz-Target": "SageMaker.ListModels"})) is (
        Surface.SAGEMAKER
    )
    unsigned = _header_signed("sagemaker", {}, "/")
    added = SignedRequest(
        "POST", "/", "", {**unsigned.headers, "x-amz-target": "SageMaker.CreateModel"}, HOST
    )
    assert _refused(added).problem is AuthProblem.DENIED


@pytest.mark.parametrize(
    ("service", "target", "problem"),
    [
        ("s3", "SageMaker.ListModels", AuthProblem.WRONG_SERVICE),
        ("sagemaker", "Logs_20140328.DescribeLogGroups", AuthProblem.WRONG_SERVICE),
        ("ec2", "SageMaker.ListModels", AuthProblem.WRONG_SERVICE),
        ("runtime.sagemaker", "SageMaker.ListModels", AuthProblem.WRONG_SERVICE),
    ],
)
def test_scope_service_must_match(service: str, target: str, problem: AuthProblem) -> None:
    failure = _refused(_header_signed(service, {"X-Amz-Target": target}))
    assert failure.problem is problem
    assert failure.message.startswith("Credential should be scoped to correct service")


def test_scope_region_must_be_the_servers() -> None:
    req = _header_signed("sagemaker", {"X-Amz-Target": "SageMaker.ListModels"}, region="eu-west-1")
    failure = _refused(req)
    assert failure.problem is AuthProblem.WRONG_REGION
    assert dict(failure.extra) == {"claimed": "eu-west-1", "expected": REGION}
    # IAM is global: its clients sign for us-east-1 wherever the server is
    iam = _header_signed("iam", {}, region="us-east-1")
    claim = claim_of(iam)
    Confinement("eu-west-1").check(iam, claim, Surface.QUERY)


def _presigned(url: str, version: str = "v4") -> AWSRequest:
    req = AWSRequest(method="GET", url=url)
    if version == "v4":
        S3SigV4QueryAuth(CREDS, "s3", REGION, expires=60).add_auth(req)
    else:
        HmacV1QueryAuth(CREDS, expires=60).add_auth(req)
    return req


@pytest.mark.parametrize("version", ["v4", "v2"])
def test_query_signatures_reach_only_s3(version: str) -> None:
    req = _presigned(f"http://{HOST}/bucket/key", version)
    assert _check(_received(req)) is Surface.S3
    kind = claim_of(_received(req))
    assert kind is not None
    assert kind.in_query
    target = _received(req, {"x-amz-target": "SageMaker.CreateTrainingJob"})
    failure = _refused(target)
    assert failure.problem is AuthProblem.DENIED
    assert failure.in_query
    copy = _received(req, {"x-amz-copy-source": "/bucket/other"})
    failure = _refused(copy)
    assert failure.problem is AuthProblem.DENIED
    assert failure.extra["HeadersNotSigned"] == "x-amz-copy-source"


def test_repeated_signed_header_is_denied() -> None:
    req = _header_signed("sagemaker", {"X-Amz-Target": "SageMaker.ListModels"})
    twice = SignedRequest(
        req.method, req.raw_path, req.raw_query, req.headers, HOST, frozenset({"x-amz-target"})
    )
    failure = _refused(twice)
    assert "more than once" in failure.message
    harmless = SignedRequest(
        req.method, req.raw_path, req.raw_query, req.headers, HOST, frozenset({"accept"})
    )
    assert _check(harmless) is Surface.SAGEMAKER


@pytest.mark.parametrize(
    ("expires", "message"),
    [
        ("604801", "X-Amz-Expires must be less than a week (in seconds) that is 604800"),
        ("-5", "X-Amz-Expires must be non-negative"),
        ("soon", "X-Amz-Expires should be a number"),
    ],
)
def test_presigned_expiry_bounds(expires: str, message: str) -> None:
    req = AWSRequest(method="GET", url=f"http://{HOST}/bucket/key")
    S3SigV4QueryAuth(CREDS, "s3", REGION, expires=604800).add_auth(req)
    week = _received(req)
    now = datetime.now(UTC)
    assert Verifier([KEY], 900).verify(week, None, now + timedelta(days=6)).service == "s3"
    bent = SignedRequest(
        "GET",
        week.raw_path,
        week.raw_query.replace("X-Amz-Expires=604800", f"X-Amz-Expires={expires}"),
        week.headers,
        HOST,
    )
    with pytest.raises(AuthFailure) as info:
        Verifier([KEY], 900).verify(bent, None, now)
    assert (info.value.problem, info.value.message, info.value.in_query) == (
        AuthProblem.MALFORMED,
        message,
        True,
    )


def test_body_hash_header_must_match_for_services_signing_the_body() -> None:
    req = AWSRequest(
        method="POST",
        url=f"http://{HOST}/",
        data=b"{}",
        headers={
            "X-Amz-Target": "SageMaker.ListModels",
            "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD",
        },
    )
    SigV4Auth(CREDS, "sagemaker", REGION).add_auth(req)
    with pytest.raises(AuthFailure) as info:
        Verifier([KEY], 900).verify(_received(req), b'{"other": 1}', datetime.now(UTC))
    assert info.value.problem is AuthProblem.BAD_SIGNATURE
