"""STS and IAM as the SageMaker SDKs use them, in the query protocol's own form.

The server user's keys are a session of the execution role the SDK config names, and IAM
``GetRole`` answers that role (SDK 3.x resolves and checks its default role this way, 2.x
finds the role's path); every other IAM action and role is ``AccessDenied`` in IAM's form,
bad input is IAM's ``ValidationError``. A job's own key may ``GetRole`` (a read) and nothing
else of IAM. ModelTrainer's command ``chmod``s a driver from its input data first: such a
file is the job's own copy.
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import boto3
import pytest
import yaml
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from server_helpers import apply_sageport_env, aws_error
from training_helpers import (
    ensure_bucket,
    log_text,
    put_objects,
    report,
    submit,
    unique,
    wait_completed,
)

from sageport.cli.process import ServerProcess

ACCOUNT = "000000000000"
ROLE = "SageportExecutionRole"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
IAM_NS = "{https://iam.amazonaws.com/doc/2010-05-08/}"
#: where channel files are hard links (a sandbox, or not root), as in test_training_data
LINKS = shutil.which("bwrap") is not None or os.geteuid() != 0


def _iam(server: ServerProcess, validate: bool = True) -> object:
    return server.client("iam", config=Config(parameter_validation=validate))


def test_the_user_is_a_session_of_the_execution_role(server: ServerProcess) -> None:
    ident = server.client("sts").get_caller_identity()
    assert ident["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/sageport"
    assert ident["Account"] == ACCOUNT


def test_get_role_answers_the_role_the_sdk_config_names(server: ServerProcess) -> None:
    config = yaml.safe_load((server.data_dir / "sagemaker-config.yaml").read_text())
    role = server.client("iam").get_role(RoleName=ROLE)["Role"]
    assert role["Arn"] == ROLE_ARN == config["SageMaker"]["TrainingJob"]["RoleArn"]
    assert role["Arn"] == config["SageMaker"]["Model"]["ExecutionRoleArn"]
    assert role["RoleName"] == ROLE
    assert role["Path"] == "/"
    assert role["RoleId"].startswith("AROA")
    assert len(role["RoleId"]) == 21
    assert role["CreateDate"] == datetime(2024, 1, 1, tzinfo=UTC)
    # the trust policy SDK 3.x checks: SageMaker may assume the role
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"


def test_other_roles_and_actions_are_access_denied(server: ServerProcess) -> None:
    iam = server.client("iam")
    with aws_error("AccessDenied") as err:
        iam.get_role(RoleName="SomeoneElsesRole")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "role SomeoneElsesRole" in err.value.response["Error"]["Message"]
    for call in (
        iam.list_roles,
        lambda: iam.simulate_principal_policy(PolicySourceArn=ROLE_ARN, ActionNames=["s3:*"]),
        lambda: iam.create_role(RoleName="New", AssumeRolePolicyDocument="{}"),
    ):
        with aws_error("AccessDenied") as err:
            call()
        assert "sageport serves no IAM but GetRole" in err.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("", "have length greater than or equal to 1"),
        ("x" * 65, "have length less than or equal to 64"),
        ("no spaces", "satisfy regular expression pattern"),
        (None, "Value null at 'roleName'"),
    ],
)
def test_bad_role_names_are_iam_validation_errors(
    server: ServerProcess, name: str | None, says: str
) -> None:
    iam = _iam(server, validate=False)
    with aws_error("ValidationError") as err:
        iam.get_role(**({} if name is None else {"RoleName": name}))  # type: ignore[attr-defined]
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert says in err.value.response["Error"]["Message"]


def _signed_post(server: ServerProcess, service: str, form: dict[str, str]) -> tuple[int, bytes]:
    body = urllib.parse.urlencode(form)
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    request = AWSRequest("POST", server.url + "/", data=body, headers=headers)
    key, secret = server.keys
    region = "us-east-1" if service == "iam" else server.region
    SigV4Auth(Credentials(key, secret), service, region).add_auth(request)
    sent = urllib.request.Request(
        request.url, data=body.encode(), headers=dict(request.headers), method="POST"
    )
    try:
        with urllib.request.urlopen(sent, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        with refused:
            return refused.code, refused.read()


def test_the_wire_form_is_the_query_protocols(server: ServerProcess) -> None:
    status, body = _signed_post(
        server, "iam", {"Action": "GetRole", "Version": "2010-05-08", "RoleName": ROLE}
    )
    root = ET.fromstring(body)
    assert status == 200
    assert root.tag == f"{IAM_NS}GetRoleResponse"
    assert root.findtext(f"{IAM_NS}GetRoleResult/{IAM_NS}Role/{IAM_NS}Arn") == ROLE_ARN
    assert root.findtext(f"{IAM_NS}ResponseMetadata/{IAM_NS}RequestId")
    status, body = _signed_post(server, "iam", {"Action": "ListUsers", "Version": "2010-05-08"})
    root = ET.fromstring(body)
    assert (status, root.tag) == (403, f"{IAM_NS}ErrorResponse")
    assert root.findtext(f"{IAM_NS}Error/{IAM_NS}Type") == "Sender"
    assert root.findtext(f"{IAM_NS}Error/{IAM_NS}Code") == "AccessDenied"
    status, body = _signed_post(server, "sts", {"Action": "AssumeRole", "Version": "2011-06-15"})
    assert status == 400
    assert b"<Code>InvalidAction</Code>" in body
    assert b"AssumeRole" in body


#: a job's view of IAM with its own key
IAM_PROBE = """
    import json, os
    import boto3
    from botocore.exceptions import ClientError

    iam = boto3.client("iam")
    out = {"role": iam.get_role(RoleName="SageportExecutionRole")["Role"]["Arn"]}
    try:
        iam.list_roles()
    except ClientError as exc:
        out["list_roles"] = exc.response["Error"]["Code"] + ": " + exc.response["Error"]["Message"]
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "report.json"), "w") as f:
        json.dump(out, f)
