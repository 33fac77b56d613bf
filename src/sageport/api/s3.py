"""S3, path-style or virtual-hosted REST-XML: route a request to its operation, parse it,
answer it (the bucket comes from the Host where :mod:`sageport.api.s3hosts` says so).

Routing is S3's own table (by method, bucket/key and sub-resource query); parameters and
responses are read and written through the botocore model (:mod:`sageport.api.s3xml`), so
the handlers in ``api/handlers/s3_*.py`` see and return plain dicts. Streaming bodies reach
the handler as a :class:`~sageport.api.s3body.RequestBody` in ``params["Body"]`` and leave
as an async iterator in ``result["Body"]``; nothing holds a whole object in memory.

Authentication happened before :meth:`S3Protocol.handle`; the signature covers the body
only through ``x-amz-content-sha256``, which the body stream verifies while it is read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, cast
from urllib.parse import unquote_to_bytes

from botocore.model import OperationModel
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from sageport.api.auth import MISSING_TOKEN, AuthFailure, AuthProblem, SignedRequest
from sageport.api.dispatch import RequestContext, collect
from sageport.api.handlers import s3_buckets, s3_listing, s3_multipart, s3_objects
from sageport.api.handlers.s3_buckets import check_bucket_name
from sageport.api.s3body import RequestBody
from sageport.api.s3hosts import VirtualHosts
from sageport.api.s3routes import ModelRoutes
from sageport.api.s3xml import (
    ROOT_ELEMENTS,
    S3_NS,
    error_xml,
    parse_params,
    parse_xml,
    to_headers,
    to_xml,
)
from sageport.api.service_models import ServiceModels
from sageport.errors import (
    AwsError,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidBucketName,
    KeyTooLong,
    MaxMessageLengthExceeded,
    MethodNotAllowed,
    NotImplementedS3,
    RequestTimeTooSkewed,
    S3AccessDenied,
    S3AuthorizationHeaderMalformed,
    S3AuthorizationQueryParametersError,
    S3Error,
    SignatureDoesNotMatch,
)

S3Handler = Callable[[RequestContext, dict[str, Any]], Awaitable[dict[str, Any]]]

MAX_KEY_BYTES = 1024
#: XML request bodies (DeleteObjects, CompleteMultipartUpload ...) are small; cap them
MAX_XML_BODY = 4 * 1024 * 1024
NO_CONTENT = {"DeleteObject", "DeleteBucket", "AbortMultipartUpload"}
#: bucket sub-resources we do not serve; answered NotImplemented rather than misrouted
UNSUPPORTED_BUCKET = {
    "acl", "cors", "encryption", "lifecycle", "logging", "notification", "policy",
    "replication", "tagging", "versioning", "versions", "website", "ownershipControls",
    "publicAccessBlock", "object-lock", "accelerate", "requestPayment", "intelligent-tiering",
    "analytics", "metrics", "inventory", "policyStatus",
}  # fmt: skip
S3_MODULES = (s3_buckets, s3_listing, s3_objects, s3_multipart)
#: for docs/api-coverage.md (``sageport.api.coverage``)
IMPLEMENTED_OPERATIONS: tuple[str, ...] = tuple(sorted(collect(*S3_MODULES)))
UNSUPPORTED_OBJECT = {"acl", "tagging", "retention", "legal-hold", "torrent", "restore", "select"}


def route(method: str, bucket: str, key: str, query: set[str], copy: bool) -> str:
    """The S3 operation a request names (S3's routing table, path-style)."""
    if not bucket:
        if method == "GET":
            return "ListBuckets"
        raise MethodNotAllowed()
    if not key:
        if query & UNSUPPORTED_BUCKET:
            raise NotImplementedS3()
        table = {
            "HEAD": "HeadBucket",
            "PUT": "CreateBucket",
            "DELETE": "DeleteBucket",
        }
        if method == "GET":
            if "location" in query:
                return "GetBucketLocation"
            if "uploads" in query:
                return "ListMultipartUploads"
            return "ListObjectsV2" if "list-type" in query else "ListObjects"
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        if method in table:
            return table[method]
        raise MethodNotAllowed()
    if query & UNSUPPORTED_OBJECT:
        raise NotImplementedS3()
    if method == "PUT":
        if "uploadId" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        return "CopyObject" if copy else "PutObject"
    if method == "GET":
        return "ListParts" if "uploadId" in query else "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
    raise MethodNotAllowed()


def _not_implemented(operation: str | None, request: Request) -> S3Error:
    what = operation or f"{request.method} with these sub-resources"
    return NotImplementedS3(
        f"{what} is not implemented by sageport (see docs/api-coverage.md)",
        resource=request.url.path,
    )


def split_path(request: Request, hosts: VirtualHosts) -> tuple[str, str]:
    """(bucket, key) from the Host (virtual-hosted-style, :mod:`sageport.api.s3hosts`) or
    else the raw path; the key is decoded exactly once, never normalised."""
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    path = unquote_to_bytes(raw.split(b"?", 1)[0]).decode("utf-8", "surrogateescape")
    virtual = hosts.bucket(request.headers.get("host", ""))
    if virtual is not None:
        if not virtual:
            raise InvalidBucketName(BucketName="")
        return virtual, path.removeprefix("/")
    bucket, _, key = path.lstrip("/").partition("/")
    return bucket, key


class S3Protocol:
    """The S3 wire protocol over the object store in ``services.objects``."""

    signs_body = False

    def __init__(self, services: Any) -> None:
        self._services = services
        self._model = ServiceModels().get("s3")
        self._handlers = cast(dict[str, S3Handler], collect(*S3_MODULES))
        self._routes = ModelRoutes(self._model)
        self._hosts = VirtualHosts.of(services.settings)

    def addressed(self, req: SignedRequest) -> SignedRequest:
        """``req`` with the bucket its Host names, if it is virtual-hosted (the verifier
        needs it for SigV2); InvalidRequest for a Host that names no bucket unambiguously."""
        bucket = self._hosts.bucket(req.host)
        return replace(req, host_bucket=bucket) if bucket else req

    def auth_error(self, failure: AuthFailure) -> AwsError:
        if failure.bad_argument:
            value = failure.message
            return InvalidArgument(
                "Unsupported Authorization Type"
                if value.startswith("Unsupported Authorization Type")
                else value,
                ArgumentName="Authorization",
            )
        malformed = (
            S3AuthorizationQueryParametersError
            if failure.in_query
            else S3AuthorizationHeaderMalformed
        )
        where = (
            "Error parsing the X-Amz-Credential parameter"
            if failure.in_query
            else "The authorization header is malformed"
        )
        claimed, expected = failure.extra.get("claimed", ""), failure.extra.get("expected", "")
        match failure.problem:
            case AuthProblem.MISSING:
                return S3AccessDenied("" if failure.message == MISSING_TOKEN else failure.message)
            case AuthProblem.MALFORMED:
                return malformed(failure.message)
            case AuthProblem.WRONG_REGION:
                return malformed(
                    f"{where}; the region '{claimed}' is wrong; expecting '{expected}'",
                    Region=expected,
                )
            case AuthProblem.WRONG_SERVICE:
                return malformed(
                    f'{where}; incorrect service "{claimed}". This endpoint belongs to '
                    f'"{expected}".'
                )
            case AuthProblem.DENIED:
                return S3AccessDenied(failure.message, **failure.extra)
            case AuthProblem.UNKNOWN_KEY:
                return InvalidAccessKeyId()
            case AuthProblem.SKEWED:
                return RequestTimeTooSkewed()
            case AuthProblem.EXPIRED:
                return S3AccessDenied("Request has expired")
            case _:
                return SignatureDoesNotMatch()

    async def handle(self, request: Request, ctx: RequestContext, body: bytes | None) -> Response:
        bucket, key = split_path(request, self._hosts)
        headers = {k.lower(): v for k, v in request.headers.items()}
        query = dict(request.query_params)
        modeled = self._routes.operation(request.method, bucket, key, query, set(headers))
        served = modeled is None or modeled in self._handlers
        if not served and self._routes.has_subresource(str(modeled)):
            raise _not_implemented(modeled, request)
        try:
            name = route(request.method, bucket, key, set(query), "x-amz-copy-source" in headers)
        except NotImplementedS3:
            raise _not_implemented(modeled, request) from None
        if bucket and name != "CreateBucket":
            # a name no bucket can have (``..``, ``.x``, ``Upper_Case``) is never looked up
            check_bucket_name(bucket)
        if len(key.encode("utf-8", "surrogateescape")) > MAX_KEY_BYTES:
            raise KeyTooLong(resource=f"/{bucket}/{key}", Size=str(len(key.encode())))
        operation = self._model.operation_model(name)
        uri = {"Bucket": bucket, "Key": key}
        params = parse_params(operation.input_shape, uri, query, headers)
        await self._read_payload(operation, request, headers, params)
        handler = self._handlers.get(name)
        if handler is None:
            raise NotImplementedS3(f"{name} is not implemented by sageport")
        result = await handler(ctx, params)
        return self._respond(name, operation, result, request)

    async def _read_payload(
        self,
        operation: OperationModel,
        request: Request,
        headers: dict[str, str],
        params: dict[str, Any],
    ) -> None:
        shape = operation.input_shape
        payload = shape.serialization.get("payload") if shape is not None else None
        if payload is None:
            return
        member = shape.members[payload]
        stream = RequestBody(request.stream(), headers)
        if member.type_name == "blob":
            params[payload] = stream
            return
        data = bytearray()
        async for chunk in stream:
            data += chunk
            if len(data) > MAX_XML_BODY:
                raise MaxMessageLengthExceeded(
                    f"Your request was too big: XML request bodies may have at most "
                    f"{MAX_XML_BODY} bytes.",
                )
        stream.seal()
        if data.strip():
            params[payload] = parse_xml(member, bytes(data))

    def _respond(
        self, name: str, operation: OperationModel, result: dict[str, Any], request: Request
    ) -> Response:
        shape = operation.output_shape
        headers = to_headers(shape, result)
        status = 204 if name in NO_CONTENT else 206 if "ContentRange" in result else 200
        payload = shape.serialization.get("payload") if shape is not None else None
        if payload == "Body":
            if request.method == "HEAD" or "Body" not in result:
                return Response(b"", status, headers)
            return StreamingResponse(result["Body"], status, headers)
        xml: bytes | None = None
        if payload is not None and payload in result:
            member = shape.members[payload]
            root = member.serialization.get("name", payload)
            xml = to_xml(root, member, result[payload])
        elif name in ROOT_ELEMENTS:
            xml = to_xml(ROOT_ELEMENTS[name], shape, result)
        elif name == "GetBucketLocation":
            # a bare text element, which botocore parses with a special case
            value = result.get("LocationConstraint") or ""
            xml = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<LocationConstraint xmlns="{S3_NS}">{value}</LocationConstraint>'
            ).encode()
        if xml is None:
            return Response(b"", status, headers)
        return Response(xml, status, headers, media_type="application/xml")

    def error_response(self, err: AwsError, request: Request, request_id: str) -> Response:
        headers = {"x-amz-request-id": request_id, "x-amz-id-2": request_id}
        if request.headers.get("expect", "").lower() == "100-continue":
            # The client may still be holding the body it never sent; closing the connection
            # keeps those bytes from being read as the next request.
            headers["connection"] = "close"
        if request.method == "HEAD" or err.status == 304:
            # HEAD errors have no body: clients derive the code from the status alone
            return Response(b"", err.status, headers)
        extra: dict[str, str] = {}
        code = err.code
        if isinstance(err, S3Error):
            extra.update(err.extra)
            extra["Resource"] = err.resource or request.url.path
        else:
            code = "InternalError" if err.status >= 500 else err.code
            extra["Resource"] = request.url.path
        extra["RequestId"] = request_id
        body = error_xml(code, err.message, extra)
        return Response(body, err.status, headers, media_type="application/xml")
