"""SageMaker Runtime (REST-JSON): ``POST /endpoints/<name>/invocations``.

Endpoints arrive with the endpoints work; until then no endpoint exists, and every
invocation gets the error real SageMaker gives for an unknown endpoint.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from sageport.api.auth import AuthFailure
from sageport.api.dispatch import RequestContext
from sageport.api.jsonproto import json_auth_error
from sageport.errors import AwsError


class RuntimeValidationError(AwsError):
    code = "ValidationError"


class RuntimeProtocol:
    signs_body = True

    def auth_error(self, failure: AuthFailure) -> AwsError:
        return json_auth_error(failure)

    async def handle(self, request: Request, ctx: RequestContext, body: bytes | None) -> Response:
        parts = request.url.path.strip("/").split("/")
        name = parts[1] if len(parts) > 1 else ""
        raise RuntimeValidationError(f"Endpoint {name} of account {ctx.account_id} not found.")

    def error_response(self, err: AwsError, request: Request, request_id: str) -> Response:
        return Response(
            json.dumps({"message": err.message}),
            status_code=err.status,
            media_type="application/json",
            headers={"x-amzn-RequestId": request_id, "x-amzn-ErrorType": f"{err.code}:"},
        )
