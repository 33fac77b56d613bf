"""SigV4 verification: every request must be signed with a key this server knows.

We never canonicalize a request ourselves: it is handed to botocore holding exactly the
headers the client signed, and botocore's own signer (``SigV4Auth``/``S3SigV4Auth``/
``S3SigV4QueryAuth``) computes what the signature must be — for header signatures through
:mod:`sageport.api.sigv4`, which feeds it the request as received and keeps the day's
derived key once botocore has confirmed it.
Errors are raised in a neutral form (:class:`AuthFailure`) and each protocol maps them to the
code it uses (S3: ``SignatureDoesNotMatch``; JSON: ``InvalidSignatureException``; ...).
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.auth import HmacV1QueryAuth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders, urlsplit
from botocore.credentials import Credentials

from sageport.api.sigv4 import DaySigner, Headers, Received, amz_time
from sageport.domain.keys import KeyLookup
from sageport.services.credentials import KeyPair, StaticKeys

ALGORITHM = "AWS4-HMAC-SHA256"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
#: signers kept per (access key, service, region); past this many the cache starts over
SIGNER_CACHE = 256
#: the longest a presigned URL may live (S3's limit, a week)
MAX_EXPIRES = 604800


class AuthProblem(enum.Enum):
    MISSING = "missing"
    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    SKEWED = "skewed"
    EXPIRED = "expired"
    #: the credential scope names another service than the request's protocol answers to
    WRONG_SERVICE = "wrong_service"
    #: the credential scope names another region than the server's
    WRONG_REGION = "wrong_region"
    #: the signature is valid but does not cover what selects the operation (api.confine)
    DENIED = "denied"


MISSING_TOKEN = "Missing Authentication Token"
SIGV4_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)


class AuthFailure(Exception):
    """Why a request was not accepted; the protocol decides how to say it.

    ``bad_argument`` marks an Authorization header of a kind AWS does not know at all
    (S3 answers ``InvalidArgument`` for it rather than a malformed-signature error);
    ``in_query`` a problem with a query-string signature (S3 then says
    ``AuthorizationQueryParametersError``); ``extra`` holds facts a protocol may name in its
    error (``HeadersNotSigned``; ``claimed``/``expected`` for a wrong service or region).
    """

    def __init__(
        self,
        problem: AuthProblem,
        message: str,
        *,
        bad_argument: bool = False,
        in_query: bool = False,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message
        self.bad_argument = bad_argument
        self.in_query = in_query
        self.extra: Mapping[str, str] = extra or {}


@dataclass(frozen=True)
class Scope:
    """The parts of a SigV4 credential: who signed, for which region and service."""

    access_key: str
    date: str
    region: str
    service: str


@dataclass(frozen=True)
class SignedRequest:
    """The request as the verifier needs it; built by the app from the ASGI scope."""

    method: str
    raw_path: str
    raw_query: str
    headers: Mapping[str, str]  # lower-cased names
    host: str
    #: names of headers the request repeats (``headers`` holds the last value of each)
    repeated: frozenset[str] = frozenset()
    #: the bucket a virtual-hosted S3 request's Host names (``api.s3hosts``), else empty:
    #: S3's SigV2 signs the path with the bucket in it (``/bucket/key``) even then
    host_bucket: str = ""

    @property
    def v2_path(self) -> str:
        """The path S3's SigV2 signs."""
        return f"/{self.host_bucket}{self.raw_path}" if self.host_bucket else self.raw_path


def parse_scope(credential: str) -> Scope:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise AuthFailure(
            AuthProblem.MALFORMED, f"Credential should be scoped correctly: {credential}"
        )
    return Scope(parts[0], parts[1], parts[2], parts[3])


@functools.lru_cache(maxsize=256)
def _parse_header(value: str) -> tuple[Scope, tuple[str, ...], str]:
    """The Authorization header's parts; cached, as ``api.confine`` reads the claim before
    the verifier reads the rest."""
    if not value.startswith(ALGORITHM + " "):
        raise AuthFailure(
            AuthProblem.MALFORMED,
            "Unsupported Authorization Type: the Authorization header must use AWS4-HMAC-SHA256.",
            bad_argument=not value.startswith(ALGORITHM),
        )
    fields: dict[str, str] = {}
    for item in value[len(ALGORITHM) + 1 :].split(","):
        key, sep, val = item.strip().partition("=")
        if sep:
            fields[key] = val
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if k not in fields]
    if missing:
        raise AuthFailure(
            AuthProblem.MALFORMED,
            f"Authorization header requires '{missing[0]}' parameter. Authorization={value}",
        )
    return (
        parse_scope(fields["Credential"]),
        tuple(fields["SignedHeaders"].split(";")),
        fields["Signature"],
    )


