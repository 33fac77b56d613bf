"""What every wire protocol offers the app: answer a request, or say an error in its own form."""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response

from sageport.api.auth import AuthFailure
from sageport.api.dispatch import RequestContext
from sageport.errors import AwsError


class WireProtocol(Protocol):
    """One AWS protocol (JSON 1.1, REST-XML, query ...) served by the app."""

    #: does the signature cover the body (so the app must read it before verifying)?
    signs_body: bool

    async def handle(self, request: Request, ctx: RequestContext, body: bytes | None) -> Response:
        """Answer an authenticated request; ``body`` is the read body when ``signs_body``."""
        ...

    def auth_error(self, failure: AuthFailure) -> AwsError:
        """The error this protocol's service uses for an authentication failure."""
        ...

    def error_response(self, err: AwsError, request: Request, request_id: str) -> Response:
        """Render ``err`` as this protocol's error body."""
        ...
