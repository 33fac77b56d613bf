"""Job keys end to end below the wire: minted, looked up, verified, refused once revoked,
and held to the job-key policy (``api.policy``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sageport.api import policy
from sageport.api.auth import AuthFailure, AuthProblem, SignedRequest, Verifier
from sageport.clock import SystemClock
from sageport.domain.keys import KeyPair
from sageport.errors import AccessDeniedException
from sageport.services.keys import AccessKeys
from sageport.store.database import Database

OWN = KeyPair("SPOWNKEY0000000000000", "own-secret")
JOB = "arn:aws:sagemaker:us-east-1:000000000000:training-job/my-job"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'keys.db'}")
    database.create_all()
    yield database
    database.close()


def _signed(key: KeyPair) -> SignedRequest:
    req = AWSRequest(
        method="POST",
        url="http://127.0.0.1:5757/",
        data=b"{}",
        headers={"X-Amz-Target": "SageMaker.ListModels", "Host": "127.0.0.1:5757"},
    )
    SigV4Auth(
        Credentials(key.access_key_id, key.secret_access_key), "sagemaker", "us-east-1"
    ).add_auth(req)
    headers = {k.lower(): str(v) for k, v in req.headers.items()}
    return SignedRequest("POST", "/", "", headers, "127.0.0.1:5757")


def test_a_job_key_verifies_until_revoked_then_reads_as_unknown(db: Database) -> None:
    keys = AccessKeys([OWN], db, SystemClock())
    verifier = Verifier(keys, 900)
    key = keys.issue(JOB)
    assert key.access_key_id.startswith("SPJ")
    assert len(key.access_key_id) == 20
    assert key.owner_arn == JOB
    assert keys.issue(JOB) == key  # one live key per owner: every host, every re-stage
    assert key.secret_access_key not in repr(key)
    request = _signed(key)
    now = datetime.now(UTC)
    assert verifier.verify(request, b"{}", now).access_key == key.access_key_id
    keys.revoke(JOB)
    with pytest.raises(AuthFailure) as refused:
        verifier.verify(request, b"{}", now)
    assert refused.value.problem is AuthProblem.UNKNOWN_KEY
    assert keys.get(key.access_key_id) is None
    fresh = keys.issue(JOB)  # a later run of the owner gets a new key, never the old one
    assert fresh.access_key_id != key.access_key_id


def test_a_restarted_server_knows_live_keys_from_the_database(db: Database) -> None:
    key = AccessKeys([OWN], db, SystemClock()).issue(JOB)
    other = AccessKeys([OWN], db, SystemClock())  # a new process: nothing cached
    assert other.get(key.access_key_id) == key
    assert other.issue(JOB) == key
    other.revoke(JOB)
    assert AccessKeys([OWN], db, SystemClock()).get(key.access_key_id) is None


def test_the_servers_own_keys_are_static_and_never_issued(db: Database) -> None:
    keys = AccessKeys([OWN], db, SystemClock())
    assert keys.get(OWN.access_key_id) == OWN
    assert keys.get("SPJUNKNOWN0000000000") is None
    assert keys.issue(JOB).access_key_id not in keys.static_ids


def test_job_keys_read_but_do_not_change_sagemaker_resources() -> None:
    key = KeyPair("SPJX", "s", JOB)
    for action in (
        "s3:*",
        "logs:GetLogEvents",
        "sts:*",
        "sagemaker:DescribeTrainingJob",
        "sagemaker:ListEndpoints",
        "sagemaker:Search",
        "sagemaker:InvokeEndpoint",
        "iam:GetRole",
    ):
        policy.authorize(key, action, "000000000000")
    for action in (
        "iam:ListRoles",
        "iam:CreateRole",
        "iam:*",
        "sagemaker:StopTrainingJob",
        "sagemaker:DeleteEndpoint",
        "sagemaker:CreateTrainingJob",
        "sagemaker:AddTags",
        "sagemaker:UpdateEndpoint",
        "sagemaker:describeTrainingJob",  # patterns are case-sensitive, as targets are
    ):
        with pytest.raises(AccessDeniedException) as denied:
            policy.authorize(key, action, "000000000000")
        assert action in denied.value.message
        assert JOB in denied.value.message
        assert "assumed-role/SageMaker-TrainingJob/my-job" in denied.value.message
    policy.authorize(OWN, "sagemaker:DeleteEndpoint", "000000000000")  # the user may


def test_caller_arns() -> None:
    # the user's keys: a session of the execution role the SDK config names
    assert policy.caller_arn(OWN, "1") == (
        "arn:aws:sts::1:assumed-role/SageportExecutionRole/sageport"
    )
    assert policy.execution_role_arn("1") == "arn:aws:iam::1:role/SageportExecutionRole"
    assert policy.caller_arn(KeyPair("k", "s", JOB), "1") == (
        "arn:aws:sts::1:assumed-role/SageMaker-TrainingJob/my-job"
    )
    endpoint = KeyPair("k", "s", "arn:aws:sagemaker:r:1:endpoint/ep")
    assert policy.caller_arn(endpoint, "1") == "arn:aws:sts::1:assumed-role/SageMaker-Endpoint/ep"
