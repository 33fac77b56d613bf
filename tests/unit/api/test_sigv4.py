"""The verifier's use of botocore's signer: the kept day key signs as botocore does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sageport.api.auth import AuthFailure, AuthProblem, SignedRequest, Verifier
from sageport.api.sigv4 import DaySigner, Headers, Received, amz_time
from sageport.services.credentials import KeyPair

KEY = KeyPair("SPTESTKEY", "secret/with+chars")
HOST = "127.0.0.1:5757"


def _signed(service: str, region: str, when: datetime, body: bytes, path: str) -> AWSRequest:
    req = AWSRequest(
        method="POST",
        url=f"http://{HOST}{path}",
        data=body,
        headers={"Content-Type": "application/x-npy", "Accept": "application/json"},
    )
    signer_cls = S3SigV4Auth if service == "s3" else SigV4Auth
    signer = signer_cls(Credentials(KEY.access_key_id, KEY.secret_access_key), service, region)
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    # add_auth stamps "now"; sign at ``when`` the way add_auth does, through botocore
    req.context["timestamp"] = stamp
    req.headers["X-Amz-Date"] = stamp
    req.headers["host"] = HOST
    if service == "s3":
        req.headers["X-Amz-Content-SHA256"] = signer.payload(req)
    canonical = signer.canonical_request(req)
    signature = signer.signature(signer.string_to_sign(req, canonical), req)
    signer._inject_signature_to_request(req, signature)
    return req


def _received(req: AWSRequest) -> SignedRequest:
    headers = {k.lower(): v for k, v in req.headers.items()}
    path, _, query = req.url.split(HOST, 1)[1].partition("?")
    return SignedRequest(req.method, path, query, headers, HOST)


@pytest.mark.parametrize(
    ("service", "region"), [("sagemaker", "us-east-1"), ("s3", "eu-west-1"), ("logs", "us-west-2")]
)
def test_requests_over_several_days_verify_and_tampering_is_caught(
    service: str, region: str
) -> None:
    verifier = Verifier([KEY], 900)
    start = datetime(2026, 3, 1, 23, 59, 30, tzinfo=UTC)
    for step in range(6):  # across midnight: a new day key, then the kept one
        when = start + timedelta(seconds=20 * step)
        body = f"row {step}".encode()
        path = "/endpoints/my-ep/invocations"
        req = _signed(service, region, when, body, path)
        scope = verifier.verify(_received(req), body, when)
        assert (scope.service, scope.region, scope.date) == (
            service,
            region,
            when.strftime("%Y%m%d"),
        )
        moved = _received(req)
        moved = SignedRequest(moved.method, path + "x", "", moved.headers, HOST)
        with pytest.raises(AuthFailure) as tampered:
            verifier.verify(moved, body, when)
        assert tampered.value.problem is AuthProblem.BAD_SIGNATURE
        if service != "s3":  # S3 signs its body through x-amz-content-sha256, checked later
            with pytest.raises(AuthFailure) as changed:
                verifier.verify(_received(req), body + b"!", when)
            assert changed.value.problem is AuthProblem.BAD_SIGNATURE


def test_a_wrong_secret_stays_refused_once_a_day_key_is_kept() -> None:
    when = datetime.now(UTC).replace(microsecond=0)
    verifier = Verifier([KEY], 900)
    good = _signed("sagemaker", "us-east-1", when, b"{}", "/endpoints/e/invocations")
    verifier.verify(_received(good), b"{}", when)
    other = KeyPair(KEY.access_key_id, "another secret")
    signer = SigV4Auth(
        Credentials(other.access_key_id, other.secret_access_key), "sagemaker", "us-east-1"
    )
    bad = AWSRequest(
        method="POST", url=f"http://{HOST}/endpoints/e/invocations", data=b"{}", headers={}
    )
    bad.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
    bad.headers["X-Amz-Date"] = bad.context["timestamp"]
    bad.headers["host"] = HOST
    sig = signer.signature(signer.string_to_sign(bad, signer.canonical_request(bad)), bad)
    signer._inject_signature_to_request(bad, sig)
    with pytest.raises(AuthFailure) as refused:
        verifier.verify(_received(bad), b"{}", when)
    assert refused.value.problem is AuthProblem.BAD_SIGNATURE


def _received_for(signer: DaySigner, stamp: str, body: bytes) -> Received:
    headers = Headers({"host": HOST, "x-amz-date": stamp, "content-type": "text/csv"})
    return Received("POST", f"http://{HOST}/endpoints/e/invocations", headers, body, stamp)


def test_the_kept_key_gives_botocore_s_own_signature() -> None:
    signer = DaySigner(KEY.access_key_id, KEY.secret_access_key, "sagemaker", "ap-south-1")
    for stamp in ("20260301T000000Z", "20260301T120000Z", "20260302T000001Z"):
        for body in (b"", b"1,2,3", b"x" * 5000):
            req = _received_for(signer, stamp, body)
            boto = signer.botocore
            expected = boto.signature(boto.string_to_sign(req, boto.canonical_request(req)), req)
            assert signer.signature(req) == expected


class _SignsDifferently(SigV4Auth):  # type: ignore[misc]
    """A botocore whose signature() is not the SigV4 chain the day key reproduces."""

    def signature(self, string_to_sign: str, request: Any) -> str:
        return str(self._sign(b"other", string_to_sign, hex=True))


def test_a_botocore_that_signs_otherwise_is_asked_every_time() -> None:
    signer = DaySigner(KEY.access_key_id, KEY.secret_access_key, "sagemaker", "us-east-1")
    signer.botocore = _SignsDifferently(
        Credentials(KEY.access_key_id, KEY.secret_access_key), "sagemaker", "us-east-1"
    )
    for body in (b"a", b"b"):
        req = _received_for(signer, "20260301T000000Z", body)
        boto = signer.botocore
        expected = boto.signature(boto.string_to_sign(req, boto.canonical_request(req)), req)
        assert signer.signature(req) == expected


def test_header_lookups_ignore_case_and_dates_parse() -> None:
    headers = Headers({"x-amz-content-sha256": "abc"})
    assert "X-Amz-Content-SHA256" in headers
    assert headers["X-Amz-Content-SHA256"] == "abc"
    assert "Content-MD5" not in headers
    assert amz_time("20260301T101112Z") == datetime(2026, 3, 1, 10, 11, 12, tzinfo=UTC)
    assert amz_time("2026-03-01") is None
