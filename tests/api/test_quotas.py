"""Service quotas against a live server: refused at create, at once, with nothing stored.

One server whose ``sageport.toml`` lowers some quotas (so the file is shown to be honoured)
and keeps the defaults of the others (``max_instances_per_endpoint = 8``). Every refusal
is a ``ResourceLimitExceeded`` that names the setting to raise. The clients time out after
a few seconds: a create that builds something per instance (as one with a huge
``InstanceCount`` did, growing the server's memory without end) fails the test by timing
out instead of hanging it.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from endpoint_helpers import create_model, delete, deploy, handler_model
from processing_helpers import processing_request
from server_helpers import FAKE_GPUS, aws_error, module_server
from training_helpers import TERMINAL, job_request, unique

from sageport.cli.process import ServerProcess

SETTINGS = (
    FAKE_GPUS
    + "max_instances_per_training_job = 4\n"
    + "max_instances_per_processing_job = 3\n"
    + "max_training_jobs_in_progress = 2\n"
)
server = module_server("quotas", SETTINGS)

SLEEPER = "import time\ntime.sleep(300)\n"


def _client(server: ServerProcess) -> Any:
    """No retries, and a read timeout that turns a create that never answers into a failure."""
    config = Config(retries={"total_max_attempts": 1}, read_timeout=5, connect_timeout=5)
    return server.client("sagemaker", config=config)


def _message(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Message"])


def _not_stored(sm: Any, name: str) -> None:
    with aws_error("ValidationException"):
        sm.describe_training_job(TrainingJobName=name)


def test_a_huge_instance_count_is_refused_at_once(server: ServerProcess) -> None:
    sm = _client(server)
    name = unique("huge")
    request = job_request(server, name, SLEEPER)
    # Past the model's 32-bit integers, the validator refuses it (as AWS does) ...
    request["ResourceConfig"]["InstanceCount"] = 10**30
    with aws_error("ValidationException") as exc:
        sm.create_training_job(**request)
    assert "resourceConfig.instanceCount" in _message(exc)
    # ... and the largest count it lets through is the quota's to refuse, just as fast.
    request["ResourceConfig"]["InstanceCount"] = 2**31 - 1
    with aws_error("ResourceLimitExceeded") as exc:
        sm.create_training_job(**request)
    message = _message(exc)
    assert "'instances per training job' is 4 Instances" in message
    assert f"request delta of {2**31 - 1} Instances" in message
    assert "max_instances_per_training_job" in message
    assert "sageport.toml" in message
    _not_stored(sm, name)
    # the server is still itself: the next call answers
    assert sm.list_training_jobs()["TrainingJobSummaries"] is not None


def test_instances_over_the_quota_in_the_settings_file_are_refused(
    server: ServerProcess,
) -> None:
    sm = _client(server)
    name = unique("five")
    request = job_request(server, name, SLEEPER)
    request["ResourceConfig"] = {
        "InstanceGroups": [
            {"InstanceGroupName": "a", "InstanceType": "ml.m5.large", "InstanceCount": 3},
            {"InstanceGroupName": "b", "InstanceType": "ml.m5.large", "InstanceCount": 2},
        ],
        "VolumeSizeInGB": 1,
    }
    with aws_error("ResourceLimitExceeded") as exc:
        sm.create_training_job(**request)
    assert "request delta of 5 Instances" in _message(exc)
    _not_stored(sm, name)

    name = unique("proc")
    with aws_error("ResourceLimitExceeded") as exc:
        sm.create_processing_job(**processing_request(server, name, SLEEPER, instance_count=4))
    assert "max_instances_per_processing_job" in _message(exc)
    with aws_error("ValidationException"):
        sm.describe_processing_job(ProcessingJobName=name)


def test_a_300_instance_endpoint_starts_no_model_server(server: ServerProcess) -> None:
    sm = _client(server)
    name = unique("ep300")
    create_model(server, name, handler_model(1.0))
    # As in SageMaker, the config is only a description; the endpoint is what is refused.
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 300,
            }
        ],
    )
    with aws_error("ResourceLimitExceeded") as exc:
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    message = _message(exc)
    assert "'instances per endpoint' is 8 Instances" in message
    assert "request delta of 300 Instances" in message
    assert "max_instances_per_endpoint" in message
    with aws_error("ValidationException"):
        sm.describe_endpoint(EndpointName=name)
    time.sleep(0.5)  # a scheduler woken by a stored endpoint would have made its folders
    assert not [p for p in server.data_dir.rglob(f"*{name}*") if "objects" not in p.parts]


def test_jobs_in_progress_over_the_quota_are_refused(server: ServerProcess) -> None:
    sm = _client(server)
    running = [unique("busy") for _ in range(2)]
    for name in running:
        sm.create_training_job(**job_request(server, name, SLEEPER))
    extra = unique("third")
    try:
        with aws_error("ResourceLimitExceeded") as exc:
            sm.create_training_job(**job_request(server, extra, SLEEPER))
        message = _message(exc)
        assert "'number of concurrent training jobs' is 2 Jobs" in message
        assert "current utilization of 2 Jobs" in message
        _not_stored(sm, extra)
    finally:
        for name in running:
            sm.stop_training_job(TrainingJobName=name)
    deadline = time.monotonic() + 60
    while any(
        sm.describe_training_job(TrainingJobName=n)["TrainingJobStatus"] not in TERMINAL
        for n in running
    ):
        assert time.monotonic() < deadline, "the stopped jobs did not stop"
        time.sleep(0.1)
    # ended jobs no longer count
    sm.create_training_job(**job_request(server, extra, SLEEPER))
    sm.stop_training_job(TrainingJobName=extra)


@pytest.mark.slow
def test_desired_instance_count_over_the_quota_is_refused_and_the_endpoint_serves_on(
    server: ServerProcess,
) -> None:
    sm = _client(server)
    name = deploy(server, handler_model(1.0), "scale")
    try:
        for count in (9, 2**31 - 1):
            with aws_error("ResourceLimitExceeded") as exc:
                sm.update_endpoint_weights_and_capacities(
                    EndpointName=name,
                    DesiredWeightsAndCapacities=[
                        {"VariantName": "AllTraffic", "DesiredInstanceCount": count}
                    ],
                )
            assert f"request delta of {count} Instances" in _message(exc)
        desc = sm.describe_endpoint(EndpointName=name)
        assert desc["EndpointStatus"] == "InService"
        assert desc["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    finally:
        delete(server, name)