def parse_authorization(value: str) -> tuple[Scope, tuple[str, ...], str]:
    """A SigV4 Authorization header's (scope, signed headers, signature); AuthFailure if it
    is not one."""
    return _parse_header(value)


def unquote(value: str) -> str:
    from urllib.parse import unquote as _unquote_url

    return _unquote_url(value)


def query_pairs(raw_query: str) -> dict[str, str]:
    """The query's parameters, names decoded and values as sent (the last of repeats)."""
    out: dict[str, str] = {}
    for pair in raw_query.split("&") if raw_query else []:
        key, _, val = pair.partition("=")
        out[unquote(key)] = val
    return out


def _http_date(value: str) -> datetime | None:
    """An RFC 1123 date (``Date``) or a SigV4 stamp (``X-Amz-Date``), in UTC; None if neither."""
    from email.utils import parsedate_to_datetime

    try:
        return datetime.strptime(value, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _expires(value: str) -> int:
    """``X-Amz-Expires`` in seconds, within S3's bounds (a week at most)."""
    value = unquote(value)
    if not value.lstrip("-").isdigit() or not value.isascii():
        raise AuthFailure(AuthProblem.MALFORMED, "X-Amz-Expires should be a number", in_query=True)
    seconds = int(value)
    if seconds < 0:
        raise AuthFailure(
            AuthProblem.MALFORMED, "X-Amz-Expires must be non-negative", in_query=True
        )
    if seconds > MAX_EXPIRES:
        raise AuthFailure(
            AuthProblem.MALFORMED,
            f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES}",
            in_query=True,
        )
    return seconds


class _SignedAt(HmacV1QueryAuth):  # type: ignore[misc]
    """botocore's v2 query signer, with the ``Expires`` the client signed instead of now."""

    def __init__(self, credentials: Credentials, expires: str) -> None:
        super().__init__(credentials)
        self._signed_expires = expires

    def _get_date(self) -> str:
        return self._signed_expires