"""


@pytest.mark.slow
def test_a_job_key_may_get_the_role_and_nothing_else_of_iam(server: ServerProcess) -> None:
    ensure_bucket(server)
    name = unique("iam-key")
    submit(server, name, IAM_PROBE)
    seen = report(server, wait_completed(server, name))
    assert seen["role"] == ROLE_ARN
    assert seen["list_roles"].startswith("AccessDenied: User: arn:aws:sts::")
    assert f"assumed-role/SageMaker-TrainingJob/{name}" in seen["list_roles"]
    assert "iam:ListRoles" in seen["list_roles"]


def test_a_command_may_chmod_the_driver_it_runs_from_its_input(server: ServerProcess) -> None:
    """What SDK 3.x ModelTrainer's ContainerArguments do: chmod +x a channel file, run it."""
    ensure_bucket(server)
    name = unique("chmod-driver")
    drivers = put_objects(
        server, f"{name}/drivers", {"run.sh": b"echo driver ran as $(id -u)\n", "big.bin": b"x"}
    )
    driver = "/opt/ml/input/data/sm_drivers/run.sh"
    submit(
        server,
        name,
        "print('unused')",
        channels={"sm_drivers": drivers},
        AlgorithmSpecification={
            "TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5",
            "TrainingInputMode": "File",
            "ContainerEntrypoint": ["/bin/bash"],
            "ContainerArguments": ["-c", f"chmod +x {driver} && {driver}"],
        },
    )
    job = wait_completed(server, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert "driver ran as" in log_text(server, name)
    staged = server.data_dir / "jobs" / "training" / name / "algo-1" / "input" / "data"
    assert os.stat(staged / "sm_drivers" / "run.sh").st_nlink == 1  # the job's own copy
    if LINKS:  # the files the command does not name are staged as before: links
        assert os.stat(staged / "sm_drivers" / "big.bin").st_nlink >= 2


def test_sdk2_get_execution_role_finds_the_role_under_sageport_env(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SDK 2.x: STS identity → role name → IAM GetRole. The SDK sends that STS call to the
    regional AWS endpoint by an explicit ``endpoint_url``, which ``AWS_ENDPOINT_URL`` does not
    override; pointed at the server, the rest of get_execution_role() resolves the role."""
    sagemaker_session = pytest.importorskip("sagemaker.session")
    apply_sageport_env(server, monkeypatch)
    monkeypatch.setattr(sagemaker_session, "sts_regional_endpoint", lambda region: None)
    import sagemaker

    assert sagemaker.get_execution_role() == ROLE_ARN
    # the line docs/configuration.md gives for code that needs the ARN, without the patch
    role = boto3.client("iam").get_role(RoleName=ROLE)["Role"]["Arn"]
    assert role == ROLE_ARN
