"""The ASGI app: one port, every AWS protocol SageMaker user code touches.

A request is routed the way moto's server does it: by ``X-Amz-Target``, the service in its
SigV4 credential scope, or its path (:func:`sageport.api.confine.surface_of`). Before anything
else it is authenticated and confined (the signed parts alone must select that protocol:
``api.confine``), and every failure — authentication, validation, a bug — is answered in the
form of the protocol it came in on, so clients always get an error they can parse.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sageport.api import asgi, policy
from sageport.api.auth import AuthFailure, SignedRequest, Verifier
from sageport.api.confine import Claim, Confinement, Surface, claim_of, surface_of
from sageport.api.dispatch import RequestContext, collect
from sageport.api.extensions import ExtensionProtocol
from sageport.api.handlers import (
    endpoint_configs,
    endpoints,
    iam,
    logs,
    models,
    processing,
    sts,
    tags,
    training,
)
from sageport.api.invocations import RuntimeProtocol
from sageport.api.jsonproto import JsonProtocol
from sageport.api.protocol import WireProtocol
from sageport.api.query import IamProtocol, StsProtocol, query_action
from sageport.api.s3 import S3Protocol
from sageport.api.service_models import ServiceModels
from sageport.api.validate import Validator
from sageport.errors import AwsError, InternalFailure, PayloadTooLarge
from sageport.services.container import Services
from sageport.settings import Settings

log = logging.getLogger(__name__)

HEALTH_PATH = "/_sageport/health"
DRAIN_LIMIT = asgi.DRAIN_LIMIT
ALL_METHODS = ["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS"]

SAGEMAKER_MODULES = (models, endpoint_configs, endpoints, tags, training, processing)
LOGS_MODULES = (logs,)
STS_MODULES = (sts,)
IAM_MODULES = (iam,)


class ProtocolRouter:
    """Holds the protocols and picks one per request."""

    def __init__(self, services: Services) -> None:
        service_models = ServiceModels()
        validator = Validator()
        self.sagemaker = JsonProtocol(
            "sagemaker", "SageMaker", collect(*SAGEMAKER_MODULES), service_models, validator
        )
        self.logs = JsonProtocol(
            "logs", "Logs_20140328", collect(*LOGS_MODULES), service_models, validator
        )
        self.extensions = ExtensionProtocol("sagemaker", "", {}, service_models, validator)
        self.runtime = RuntimeProtocol(services.router, services.upstream, _status_of(services))
        self.sts = StsProtocol(collect(*STS_MODULES), service_models)
        self.iam = IamProtocol(collect(*IAM_MODULES), service_models)
        self.s3 = S3Protocol(services)
        self._by_surface: dict[Surface, WireProtocol] = {
            Surface.SAGEMAKER: self.sagemaker,
            Surface.LOGS: self.logs,
            Surface.EXTENSIONS: self.extensions,
            Surface.RUNTIME: self.runtime,
            Surface.STS: self.sts,
            Surface.QUERY: self.iam,
            Surface.S3: self.s3,
        }

    def protocol(self, surface: Surface) -> WireProtocol:
        return self._by_surface[surface]

    def route(self, method: str, path: str, target: str, claim: Claim | None) -> WireProtocol:
        """The protocol that answers a request (``api.confine`` decides whether it may)."""
        return self._by_surface[surface_of(method, path, target, claim)]

    def action(
        self, protocol: WireProtocol, target: str, query: str = "", body: bytes | None = None
    ) -> str:
        """The IAM-style action a routed request asks for, which ``api.policy`` decides on
        (``sagemaker:<Op>`` from the target the JSON protocols dispatch on, ``iam:<Action>``
        from the query form, the rest whole)."""
        if protocol is self.sagemaker:
            return f"sagemaker:{target.partition('.')[2]}"
        if protocol is self.logs:
            return f"logs:{target.partition('.')[2]}"
        if protocol is self.runtime:
            return "sagemaker:InvokeEndpoint"
        if protocol is self.extensions:
            return "sageport:Read"
        if protocol is self.iam:
            return f"iam:{query_action(query, body) or '*'}"
        return "sts:*" if protocol is self.sts else "s3:*"


def _status_of(services: Services) -> Callable[[str], str | None]:
    def status(name: str) -> str | None:
        try:
            return services.endpoints.get(name).status
        except AwsError:
            return None

    return status


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            # Read (and drop) the rest, up to a bound, so the client gets our error instead of
            # a reset connection; past the bound, closing on it is the only protection left.
            async for rest in request.stream():
                size += len(rest)
                if size > DRAIN_LIMIT:
                    break
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _signed_request(request: Request) -> SignedRequest:
    return asgi.signed_request(request.scope)


Invocations = Callable[
    [asgi.Scope, asgi.Receive, asgi.Send, SignedRequest, Claim | None], Awaitable[None]
]


class App(Starlette):
    """Starlette, with InvokeEndpoint (``POST /endpoints/...`` the runtime protocol would
    answer) taken before its middleware and routing: see :mod:`sageport.api.asgi`."""

    def __init__(self, invocations: Invocations, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._invocations = invocations

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith("/endpoints/")
        ):
            signed = asgi.signed_request(scope)
            target = signed.headers.get("x-amz-target", "")
            claim = claim_of(signed)
            if surface_of("POST", scope["path"], target, claim) is Surface.RUNTIME:
                await self._invocations(scope, receive, send, signed, claim)
                return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings, services: Services, *, close_services: bool = False
) -> Starlette:
    """Build the server app over ``services`` (``sageport.wiring`` builds them); it starts and
    stops their background work with its lifespan and, with ``close_services``, closes them
    on shutdown."""
    svc = services
    keys = svc.keys  # credentials.json and the live job keys
    verifier = Verifier(keys, settings.max_clock_skew_seconds)
    router = ProtocolRouter(svc)
    confinement = Confinement(settings.region)

    runtime = router.runtime

    async def invocations(
        scope: asgi.Scope,
        receive: asgi.Receive,
        send: asgi.Send,
        signed: SignedRequest,
        claim: Claim | None,
    ) -> None:
        """``dispatch`` for the runtime protocol, on the raw ASGI scope."""
        try:
            try:
                body = await asgi.read_body(receive, settings.max_json_body_bytes)
            except asgi.Disconnected:
                return
            try:
                signed_by = verifier.verify(signed, body, svc.clock.now())
                confinement.check(signed, claim, Surface.RUNTIME)
            except AuthFailure as refused:
                raise runtime.auth_error(refused) from None
            policy.authorize(
                keys.get(signed_by.access_key), "sagemaker:InvokeEndpoint", settings.account_id
            )
            headers, answer = await runtime.invoke(
                scope["path"], signed.headers, body, settings.region, settings.account_id
            )
        except AwsError as err:
            request = Request(scope, receive)
            await runtime.error_response(err, request, str(uuid.uuid4()))(scope, receive, send)
            return
        except Exception as exc:
            log.exception("unexpected error serving POST %s", scope["path"])
            bug = InternalFailure(f"sageport failed to serve the request: {type(exc).__name__}")
            request = Request(scope, receive)
            await runtime.error_response(bug, request, str(uuid.uuid4()))(scope, receive, send)
            return
        await asgi.send_answer(send, headers, answer)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "region": settings.region})

    async def dispatch(request: Request) -> Response:
        request_id = str(uuid.uuid4())
        signed = _signed_request(request)
        claim = claim_of(signed)
        target = signed.headers.get("x-amz-target", "")
        surface = surface_of(request.method, request.url.path, target, claim)
        protocol = router.protocol(surface)
        try:
            body = (
                await _read_body(request, settings.max_json_body_bytes)
                if protocol.signs_body
                else None
            )
            if protocol is router.s3:
                signed = router.s3.addressed(signed)  # the bucket in a virtual host
            try:
                scope = verifier.verify(signed, body, svc.clock.now())
                # what the signature authorises, once it is known to be the key holder's
                confinement.check(signed, claim, surface)
            except AuthFailure as refused:
                raise protocol.auth_error(refused) from None
            action = router.action(protocol, target, request.url.query, body)
            policy.authorize(keys.get(scope.access_key), action, settings.account_id)
            ctx = RequestContext(
                services=svc,
                region=settings.region,
                account_id=settings.account_id,
                access_key=scope.access_key,
                request_id=request_id,
            )
            return await protocol.handle(request, ctx, body)
        except AwsError as err:
            return protocol.error_response(err, request, request_id)
        except Exception as exc:
            log.exception("unexpected error serving %s %s", request.method, request.url.path)
            bug = InternalFailure(f"sageport failed to serve the request: {type(exc).__name__}")
            return protocol.error_response(bug, request, request_id)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await svc.background.start()
        try:
            yield
        finally:
            await svc.background.stop()
            if close_services:
                svc.close()

    return App(
        invocations,
        routes=[
            Route(HEALTH_PATH, health, methods=["GET"]),
            _every_path(dispatch),
        ],
        lifespan=lifespan,
    )


def _every_path(endpoint: Callable[[Request], Awaitable[Response]]) -> Route:
    """The route of every path, newlines included: Starlette's ``{path:path}`` is ``.*``
    without DOTALL, so ``/bucket/new%0Aline`` fell through to its plain-text 404 instead of
    getting the error the request's protocol answers."""
    route = Route("/{path:path}", endpoint, methods=ALL_METHODS)
    route.path_regex = re.compile(route.path_regex.pattern, re.DOTALL)
    return route
