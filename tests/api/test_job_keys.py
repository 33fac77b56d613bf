"""Each job runs with an access key of its own, valid while it runs, revoked when it ends.

The jobs here use boto3 from inside, as SageMaker jobs do with their execution role: the key
in their environment puts objects, asks STS who it is, reads the SageMaker API, and is
refused what changes other resources. After the job ends, the same key — taken out of the
job's own model folder — is refused by every protocol as an unknown key would be; the
server's own keys (``credentials.json``) never appear in a job. An endpoint's model servers
get the endpoint's key, revoked at DeleteEndpoint.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
import urllib.error
import urllib.request
from typing import Any

import boto3
import endpoint_helpers as eh
import processing_helpers as ph
import pytest
from botocore.config import Config
from server_helpers import aws_error, module_server
from training_helpers import (
    BUCKET,
    download,
    ensure_bucket,
    log_text,
    submit,
    unique,
    wait_completed,
    wait_for,
)

from sageport.cli.process import ServerProcess
from sageport.services.credentials import load_or_create

server = module_server("job-keys")

#: the job's view of its key: what it did with it, written to its model folder
PROBE = """
    import json, os
    import boto3
    from botocore.exceptions import ClientError

    name = os.environ["TRAINING_JOB_NAME"]
    out = {
        "key": os.environ["AWS_ACCESS_KEY_ID"],
        "secret": os.environ["AWS_SECRET_ACCESS_KEY"],
        "env_values": sorted(set(os.environ.values())),
    }
    boto3.client("s3").put_object(Bucket="training-tests", Key=name + "/from-job", Body=b"hi")
    out["arn"] = boto3.client("sts").get_caller_identity()["Arn"]
    sm = boto3.client("sagemaker")
    out["own_status"] = sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
    denied = {}
    for op, kwargs in [
        ("stop_training_job", {"TrainingJobName": name}),
        ("delete_model", {"ModelName": os.environ["VICTIM_MODEL"]}),
        ("delete_endpoint", {"EndpointName": "some-endpoint"}),
    ]:
        try:
            getattr(sm, op)(**kwargs)
            denied[op] = "allowed"
        except ClientError as exc:
            denied[op] = exc.response["Error"]["Code"] + ": " + exc.response["Error"]["Message"]
    out["denied"] = denied
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "key.json"), "w") as f:
        json.dump(out, f)
"""


def _client(server: ServerProcess, service: str, key: str, secret: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name=server.region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}),
    )


def _model_json(server: ServerProcess, job: dict[str, Any], member: str) -> dict[str, Any]:
    archive = download(server, job["ModelArtifacts"]["S3ModelArtifacts"])
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        data = tar.extractfile(member)
        assert data is not None
        loaded: dict[str, Any] = json.loads(data.read())
        return loaded


def _assert_refused(server: ServerProcess, key: str, secret: str) -> None:
    """Every protocol answers a revoked key as it answers a key it never knew."""
    with aws_error("InvalidAccessKeyId"):
        _client(server, "s3", key, secret).list_buckets()
    with aws_error("UnrecognizedClientException"):
        _client(server, "sagemaker", key, secret).list_training_jobs()
    with aws_error("UnrecognizedClientException"):
        _client(server, "logs", key, secret).describe_log_groups()
    with aws_error("InvalidClientTokenId"):
        _client(server, "sts", key, secret).get_caller_identity()
    # a URL presigned with the key is dead too
    url = _client(server, "s3", key, secret).generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "any"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    with refused.value as answer:
        assert answer.code == 403
        assert b"<Code>InvalidAccessKeyId</Code>" in answer.read()


def _server_keys(server: ServerProcess) -> list[tuple[str, str]]:
    pairs = load_or_create(server.data_dir / "credentials.json")
    return [(k.access_key_id, k.secret_access_key) for k in pairs]


def test_a_job_key_works_while_the_job_runs_and_is_refused_after(server: ServerProcess) -> None:
    ensure_bucket(server)
    victim = unique("victim")
    eh.create_model(server, victim, eh.handler_model(1.0))
    name = unique("keys")
    submit(server, name, PROBE, Environment={"VICTIM_MODEL": victim})
    job = wait_completed(server, name)
    seen = _model_json(server, job, "key.json")

    key, secret = seen["key"], seen["secret"]
    assert key.startswith("SPJ")
    assert len(key) == 20
    # the server's own keys are nowhere in the job's environment
    for own_key, own_secret in _server_keys(server):
        assert own_key != key
        assert own_key not in seen["env_values"]
        assert own_secret not in seen["env_values"]
    # what the key could do while the job ran
    assert download(server, f"s3://{BUCKET}/{name}/from-job") == b"hi"
    assert seen["arn"] == f"arn:aws:sts::000000000000:assumed-role/SageMaker-TrainingJob/{name}"
    assert seen["own_status"] == "InProgress"
    for op, answer in seen["denied"].items():
        assert answer.startswith("AccessDeniedException: User: "), (op, answer)
        assert f"training-job/{name}" in answer
    assert "sagemaker:StopTrainingJob" in seen["denied"]["stop_training_job"]
    # ...and nothing it was refused happened
    assert job["TrainingJobStatus"] == "Completed"
    sm = server.client("sagemaker")
    assert sm.describe_model(ModelName=victim)["ModelName"] == victim
    sm.delete_model(ModelName=victim)
    # the key is gone with the job; the secret stays out of what Describe answers
    assert secret not in json.dumps(job, default=str)
    assert key not in json.dumps(job, default=str)
    _assert_refused(server, key, secret)


PROCESSING_PROBE = """
    import json, os
    import boto3
    out = {"key": os.environ["AWS_ACCESS_KEY_ID"], "secret": os.environ["AWS_SECRET_ACCESS_KEY"]}
    out["arn"] = boto3.client("sts").get_caller_identity()["Arn"]
    with open("/opt/ml/processing/output/key.json", "w") as f:
        json.dump(out, f)
