"""The AWS query protocol, for STS and IAM: form-encoded ``Action=...`` in, XML out.

IAM is not served: every IAM request (credential scope ``iam``, as boto3's ``iam`` client
signs) is answered ``AccessDenied`` in IAM's own error form, so callers that probe a role
(``iam.get_role``; the SageMaker SDK's role lookups) get an error they can parse and go on.

sageport answers only ``GetCallerIdentity`` here (the SDK and CLIs ask who they are); the
identity is the account the server is configured with and the access key that signed (a
job's own key answers as an assumed role named after the job: ``api.policy.caller_arn``).
"""

from __future__ import annotations

from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import Response

from sageport.api.auth import AuthFailure, AuthProblem
from sageport.api.dispatch import RequestContext
from sageport.api.policy import caller_arn
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


class QueryAccessDenied(AwsError):
    """What query-protocol services (STS, IAM) call ``AccessDeniedException``."""

    code = "AccessDenied"
    status = 403


def _action(request: Request, body: bytes | None) -> str:
    form = parse_qs((body or b"").decode("utf-8", "replace"))
    form.update(parse_qs(request.url.query))
    return (form.get("Action") or [""])[0]


class QueryProtocol:
    """Errors of the query protocol: ``<ErrorResponse>`` in the service's namespace."""

    signs_body = True
    namespace = STS_NS

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
        kind = "Sender" if err.status < 500 else "Receiver"
        code, status = err.code, err.status
        if isinstance(err, AccessDeniedException):  # a key's policy (api.policy)
            code, status = QueryAccessDenied.code, QueryAccessDenied.status
        xml = (
            f'<ErrorResponse xmlns="{self.namespace}"><Error><Type>{kind}</Type>'
            f"<Code>{escape(code)}</Code><Message>{escape(err.message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return Response(xml, status_code=status, media_type="text/xml")


class IamProtocol(QueryProtocol):
    """Every IAM request: AccessDenied (sageport has no IAM; roles are not needed)."""

    namespace = IAM_NS

    async def handle(self, request: Request, ctx: RequestContext, body: bytes | None) -> Response:
        action = _action(request, body) or "(none)"
        raise QueryAccessDenied(
            f"User: {caller_arn(ctx.services.keys.get(ctx.access_key), ctx.account_id)} is "
            f"not authorized to perform: iam:{action}: sageport serves no IAM (execution "
            "roles are accepted as given and not looked up)"
        )


class StsProtocol(QueryProtocol):
    """STS: GetCallerIdentity."""

    async def handle(self, request: Request, ctx: RequestContext, body: bytes | None) -> Response:
        action = _action(request, body)
        if action != "GetCallerIdentity":
            raise InvalidAction(
                f"Could not find operation {action or '(none)'} for version 2011-06-15"
            )
        account = ctx.account_id
        arn = caller_arn(ctx.services.keys.get(ctx.access_key), account)
        xml = (
            f'<GetCallerIdentityResponse xmlns="{STS_NS}"><GetCallerIdentityResult>'
            f"<Arn>{escape(arn)}</Arn><UserId>{escape(ctx.access_key)}</UserId>"
            f"<Account>{escape(account)}</Account></GetCallerIdentityResult>"
            f"<ResponseMetadata><RequestId>{ctx.request_id}</RequestId></ResponseMetadata>"
            "</GetCallerIdentityResponse>"
        )
        return Response(xml, media_type="text/xml")
