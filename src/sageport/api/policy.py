"""What a credential may do: decided here, for every protocol, after its signature passed.

Two kinds of key reach the server (``domain.keys``):

- the server user's own keys (``credentials.json``, what ``sageport env`` prints) may do
  everything: the user owns the server. STS says they are a session of the execution role
  the SDK config names (:data:`EXECUTION_ROLE`), as in a SageMaker notebook, so the SDKs'
  role look-ups (``get_caller_identity`` then ``iam.get_role``) find that role;
- a job's own key (``SPJ…``, handed to one training job, processing job or endpoint while it
  runs) acts like a SageMaker execution role of modest reach: the object store, CloudWatch
  Logs and STS in full (a job reads its data, writes its results, asks who it is), IAM
  ``GetRole`` (a read: what the SDKs look up), and of the SageMaker API only what reads:
  ``Describe*``, ``List*``, ``Search``, ``GetSearchSuggestions`` and ``InvokeEndpoint`` (a
  job may call a deployed model). Everything that changes SageMaker
  resources (``Create*``, ``Update*``, ``Stop*``, ``Delete*``, tags) is refused with
  ``AccessDeniedException``: a job must not stop, delete or retag other people's work, nor
  start jobs of its own (each of which would get a key and a sandbox of its own, unbounded).

The app names each request's action IAM-style (``sagemaker:StopTrainingJob``,
``iam:GetRole``, ``s3:*``) from the protocol it routed the signed request to, and calls
:func:`authorize` once per request. :func:`caller_arn` is what ``GetCallerIdentity`` answers
for a key.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from sageport.domain.arns import parse_sagemaker_arn
from sageport.domain.keys import KeyPair
from sageport.errors import AccessDeniedException

#: the actions a job's own key may perform (IAM-style patterns, case-sensitive)
JOB_KEY_ALLOWS = (
    "s3:*",
    "logs:*",
    "sts:*",
    "iam:GetRole",
    "sageport:Read*",
    "sagemaker:Describe*",
    "sagemaker:List*",
    "sagemaker:Search",
    "sagemaker:GetSearchSuggestions",
    "sagemaker:InvokeEndpoint",
)

#: the execution role of this server: what the SDK config names and IAM GetRole answers for
EXECUTION_ROLE = "SageportExecutionRole"
#: the STS session name of the server user's own keys
USER_SESSION = "sageport"

#: the role a job key's caller ARN names, by the resource type of its owner's ARN
ROLE_OF = {
    "training-job": "SageMaker-TrainingJob",
    "processing-job": "SageMaker-ProcessingJob",
    "endpoint": "SageMaker-Endpoint",
}


def allowed(key: KeyPair, action: str) -> bool:
    """Whether ``key`` may perform ``action``; the user's own keys may do anything."""
    if not key.is_job_key:
        return True
    return any(fnmatchcase(action, pattern) for pattern in JOB_KEY_ALLOWS)


def authorize(key: KeyPair | None, action: str, account_id: str) -> None:
    """Refuse ``action`` for a key its policy does not allow it to (a key the verifier did
    not find — it refused the request already — is no business of the policy)."""
    if key is None or allowed(key, action):
        return
    raise AccessDeniedException(
        f"User: {caller_arn(key, account_id)} is not authorized to perform: {action} "
        "because no identity-based policy allows it: the access key of "
        f"{key.owner_arn} may only use S3, CloudWatch Logs, STS, IAM GetRole, SageMaker reads "
        "(Describe*, List*, Search) and InvokeEndpoint"
    )


def execution_role_arn(account_id: str) -> str:
    """The ARN of :data:`EXECUTION_ROLE` in ``account_id``."""
    return f"arn:aws:iam::{account_id}:role/{EXECUTION_ROLE}"


def caller_arn(key: KeyPair | None, account_id: str) -> str:
    """Who ``key`` is, as STS ``GetCallerIdentity`` says it: a session of the execution role
    for the server's own keys (the SDKs derive their default role from it), an assumed role
    named after the resource kind (session: its name) for job keys."""
    if key is None or key.owner_arn is None:
        return f"arn:aws:sts::{account_id}:assumed-role/{EXECUTION_ROLE}/{USER_SESSION}"
    parsed = parse_sagemaker_arn(key.owner_arn)
    kind, name = parsed if parsed else ("resource", key.owner_arn.rpartition("/")[2])
    role = ROLE_OF.get(kind, "SageMaker-Job")
    return f"arn:aws:sts::{account_id}:assumed-role/{role}/{name}"
