"""Errors a model server answers with: an HTTP status and a plain-text message.

These mirror the inference toolkit's ``BaseInferenceToolkitError`` (status code, message,
phrase), not the AWS errors of ``sageport.errors``: the model server speaks the container
protocol, and the runtime proxy wraps whatever it answers into SageMaker's ``ModelError``.
Any exception raised by user code that carries an integer ``status_code`` (the toolkit's own
error classes do) keeps that status; every other exception becomes a 500.

Exception tree::

    InferenceError              status_code, message
    ├── UnsupportedContentType  415  no decoder for the request's Content-Type
    ├── UnsupportedAccept       406  no encoder for any type in Accept
    ├── BadRequestBody          400  a body that does not decode as its Content-Type
    ├── PayloadTooLarge         413  a body above SAGEMAKER_MAX_PAYLOAD_IN_MB
    ├── ModelNotReady           503  the model is still loading (or failed to load)
    ├── HandlerTimeout          504  a handler that did not answer in time
    └── UnencodableResult       500  a handler result that is not bytes, str or JSON-able
"""

from __future__ import annotations

from typing import ClassVar


class InferenceError(Exception):
    """An error with the HTTP status the model server answers."""

    status_code: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _format_hint(kind: str, value: str | None) -> str:
    # The toolkit's UnsupportedFormatError wording, so messages users search for still match.
    return (
        f"{kind} {value} is not supported by this framework.\n\n"
        "Please implement input_fn to deserialize the request data or an output_fn to\n"
        "serialize the response. For more information, see the SageMaker Python SDK README."
    )


class UnsupportedContentType(InferenceError):
    status_code = 415

    def __init__(self, content_type: str | None) -> None:
        super().__init__(_format_hint("Content type", content_type))


class UnsupportedAccept(InferenceError):
    status_code = 406

    def __init__(self, accept: str | None) -> None:
        super().__init__(_format_hint("Accept type", accept))


class BadRequestBody(InferenceError):
    status_code = 400


class PayloadTooLarge(InferenceError):
    status_code = 413


class ModelNotReady(InferenceError):
    status_code = 503


class HandlerTimeout(InferenceError):
    status_code = 504


class UnencodableResult(InferenceError):
    status_code = 500
