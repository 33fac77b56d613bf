"""Which protocol a signed request may reach: decided here, from signed material only.

A signature authorises exactly the request it signs. What a request *looks like*
(:func:`surface_of`: ``X-Amz-Target`` first, then the credential scope's service, then the
path, as moto's server routes) picks the protocol that answers it, so every client gets an
error it can parse; :meth:`Confinement.check` then refuses it unless the signed parts alone
select that protocol and operation:

- the credential scope's service must be one that protocol answers to (:data:`SERVES`:
  ``sagemaker`` for the control plane, InvokeEndpoint and sageport's own read API —
  botocore's sagemaker-runtime signs as ``sagemaker`` — ``runtime.sagemaker`` for
  InvokeEndpoint, ``s3``, ``logs``, ``sts``; ``iam`` only to be told AccessDenied), and its
  region the server's;
- a query-string signature (presigned SigV4 ``X-Amz-Signature``, SigV2 ``Signature``) covers
  no body, so it reaches only S3 and STS ``GetCallerIdentity`` (EKS-style tokens);
- ``X-Amz-Target`` chooses a JSON operation: when present it must be signed;
- on S3 every ``x-amz-*`` header must be signed (S3's own rule): ``x-amz-copy-source`` turns a
  PutObject into a CopyObject, ``x-amz-metadata-directive``/``x-amz-tagging`` change what it
  writes; a SigV2 query signature signs none of them. Sub-resources (``uploadId``, ``delete``
  ...) are query parameters, which both signature versions sign. On InvokeEndpoint, likewise
  every ``x-amzn-sagemaker-*`` header (target variant, model, session: they choose where the
  request goes);
- a header that is signed or ``x-amz-*`` may appear only once: the verifier reads the last of
  repeated headers and Starlette's ``headers.get`` the first.

The body is the verifier's business (:mod:`sageport.api.auth`): JSON protocols always pass it
to be signed. Every check here is a few dict and set lookups, on every request.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import NamedTuple

from sageport.api.auth import (
    AuthFailure,
    AuthProblem,
    Scope,
    SignedRequest,
    parse_authorization,
    parse_scope,
    query_pairs,
    unquote,
)

EXTENSIONS_PREFIX = "/_sageport/"


class Surface(enum.Enum):
    """A protocol the server answers on its one port."""

    SAGEMAKER = "SageMaker control plane (JSON 1.1, X-Amz-Target SageMaker.*)"
    LOGS = "CloudWatch Logs (JSON 1.1, X-Amz-Target Logs_20140328.*)"
    RUNTIME = "SageMaker Runtime (POST /endpoints/<name>/invocations)"
    EXTENSIONS = "sageport's read API (/_sageport/...)"
    S3 = "S3"
    STS = "STS"
    QUERY = "a query-protocol service (IAM)"


class SignedBy(enum.Enum):
    """Where a request's signature is."""

    HEADER_V4 = "Authorization: AWS4-HMAC-SHA256"
    HEADER_V2 = "Authorization: AWS"
    QUERY_V4 = "X-Amz-Signature"
    QUERY_V2 = "Signature"


class Claim(NamedTuple):
    """What a request's signature says about itself, before it is verified: who signed, for
    which service and region, and which headers it covers. (A tuple: one is built per
    request, and a tuple is the cheapest thing to build.)"""

    kind: SignedBy
    scope: Scope
    signed: frozenset[str]

    @property
    def in_query(self) -> bool:
        return self.kind is SignedBy.QUERY_V4 or self.kind is SignedBy.QUERY_V2


#: the surfaces a credential scope's service may reach
SERVES: Mapping[str, frozenset[Surface]] = {
    "sagemaker": frozenset({Surface.SAGEMAKER, Surface.RUNTIME, Surface.EXTENSIONS}),
    "runtime.sagemaker": frozenset({Surface.RUNTIME}),
    "s3": frozenset({Surface.S3}),
    "logs": frozenset({Surface.LOGS}),
    "sts": frozenset({Surface.STS}),
    "iam": frozenset({Surface.QUERY}),
}
#: the service a surface's requests are signed for, as a refusal names it
SIGNS_AS = {
    Surface.SAGEMAKER: "sagemaker",
    Surface.LOGS: "logs",
    Surface.RUNTIME: "sagemaker",
    Surface.EXTENSIONS: "sagemaker",
    Surface.S3: "s3",
    Surface.STS: "sts",
    Surface.QUERY: "iam",
}
#: headers a SigV2 query signature covers
V2_QUERY_SIGNED = frozenset({"content-type", "content-md5"})
#: headers S3's SigV2 header signature covers besides every x-amz-* header
V2_HEADER_SIGNED = frozenset({"content-type", "content-md5", "date"})
NOT_SIGNED = "There were headers present in the request which were not signed"


def claim_of(req: SignedRequest) -> Claim | None:
    """The signature's claim, or None for a request with none we can read (the verifier
    then refuses it as missing or malformed)."""
    try:
        auth = req.headers.get("authorization")
        if auth:
            if auth.startswith("AWS "):
                access = auth[4:].strip().rpartition(":")[0]
                mine = frozenset(h for h in req.headers if h.startswith("x-amz-"))
                return Claim(
                    SignedBy.HEADER_V2, Scope(access, "", "", "s3"), V2_HEADER_SIGNED | mine
                )
            scope, signed, _ = parse_authorization(auth)
            return Claim(SignedBy.HEADER_V4, scope, frozenset(signed))
        if not req.raw_query:
            return None
        query = query_pairs(req.raw_query)
        if "X-Amz-Signature" in query:
            scope = parse_scope(unquote(query.get("X-Amz-Credential", "")))
            names = unquote(query.get("X-Amz-SignedHeaders", "host")).split(";")
            return Claim(SignedBy.QUERY_V4, scope, frozenset(names))
        if "Signature" in query and "AWSAccessKeyId" in query:
            scope = Scope(unquote(query["AWSAccessKeyId"]), "", "", "s3")
            return Claim(SignedBy.QUERY_V2, scope, V2_QUERY_SIGNED)
    except AuthFailure:
        return None
    return None