"""


def test_a_processing_job_gets_a_key_of_its_own(server: ServerProcess) -> None:
    ensure_bucket(server)
    name = unique("proc-keys")
    output = ph.s3_output("out", f"s3://{BUCKET}/{name}/out", "/opt/ml/processing/output")
    ph.submit(server, name, PROCESSING_PROBE, outputs=[output])
    job = ph.wait(server, name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    dest = job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"].rstrip("/")
    seen = json.loads(download(server, f"{dest}/key.json"))
    assert seen["key"].startswith("SPJ")
    assert seen["key"] not in {k for k, _ in _server_keys(server)}
    assert seen["arn"].endswith(f":assumed-role/SageMaker-ProcessingJob/{name}")
    _assert_refused(server, seen["key"], seen["secret"])


ENDPOINT_HANDLER = """
    import os
    import boto3

    def model_fn(model_dir):
        return None

    def input_fn(body, content_type):
        return body

    def predict_fn(data, model):
        arn = boto3.client("sts").get_caller_identity()["Arn"]
        return {"key": os.environ["AWS_ACCESS_KEY_ID"],
                "secret": os.environ["AWS_SECRET_ACCESS_KEY"], "arn": arn}
"""


@pytest.mark.slow
def test_an_endpoint_key_lives_until_the_endpoint_is_deleted(server: ServerProcess) -> None:
    name = eh.deploy(server, eh.handler_model(1.0, ENDPOINT_HANDLER), prefix="ep-keys")
    _, seen = eh.invoke_json(eh.no_retries(server, "sagemaker-runtime"), name, [1])
    key, secret = seen["key"], seen["secret"]
    assert key.startswith("SPJ")
    assert key not in {k for k, _ in _server_keys(server)}
    assert seen["arn"].endswith(f":assumed-role/SageMaker-Endpoint/{name}")
    # the endpoint's key may invoke endpoints, not delete one
    runtime = _client(server, "sagemaker-runtime", key, secret)
    assert eh.invoke_json(runtime, name, [1])[1]["key"] == key
    with aws_error("AccessDeniedException"):
        _client(server, "sagemaker", key, secret).delete_endpoint(EndpointName=name)
    eh.delete(server, name)
    _assert_refused(server, key, secret)


#: waits (putting a heartbeat) until the test leaves a "go" object, then uses its key again
WAITER = """
    import json, os, time
    import boto3
    name = os.environ["TRAINING_JOB_NAME"]
    s3 = boto3.client("s3")
    s3.put_object(Bucket="training-tests", Key=name + "/ready", Body=b"1")
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            s3.head_object(Bucket="training-tests", Key=name + "/go")
            break
        except Exception:
            time.sleep(0.2)
    s3.put_object(Bucket="training-tests", Key=name + "/after", Body=b"still mine")
    out = {"key": os.environ["AWS_ACCESS_KEY_ID"], "secret": os.environ["AWS_SECRET_ACCESS_KEY"]}
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "key.json"), "w") as f:
        json.dump(out, f)
"""


@pytest.mark.slow
def test_a_job_key_survives_a_server_restart_and_is_revoked_after(
    server: ServerProcess,
) -> None:
    ensure_bucket(server)
    name = unique("restart-keys")
    submit(server, name, WAITER)
    wait_for(server, name, "Training")
    s3 = server.client("s3")
    deadline = time.monotonic() + 60
    while not s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{name}/ready").get("KeyCount"):
        assert time.monotonic() < deadline, log_text(server, name)
        time.sleep(0.1)
    server.restart()  # the job runs on; a new server process knows its key from the database
    server.client("s3").put_object(Bucket=BUCKET, Key=f"{name}/go", Body=b"")
    job = wait_completed(server, name)
    assert download(server, f"s3://{BUCKET}/{name}/after") == b"still mine"
    seen = _model_json(server, job, "key.json")
    _assert_refused(server, seen["key"], seen["secret"])
