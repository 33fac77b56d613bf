"""The AWS query protocol, for STS and IAM: form-encoded ``Action=...`` in, XML out.

Each service has a dispatch table (``api/handlers/sts.py``, ``api/handlers/iam.py``) and
its botocore model; ``api.queryxml`` parses the form against the input shape and writes the
handler's result as the output shape. STS answers ``GetCallerIdentity``; an unknown action
is ``InvalidAction``, as STS says it. IAM answers ``GetRole`` for the server's execution
role; every other IAM action (``SimulatePrincipalPolicy``, ``ListRoles``, ``CreateRole``
...) is ``AccessDenied`` in IAM's own form, which the SageMaker SDKs take as "cannot be
verified" and go on.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from sageport.api.auth import AuthFailure, AuthProblem
from sageport.api.dispatch import Handler, RequestContext
from sageport.api.policy import caller_arn
from sageport.api.queryxml import (
    QueryAccessDenied,
    error_xml,
    parse_params,
    read_form,
    response_xml,
)
from sageport.api.service_models import ServiceModels
from sageport.errors import (
    AccessDeniedException,
    AwsError,
    IncompleteSignature,
    InvalidSignature,
    MissingAuthenticationToken,
)

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"


class InvalidClientTokenId(AwsError):
    code = "InvalidClientTokenId"
    status = 403


class SignatureDoesNotMatchQuery(AwsError):
    code = "SignatureDoesNotMatch"
    status = 403


class InvalidAction(AwsError):
    code = "InvalidAction"


def query_action(query: str, body: bytes | None) -> str:
    """The ``Action`` a query-protocol request names ("" when none)."""
    return read_form(query, body).get("Action", "")


class QueryProtocol:
    """One query-protocol service: its table, model and ``<ErrorResponse>`` namespace."""

    signs_body = True

    def __init__(
        self, service: str, namespace: str, table: dict[str, Handler], models: ServiceModels
    ) -> None:
        self.service = service
        self.namespace = namespace
        self.table = table
        self._models = models

    def unknown(self, action: str, ctx: RequestContext) -> AwsError:
        """The error for an action the table does not have."""
        return InvalidAction(
            f"Could not find operation {action or '(none)'} for version "
            f"{self._models.get(self.service).api_version}"
        )

    async def handle(self, request: Request, ctx: RequestContext, body: bytes | None) -> Response:
        form = read_form(request.url.query, body)
        action = form.get("Action", "")
        handler = self.table.get(action)
        if handler is None:
            raise self.unknown(action, ctx)
        op = self._models.get(self.service).operation_model(action)
        result = handler(ctx, parse_params(op, form))
        return Response(
            response_xml(op, self.namespace, result, ctx.request_id), media_type="text/xml"
        )

    def auth_error(self, failure: AuthFailure) -> AwsError:
        match failure.problem:
            case AuthProblem.MISSING:
                return MissingAuthenticationToken(failure.message)
            case AuthProblem.MALFORMED:
                return IncompleteSignature(failure.message)
            case AuthProblem.UNKNOWN_KEY:
                return InvalidClientTokenId(
                    "The security token included in the request is invalid."
                )
            case AuthProblem.BAD_SIGNATURE | AuthProblem.WRONG_SERVICE | AuthProblem.WRONG_REGION:
                return SignatureDoesNotMatchQuery(failure.message)
            case AuthProblem.DENIED:
                return QueryAccessDenied(failure.message)
            case _:
                return InvalidSignature(failure.message)

    def error_response(self, err: AwsError, request: Request, request_id: str) -> Response:
        code, status = err.code, err.status
        if isinstance(err, AccessDeniedException):  # a key's policy (api.policy)
            code, status = QueryAccessDenied.code, QueryAccessDenied.status
        body = error_xml(self.namespace, err, code, request_id)
        return Response(body, status_code=status, media_type="text/xml")


class StsProtocol(QueryProtocol):
    """STS: ``GetCallerIdentity`` (``api/handlers/sts.py``)."""

    def __init__(self, table: dict[str, Handler], models: ServiceModels) -> None:
        super().__init__("sts", STS_NS, table, models)


class IamProtocol(QueryProtocol):
    """IAM: ``GetRole`` of the execution role (``api/handlers/iam.py``); else AccessDenied."""

    def __init__(self, table: dict[str, Handler], models: ServiceModels) -> None:
        super().__init__("iam", IAM_NS, table, models)

    def unknown(self, action: str, ctx: RequestContext) -> AwsError:
        who = caller_arn(ctx.services.keys.get(ctx.access_key), ctx.account_id)
        return QueryAccessDenied(
            f"User: {who} is not authorized to perform: iam:{action or '(none)'}: sageport "
            "serves no IAM but GetRole of its execution role (role ARNs are accepted as given "
            "and not looked up)"
        )