def surface_of(method: str, path: str, target: str, claim: Claim | None) -> Surface:
    """The protocol a request looks like it is for; it answers the request (its errors in
    that protocol's form), and :meth:`Confinement.check` decides whether it may."""
    service = claim.scope.service if claim else ""
    if path.startswith(EXTENSIONS_PREFIX) and service != "s3":
        # (signed for S3, it is a key under ``_sageport/`` of a virtual-hosted bucket)
        return Surface.EXTENSIONS
    if target.startswith("SageMaker."):
        return Surface.SAGEMAKER
    if target.startswith("Logs_") or service == "logs":
        return Surface.LOGS
    if target or (service == "sagemaker" and path == "/"):
        return Surface.SAGEMAKER
    if service == "sts":
        return Surface.STS
    if path.startswith("/endpoints/") and service in ("sagemaker", "runtime.sagemaker", ""):
        return Surface.RUNTIME
    if method == "POST" and path == "/" and service not in ("s3", ""):
        # IAM, or another query-protocol service sageport does not serve: a query-form error
        return Surface.QUERY
    if not service and method == "POST" and path == "/":
        # An unsigned POST / carries no hint; answer as the JSON control plane would.
        return Surface.SAGEMAKER
    return Surface.S3


class Confinement:
    """The rule of the module docstring, for a server in ``region``."""

    def __init__(self, region: str) -> None:
        self._region = region

    def check(self, req: SignedRequest, claim: Claim | None, surface: Surface) -> None:
        """Refuse (:class:`AuthFailure`) a request whose signed parts do not select
        ``surface``; a request with no readable signature is left to the verifier."""
        if claim is None:
            return
        service = claim.scope.service
        if claim.in_query:
            self._check_query(req, claim, surface)
        allowed = SERVES.get(service)
        if allowed is None:
            raise AuthFailure(
                AuthProblem.WRONG_SERVICE,
                f"Credential should be scoped to correct service: '{SIGNS_AS[surface]}'. "
                f"sageport serves no service '{service}' (the credential scope's service); "
                f"it serves {', '.join(s for s in SERVES if s != 'iam')}.",
                in_query=claim.in_query,
                extra={"claimed": service, "expected": SIGNS_AS[surface]},
            )
        if surface not in allowed:
            raise AuthFailure(
                AuthProblem.WRONG_SERVICE,
                f"Credential should be scoped to correct service: '{SIGNS_AS[surface]}'. "
                f"A signature for '{service}' does not authorise a {surface.value} request.",
                in_query=claim.in_query,
                extra={"claimed": service, "expected": SIGNS_AS[surface]},
            )
        region = claim.scope.region
        # (IAM is global: its clients sign for us-east-1 whatever the region)
        v4 = claim.kind in (SignedBy.HEADER_V4, SignedBy.QUERY_V4)
        if v4 and region != self._region and service != "iam":
            raise AuthFailure(
                AuthProblem.WRONG_REGION,
                "Credential should be scoped to a valid region. "
                f"The credential scope's region is '{region}'; this server is '{self._region}'.",
                in_query=claim.in_query,
                extra={"claimed": region, "expected": self._region},
            )
        headers = req.headers
        if "x-amz-target" in headers and "x-amz-target" not in claim.signed:
            raise AuthFailure(
                AuthProblem.DENIED,
                "X-Amz-Target is not among the signed headers (SignedHeaders): the operation "
                "a request names must be signed.",
                extra={"HeadersNotSigned": "x-amz-target"},
            )
        if surface is Surface.S3 or surface is Surface.RUNTIME:
            # S3: x-amz-*; InvokeEndpoint: x-amzn-sagemaker-* (target variant, model, session)
            prefix = "x-amz-" if surface is Surface.S3 else "x-amzn-sagemaker-"
            unsigned = [h for h in headers if h.startswith(prefix) and h not in claim.signed]
            if unsigned:
                raise AuthFailure(
                    AuthProblem.DENIED,
                    f"{NOT_SIGNED}: {', '.join(sorted(unsigned))} (every {prefix}* header of "
                    f"{'an S3' if surface is Surface.S3 else 'an InvokeEndpoint'} request must "
                    "be signed)",
                    extra={"HeadersNotSigned": ", ".join(sorted(unsigned))},
                )
        if req.repeated:
            twice = sorted(
                h
                for h in req.repeated
                if h in claim.signed or h.startswith("x-amz-") or h == "authorization"
            )
            if twice:
                raise AuthFailure(
                    AuthProblem.DENIED,
                    f"Header {twice[0]} appears more than once; a signed or x-amz-* header "
                    "must appear once.",
                )

    @staticmethod
    def _check_query(req: SignedRequest, claim: Claim, surface: Surface) -> None:
        if surface is Surface.S3:
            return
        if (
            surface is Surface.STS
            and req.method == "GET"
            and query_pairs(req.raw_query).get("Action") == "GetCallerIdentity"
        ):
            return
        raise AuthFailure(
            AuthProblem.DENIED,
            f"A query-string signature ({claim.kind.value}) covers no body and no "
            "X-Amz-Target: it authorises only the S3 request it signs or an STS "
            f"GetCallerIdentity GET, not a {surface.value} request.",
            in_query=True,
        )
