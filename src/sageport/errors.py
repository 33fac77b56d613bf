"""Domain errors that carry their AWS error code.

Every layer raises these; the protocol layer (``sageport.api``) is the only place that turns
one into a wire response, in the form of the protocol the request came in on. A handler or
service never builds an error body itself.

Exception tree::

    AwsError                       code, HTTP status, message
    ├── ValidationException        400  bad input; SageMaker also uses it for "not found"
    ├── ResourceNotFound           400  modeled SageMaker exception
    ├── ResourceInUse              400  modeled SageMaker exception
    ├── ResourceLimitExceeded      400  modeled SageMaker exception (quotas)
    │   └── DatabaseFull           400  the database's disk is full
    ├── ConflictException          400
    ├── UnknownOperationException  400  an operation the model has and we do not implement
    ├── SerializationException     400  a body that is not JSON
    ├── auth errors                400/403 UnrecognizedClientException, InvalidSignatureException,
    │                                      IncompleteSignatureException, MissingAuthenticationToken
    ├── S3Error                    S3's codes (NoSuchBucket, NoSuchKey, SignatureDoesNotMatch, ...)
    │   └── StorageFull            507  InsufficientStorage: the object store's disk is full
    └── logs errors                ResourceNotFoundException, InvalidParameterException
"""

from __future__ import annotations

from typing import ClassVar


class AwsError(Exception):
    """An error with an AWS error code; rendered by the protocol the request used."""

    code: ClassVar[str] = "InternalFailure"
    status: ClassVar[int] = 400

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InternalFailure(AwsError):
    code = "InternalFailure"
    status = 500


class ValidationException(AwsError):
    code = "ValidationException"


class ResourceNotFound(AwsError):
    code = "ResourceNotFound"


class ResourceInUse(AwsError):
    code = "ResourceInUse"


class ResourceLimitExceeded(AwsError):
    code = "ResourceLimitExceeded"


class DatabaseFull(ResourceLimitExceeded):
    """The server's database cannot grow (disk or quota full); nothing was stored.

    ``ResourceLimitExceeded`` rather than a 5xx: it is SageMaker's modeled exception for
    "no room for more" (SDKs catch it by name), and botocore does not retry it, so the
    caller learns at once that space must be freed instead of retrying for seconds.
    """


class ConflictException(AwsError):
    code = "ConflictException"


class UnknownOperationException(AwsError):
    code = "UnknownOperationException"


class SerializationException(AwsError):
    code = "SerializationException"


class PayloadTooLarge(AwsError):
    code = "RequestEntityTooLargeException"
    status = 413


# -- authentication (JSON and query protocols) ------------------------------------------------


class MissingAuthenticationToken(AwsError):
    code = "MissingAuthenticationTokenException"
    status = 403


class IncompleteSignature(AwsError):
    code = "IncompleteSignatureException"
    status = 400


class UnrecognizedClient(AwsError):
    code = "UnrecognizedClientException"
    status = 400


class InvalidSignature(AwsError):
    code = "InvalidSignatureException"
    status = 403


class AccessDeniedException(AwsError):
    """A valid key asked for something its policy does not allow (``api.policy``)."""

    code = "AccessDeniedException"
    status = 400


# -- CloudWatch Logs ------------------------------------------------------------------------


class LogsResourceNotFound(AwsError):
    code = "ResourceNotFoundException"


class LogsInvalidParameter(AwsError):
    code = "InvalidParameterException"


# -- S3 -------------------------------------------------------------------------------------


class S3Error(AwsError):
    """An S3 error; ``resource`` fills the ``<Resource>`` element, extras become elements."""

    code = "InternalError"
    status = 500

    def __init__(self, message: str = "", *, resource: str = "", **extra: str) -> None:
        super().__init__(message)
        self.resource = resource
        self.extra = extra


def _s3(code: str, status: int, default: str) -> type[S3Error]:
    """Define an S3 error class; S3 has dozens and each differs only in these three facts."""

    def __init__(self: S3Error, message: str = "", *, resource: str = "", **extra: str) -> None:
        S3Error.__init__(self, message or default, resource=resource, **extra)

    return type(code, (S3Error,), {"code": code, "status": status, "__init__": __init__})


