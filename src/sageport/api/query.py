"""The AWS query protocol, for STS: form-encoded ``Action=...`` in, XML out.

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
    AwsError,
    IncompleteSignature,
    InvalidSignature,
    MissingAuthenticationToken,
)

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


class InvalidClientTokenId(AwsError):
    code = "InvalidClientTokenId"
    status = 403


class SignatureDoesNotMatchQuery(AwsError):
    code = "SignatureDoesNotMatch"
    status = 403


class InvalidAction(AwsError):
    code = "InvalidAction"


class StsProtocol:
    signs_body = True

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
            case AuthProblem.BAD_SIGNATURE:
                return SignatureDoesNotMatchQuery(failure.message)
            case _:
                return InvalidSignature(failure.message)

    async def handle(self, request: Request, ctx: RequestContext, body: bytes | None) -> Response:
        form = parse_qs((body or b"").decode("utf-8", "replace"))
        form.update(parse_qs(request.url.query))
        action = (form.get("Action") or [""])[0]
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

    def error_response(self, err: AwsError, request: Request, request_id: str) -> Response:
        kind = "Sender" if err.status < 500 else "Receiver"
        xml = (
            f'<ErrorResponse xmlns="{STS_NS}"><Error><Type>{kind}</Type>'
            f"<Code>{escape(err.code)}</Code><Message>{escape(err.message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return Response(xml, status_code=err.status, media_type="text/xml")
