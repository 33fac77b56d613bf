"""IAM (botocore's ``iam`` model): ``GetRole`` for the server's execution role, nothing else.

sageport keeps no IAM: any role ARN a request names is accepted as given. The one role it
knows is :data:`~sageport.api.policy.EXECUTION_ROLE`, the one the SDK config names and the
server user's keys are a session of (``api.policy.caller_arn``): the SageMaker Python SDK
3.x looks it up (``iam.get_role``) to resolve and check its default execution role, 2.x to
find the role's path. Its trust policy lets SageMaker assume it, as the SDK checks. Every
other role, and every other IAM action (the protocol answers those), is ``AccessDenied``:
the SDKs take that as "cannot be verified" and go on with the role they were given.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from urllib.parse import quote

from sageport.api.dispatch import Params, RequestContext, Result, operation
from sageport.api.policy import EXECUTION_ROLE, caller_arn, execution_role_arn
from sageport.api.queryxml import QueryAccessDenied

#: when the role is said to have been created: fixed, so every answer is the same
ROLE_CREATED = datetime(2024, 1, 1, tzinfo=UTC)

TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def role_id(account_id: str) -> str:
    """A stable IAM-style role id (``AROA`` + 17 characters) for the account's role."""
    digest = hashlib.sha256(f"{account_id}:{EXECUTION_ROLE}".encode()).digest()
    return "AROA" + base64.b32encode(digest).decode()[:17]


def execution_role(account_id: str) -> Result:
    """The ``Role`` structure of the execution role (the trust policy URL-encoded, as IAM)."""
    return {
        "Path": "/",
        "RoleName": EXECUTION_ROLE,
        "RoleId": role_id(account_id),
        "Arn": execution_role_arn(account_id),
        "CreateDate": ROLE_CREATED,
        "AssumeRolePolicyDocument": quote(json.dumps(TRUST_POLICY, separators=(",", ":"))),
        "Description": "The execution role of sageport's jobs and endpoints",
        "MaxSessionDuration": 3600,
    }


@operation("GetRole")
def get_role(ctx: RequestContext, params: Params) -> Result:
    name = params["RoleName"]
    if name != EXECUTION_ROLE:
        who = caller_arn(ctx.services.keys.get(ctx.access_key), ctx.account_id)
        raise QueryAccessDenied(
            f"User: {who} is not authorized to perform: iam:GetRole on resource: role {name}: "
            f"sageport knows one role, {EXECUTION_ROLE} (the SDK config's); other role ARNs "
            "are accepted as given and not looked up"
        )
    return {"Role": execution_role(ctx.account_id)}