S3AccessDenied = _s3("AccessDenied", 403, "Access Denied")
InvalidAccessKeyId = _s3(
    "InvalidAccessKeyId", 403, "The AWS Access Key Id you provided does not exist in our records."
)
SignatureDoesNotMatch = _s3(
    "SignatureDoesNotMatch",
    403,
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method.",
)
RequestTimeTooSkewed = _s3(
    "RequestTimeTooSkewed",
    403,
    "The difference between the request time and the current time is too large.",
)
S3AuthorizationHeaderMalformed = _s3(
    "AuthorizationHeaderMalformed", 400, "The authorization header is malformed."
)
S3AuthorizationQueryParametersError = _s3(
    "AuthorizationQueryParametersError",
    400,
    "Query-string authentication parameters are malformed.",
)
NoSuchBucket = _s3("NoSuchBucket", 404, "The specified bucket does not exist")
NoSuchKey = _s3("NoSuchKey", 404, "The specified key does not exist.")
NoSuchUpload = _s3(
    "NoSuchUpload",
    404,
    "The specified upload does not exist. The upload ID may be invalid, or the upload may "
    "have been aborted or completed.",
)
BucketAlreadyOwnedByYou = _s3(
    "BucketAlreadyOwnedByYou",
    409,
    "Your previous request to create the named bucket succeeded and you already own it.",
)
BucketNotEmpty = _s3("BucketNotEmpty", 409, "The bucket you tried to delete is not empty")
InvalidBucketName = _s3("InvalidBucketName", 400, "The specified bucket is not valid.")
KeyTooLong = _s3("KeyTooLongError", 400, "Your key is too long")
InvalidArgument = _s3("InvalidArgument", 400, "Invalid Argument")
InvalidRange = _s3("InvalidRange", 416, "The requested range is not satisfiable")
InvalidPart = _s3(
    "InvalidPart",
    400,
    "One or more of the specified parts could not be found. The part may not have been "
    "uploaded, or the specified entity tag may not match the part's entity tag.",
)
InvalidPartOrder = _s3("InvalidPartOrder", 400, "The list of parts was not in ascending order.")
EntityTooSmall = _s3(
    "EntityTooSmall", 400, "Your proposed upload is smaller than the minimum allowed object size."
)
EntityTooLarge = _s3("EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed size")
MalformedXML = _s3(
    "MalformedXML",
    400,
    "The XML you provided was not well-formed or did not validate against our published schema",
)
BadDigest = _s3(
    "BadDigest", 400, "The Content-MD5 or checksum you specified did not match what we received."
)
XAmzContentSHA256Mismatch = _s3(
    "XAmzContentSHA256Mismatch",
    400,
    "The provided 'x-amz-content-sha256' header does not match what was computed.",
)
IncompleteBody = _s3(
    "IncompleteBody",
    400,
    "You did not provide the number of bytes specified by the Content-Length HTTP header",
)
MethodNotAllowed = _s3(
    "MethodNotAllowed", 405, "The specified method is not allowed against this resource."
)
NotImplementedS3 = _s3(
    "NotImplemented",
    501,
    "A header or operation you provided implies functionality that is not implemented",
)
PreconditionFailed = _s3(
    "PreconditionFailed", 412, "At least one of the pre-conditions you specified did not hold"
)
S3InternalError = _s3("InternalError", 500, "We encountered an internal error. Please try again.")
NotModified = _s3("NotModified", 304, "Not Modified")
InvalidRequestS3 = _s3("InvalidRequest", 400, "Invalid Request")
MaxMessageLengthExceeded = _s3("MaxMessageLengthExceeded", 400, "Your request was too big.")
StorageFull = _s3(
    "InsufficientStorage",
    507,
    "There is no space left on the device that holds the object store; nothing was stored.",
)
"""Disk full (ENOSPC/EDQUOT) in the object store. AWS S3 has no such error; 507 Insufficient
Storage (RFC 4918) says what happened, is what MinIO answers for a full drive
(``XMinioStorageFull``), and, unlike a 503, is not retried by botocore, so a large PUT is not
sent five times to a full disk. The code names the status, as S3's own codes do."""
