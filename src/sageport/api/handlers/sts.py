"""STS (botocore's ``sts`` model): ``GetCallerIdentity``, what the SDKs and CLIs ask first.

The identity is the server's account and the access key that signed; who that key is
(the execution role's session for the user's keys, an assumed role named after the job for
a job's own key) is decided by ``api.policy.caller_arn``.
"""

from __future__ import annotations

from sageport.api.dispatch import Params, RequestContext, Result, operation
from sageport.api.policy import caller_arn


@operation("GetCallerIdentity")
def get_caller_identity(ctx: RequestContext, params: Params) -> Result:
    return {
        "Arn": caller_arn(ctx.services.keys.get(ctx.access_key), ctx.account_id),
        "UserId": ctx.access_key,
        "Account": ctx.account_id,
    }
