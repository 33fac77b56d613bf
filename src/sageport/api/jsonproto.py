"""The AWS JSON 1.1 protocol (SageMaker control plane, CloudWatch Logs).

``POST /`` with ``X-Amz-Target: <prefix>.<Operation>`` and a JSON body. The body is validated
against the operation's input shape, the handler runs in a worker thread (it talks to the
database), and its dict is shaped by the output shape. Errors become
``{"__type": code, "message": text}`` with the error's HTTP status; this is the only place
that writes such a body for JSON services.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from botocore.model import OperationNotFoundError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sageport.api.auth import AuthFailure, AuthProblem
from sageport.api.dispatch import Handler, RequestContext
from sageport.api.serialize import to_json
from sageport.api.service_models import ServiceModels
from sageport.api.validate import Validator
from sageport.errors import (
    AccessDeniedException,
    AwsError,
    IncompleteSignature,
    InternalFailure,
    InvalidSignature,
    MissingAuthenticationToken,
    SerializationException,
    UnknownOperationException,
    UnrecognizedClient,
)

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-amz-json-1.1"


def json_auth_error(failure: AuthFailure) -> AwsError:
    """Authentication failures as JSON services (SageMaker, Logs) report them."""
    match failure.problem:
        case AuthProblem.MISSING:
            return MissingAuthenticationToken(failure.message)
        case AuthProblem.MALFORMED:
            return IncompleteSignature(failure.message)
        case AuthProblem.UNKNOWN_KEY:
            return UnrecognizedClient(failure.message)
        case AuthProblem.DENIED:
            return AccessDeniedException(failure.message)
        case _:
            return InvalidSignature(failure.message)


class JsonProtocol:
    """Serves one JSON 1.1 service from its dispatch table."""

    signs_body = True

    def __init__(
        self,
        service: str,
        target_prefix: str,
        table: dict[str, Handler],
        models: ServiceModels,
        validator: Validator,
    ) -> None:
        self.service = service
        self.target_prefix = target_prefix
        self.table = table
        self._models = models
        self._validator = validator

    def auth_error(self, failure: AuthFailure) -> AwsError:
        return json_auth_error(failure)

    async def handle(self, request: Request, ctx: RequestContext, body: bytes | None) -> Response:
        target = request.headers.get("x-amz-target", "")
        prefix, _, name = target.partition(".")
        if prefix != self.target_prefix or not name:
            raise UnknownOperationException(f"Unknown operation {target!r}.")
        model = self._models.get(self.service)
        try:
            op = model.operation_model(name)
        except OperationNotFoundError:
            raise UnknownOperationException(
                f"Unknown operation {name!r} for service {self.service}."
            ) from None
        handler = self.table.get(name)
        if handler is None:
            raise UnknownOperationException(
                f"The operation {name} is part of the {model.service_id} API but is not "
                "implemented by sageport yet (see docs/api-coverage.md)."
            )
        params = self._validator.validate(op.input_shape, _decode(body or b""))
        try:
            result = await run_in_threadpool(handler, ctx, params)
        except AwsError:
            raise
        except Exception as exc:  # a bug: say so in the protocol's form, keep serving
            log.exception("handler for %s failed", name)
            raise InternalFailure(
                f"{name} failed inside sageport: {type(exc).__name__}: {exc}"
            ) from exc
        payload = json.dumps(to_json(op.output_shape, result), separators=(",", ":"))
        return Response(
            payload, media_type=CONTENT_TYPE, headers={"x-amzn-RequestId": ctx.request_id}
        )

    def error_response(self, err: AwsError, request: Request, request_id: str) -> Response:
        body = json.dumps({"__type": err.code, "message": err.message})
        return Response(
            body,
            status_code=err.status,
            media_type=CONTENT_TYPE,
            headers={"x-amzn-RequestId": request_id, "x-amzn-ErrorType": err.code},
        )


#: deepest nesting of arrays and objects a request may have: the deepest input shape of the
#: SageMaker and Logs models is a dozen levels; Python's parser would fail near 1000
MAX_DEPTH = 64


def _decode(body: bytes) -> Any:
    """The JSON document ``body`` holds; anything else is a ``SerializationException``.

    Strict JSON (RFC 8259): ``NaN`` and ``Infinity``, which Python's parser reads but no AWS
    client writes, are refused, and so is nesting deeper than :data:`MAX_DEPTH`, before the
    parser recurses into it.
    """
    if not body.strip():
        return {}
    depth = _nesting(body)
    if depth > MAX_DEPTH:
        raise SerializationException(
            f"The request body nests arrays and objects {depth} levels deep; "
            f"at most {MAX_DEPTH} are accepted."
        )
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        detail = f": {exc}" if isinstance(exc, _NotJson) else ""
        raise SerializationException(f"The request body is not valid JSON{detail}.") from None


class _NotJson(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON number")


_OPENERS = re.compile(rb'[\[{\]}"\\]')


def _nesting(body: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in ``body`` outside strings (an upper bound when
    the document is broken; it is then refused either way)."""
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return 0  # the common case costs two C-speed counts
    depth = deepest = 0
    in_string = False
    skip = -1  # the position of a character escaped by a backslash
    for match in _OPENERS.finditer(body):
        if match.start() == skip:
            continue
        char = match.group()
        if in_string:
            if char == b"\\":
                skip = match.end()
            elif char == b'"':
                in_string = False
        elif char == b'"':
            in_string = True
        elif char in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif char in (b"]", b"}"):
            depth -= 1
    return deepest