class Verifier:
    """Checks SigV4 signatures against the known key pairs."""

    def __init__(self, keys: KeyLookup | Iterable[KeyPair], max_skew_seconds: int) -> None:
        """``keys`` is asked for every request's key (so a revoked job key is refused at
        once: ``services.keys``); a plain list of pairs is taken as fixed keys."""
        self._keys = keys if isinstance(keys, KeyLookup) else StaticKeys(keys)
        self._max_skew = max_skew_seconds
        #: botocore signers by (access key, service, region): they hold no per-request state
        self._signers: dict[tuple[str, str, str], DaySigner] = {}

    def _signer(self, key: KeyPair, scope: Scope) -> DaySigner:
        cache_key = (key.access_key_id, scope.service, scope.region)
        signer = self._signers.get(cache_key)
        if signer is None:
            if len(self._signers) >= SIGNER_CACHE:
                self._signers.clear()
            signer = DaySigner(key.access_key_id, key.secret_access_key, *cache_key[1:])
            self._signers[cache_key] = signer
        return signer

    def verify(self, req: SignedRequest, body: bytes | None, now: datetime) -> Scope:
        """Verify ``req``; ``body`` is the payload for services that sign it without a header
        (None for S3, which signs it through ``x-amz-content-sha256``)."""
        auth = req.headers.get("authorization")
        if auth and auth.startswith("AWS ") and body is None:
            # S3's v2 header signature; it does not cover the body, so services whose
            # signature must (they pass the body) only take SigV4
            return self._verify_header_v2(req, auth, now)
        if auth:
            return self._verify_header(req, auth, body, now)
        query = query_pairs(req.raw_query)
        if "X-Amz-Signature" in query:
            return self._verify_presigned(req, query, now)
        if "Signature" in query and "AWSAccessKeyId" in query:
            return self._verify_presigned_v2(req, query, now)
        raise AuthFailure(AuthProblem.MISSING, MISSING_TOKEN)

    def _key(self, scope: Scope) -> KeyPair:
        key = self._keys.get(scope.access_key)
        if key is None:
            raise AuthFailure(
                AuthProblem.UNKNOWN_KEY, "The security token included in the request is invalid."
            )
        return key

    def _check_time(self, amz_date: str, now: datetime) -> None:
        when = amz_time(amz_date)
        if when is None:
            raise AuthFailure(AuthProblem.MALFORMED, f"Invalid X-Amz-Date: {amz_date!r}")
        if abs((now - when).total_seconds()) > self._max_skew:
            raise AuthFailure(
                AuthProblem.SKEWED,
                f"Signature expired: {amz_date} is now earlier than "
                f"{(now.replace(microsecond=0)).strftime(AMZ_DATE_FORMAT)} (15 min skew allowed).",
            )

    def _verify_header(
        self, req: SignedRequest, auth: str, body: bytes | None, now: datetime
    ) -> Scope:
        scope, signed_headers, signature = _parse_header(auth)
        key = self._key(scope)
        amz_date = req.headers.get("x-amz-date", "")
        if not amz_date:
            raise AuthFailure(AuthProblem.MALFORMED, "Authorization requires an X-Amz-Date header.")
        self._check_time(amz_date, now)
        headers = Headers()
        for name in signed_headers:
            value = req.headers.get(name)
            if value is None:
                raise AuthFailure(AuthProblem.BAD_SIGNATURE, f"Signed header {name} is missing.")
            headers[name.lower()] = value
        # botocore's SigV4Auth signs this header's value in place of the body's hash: a
        # service that signs its body must find the body it got there (never
        # UNSIGNED-PAYLOAD, which only S3 accepts)
        if (
            body is not None
            and "x-amz-content-sha256" in headers
            and headers["x-amz-content-sha256"] != hashlib.sha256(body).hexdigest()
        ):
            raise AuthFailure(
                AuthProblem.BAD_SIGNATURE,
                "The signed x-amz-content-sha256 is not the SHA-256 of the request body: "
                "this service's signature must cover its body.",
            )
        url = f"http://{req.host}{req.raw_path}" + (f"?{req.raw_query}" if req.raw_query else "")
        received = Received(req.method, url, headers, body or b"", amz_date)
        if not hmac.compare_digest(self._signer(key, scope).signature(received), signature):
            raise AuthFailure(AuthProblem.BAD_SIGNATURE, SIGV4_MISMATCH)
        return scope

    def _verify_presigned(self, req: SignedRequest, query: dict[str, str], now: datetime) -> Scope:
        if query.get("X-Amz-Algorithm") != ALGORITHM:
            raise AuthFailure(
                AuthProblem.MALFORMED,
                'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"',
                in_query=True,
            )
        try:
            scope = parse_scope(unquote(query.get("X-Amz-Credential", "")))
        except AuthFailure as bad:
            raise AuthFailure(AuthProblem.MALFORMED, bad.message, in_query=True) from None
        expires = _expires(query.get("X-Amz-Expires", ""))
        key = self._key(scope)
        amz_date = query.get("X-Amz-Date", "")
        try:
            when = datetime.strptime(amz_date, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise AuthFailure(
                AuthProblem.MALFORMED,
                f"X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\": "
                f"{unquote(amz_date)!r}",
                in_query=True,
            ) from None
        if (now - when).total_seconds() > expires:
            raise AuthFailure(AuthProblem.EXPIRED, "Request has expired")
        if (when - now).total_seconds() > self._max_skew:
            raise AuthFailure(AuthProblem.SKEWED, "Request is not yet valid")
        signed = unquote(query.get("X-Amz-SignedHeaders", "host")).split(";")
        headers = {n: req.headers[n] for n in signed if n in req.headers}
        kept = "&".join(p for p in req.raw_query.split("&") if not p.startswith("X-Amz-Signature="))
        url = f"http://{req.host}{req.raw_path}?{kept}"
        aws_req = AWSRequest(method=req.method, url=url, headers=headers)
        aws_req.context["timestamp"] = amz_date
        creds = Credentials(key.access_key_id, key.secret_access_key)
        # S3 presigns with UNSIGNED-PAYLOAD, other services (STS for EKS tokens) the empty
        # body's hash: botocore's signer for each
        query_signer = S3SigV4QueryAuth if scope.service == "s3" else SigV4QueryAuth
        signer = query_signer(creds, scope.service, scope.region, expires=expires)
        self._compare(signer, aws_req, query["X-Amz-Signature"])
        return scope

    def _verify_presigned_v2(
        self, req: SignedRequest, query: dict[str, str], now: datetime
    ) -> Scope:
        """S3 query-string auth v2: what ``generate_presigned_url`` still makes by default."""
        scope = Scope(unquote(query["AWSAccessKeyId"]), "", "", "s3")
        key = self._key(scope)
        expires = query.get("Expires", "")
        if not expires.isdigit():
            raise AuthFailure(
                AuthProblem.MALFORMED, "Expires must be a number of seconds since the epoch."
            )
        if now.timestamp() > int(expires):
            raise AuthFailure(AuthProblem.EXPIRED, "Request has expired")
        drop = ("AWSAccessKeyId=", "Signature=", "Expires=")
        kept = "&".join(p for p in req.raw_query.split("&") if p and not p.startswith(drop))
        headers = HTTPHeaders()
        for name in ("content-type", "content-md5"):
            if name in req.headers:
                headers[name] = req.headers[name]
        signer = _SignedAt(Credentials(key.access_key_id, key.secret_access_key), expires)
        split = urlsplit(f"http://{req.host}{req.v2_path}" + (f"?{kept}" if kept else ""))
        expected = signer.sign_string(signer.canonical_string(req.method, split, headers))
        if not hmac.compare_digest(expected, unquote(query["Signature"])):
            raise AuthFailure(
                AuthProblem.BAD_SIGNATURE,
                "The request signature we calculated does not match the signature you provided. "
                "Check your key and signing method.",
            )
        return scope

    def _verify_header_v2(self, req: SignedRequest, auth: str, now: datetime) -> Scope:
        """S3's older header signature (``AWS <key>:<signature>``), as botocore's ``s3``
        signature version sends it; the body is not signed (as in S3)."""
        access, sep, signature = auth[len("AWS ") :].strip().rpartition(":")
        if not sep or not access or not signature:
            raise AuthFailure(
                AuthProblem.MALFORMED,
                "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
                bad_argument=True,
            )
        scope = Scope(access, "", "", "s3")
        key = self._key(scope)
        stamp = req.headers.get("x-amz-date") or req.headers.get("date") or ""
        when = _http_date(stamp)
        if when is None:
            raise AuthFailure(
                AuthProblem.MISSING, "AWS authentication requires a valid Date or x-amz-date header"
            )
        if abs((now - when).total_seconds()) > self._max_skew:
            raise AuthFailure(AuthProblem.SKEWED, "The request time is too far from ours.")
        headers = HTTPHeaders()
        for name, value in req.headers.items():
            headers[name] = value
        # with x-amz-date signed among the x-amz-* headers, the Date line stays empty
        date_line = "" if "x-amz-date" in req.headers else req.headers.get("date", "")
        signer = _SignedAt(Credentials(key.access_key_id, key.secret_access_key), date_line)
        url = f"http://{req.host}{req.v2_path}" + (f"?{req.raw_query}" if req.raw_query else "")
        expected = signer.sign_string(signer.canonical_string(req.method, urlsplit(url), headers))
        if not hmac.compare_digest(expected, signature):
            raise AuthFailure(
                AuthProblem.BAD_SIGNATURE,
                "The request signature we calculated does not match the signature you provided. "
                "Check your key and signing method.",
            )
        return scope

    @staticmethod
    def _compare(signer: SigV4Auth, aws_req: AWSRequest, signature: str) -> None:
        canonical = signer.canonical_request(aws_req)
        expected = signer.signature(signer.string_to_sign(aws_req, canonical), aws_req)
        if not hmac.compare_digest(expected, signature):
            raise AuthFailure(AuthProblem.BAD_SIGNATURE, SIGV4_MISMATCH)
