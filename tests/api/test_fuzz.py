"""No bad input gets a 5xx: a shape-driven fuzz of every JSON operation, and the cases behind it.

One live server for the module. ``test_no_operation_fails_on_bad_input`` sends, for each
SageMaker and CloudWatch Logs operation in the dispatch table, a fixed number of requests
generated from its botocore input shape (``fuzz_helpers``: mostly valid structures with
hostile leaves, and broken documents), signed over one keep-alive connection, and asserts
each answer is below 500, keeps the connection, and is an AWS JSON error when it is one.
The examples are derandomized, so a CI failure reproduces; ``bench/fuzz.py`` runs the same
generator much longer. The tests after it pin what the fuzz found, one case each, with the
message the refusal must carry.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from fuzz_helpers import (
    SERVICES,
    SETTINGS,
    Generator,
    Outcome,
    Wire,
    implemented,
    json_error_problem,
    target_of,
)
from hypothesis import HealthCheck, Phase, given, settings
from server_helpers import module_server

from sageport.cli.process import ServerProcess

pytestmark = pytest.mark.slow

server = module_server("fuzz", SETTINGS)

#: generated requests per operation in CI (about 1 s per 40 on a 2-core box)
EXAMPLES = 60

OPERATIONS = [(service, op.name) for service in SERVICES for op in implemented(service)[1]]
ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.1.0-cpu-py310"


@pytest.fixture(scope="module")
def wire(server: ServerProcess) -> Iterator[Wire]:
    connection = Wire("127.0.0.1", server.port, server.keys, server.region)
    yield connection
    connection.close()


def call(wire: Wire, operation: str, body: Any, service: str = "sagemaker") -> Outcome:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return wire.send(SERVICES[service][0], f"{SERVICES[service][1]}.{operation}", raw)


def refused(outcome: Outcome, code: str, *words: str) -> str:
    """Assert ``outcome`` is a 400 ``code`` whose message has ``words``; return the message."""
    assert json_error_problem(outcome) is None, json_error_problem(outcome)
    doc = json.loads(outcome.body)
    message = doc.get("message") or doc.get("Message") or ""
    assert (outcome.status, doc["__type"]) == (400, code), doc
    for word in words:
        assert word in message, (word, message)
    return str(message)


# -- the fuzz -------------------------------------------------------------------------------


@pytest.mark.parametrize(("service", "name"), OPERATIONS, ids=[n for _, n in OPERATIONS])
def test_no_operation_fails_on_bad_input(wire: Wire, service: str, name: str) -> None:
    model, ops = implemented(service)
    op = next(o for o in ops if o.name == name)
    problems: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(body=Generator(model).body(op))
    def probe(body: bytes) -> None:
        problem = json_error_problem(wire.send(SERVICES[service][0], target_of(service, op), body))
        if problem:
            problems.append(f"{problem}\n  request: {body[:400]!r}")

    probe()
    # all of them at once: one failing request should not hide the others
    assert not problems, "\n".join(problems[:10])


def test_every_implemented_operation_is_fuzzed() -> None:
    names = {name for _, name in OPERATIONS}
    assert {"CreateTrainingJob", "CreateProcessingJob", "ListTrainingJobs"} <= names
    assert {"GetLogEvents", "FilterLogEvents", "DescribeLogStreams"} <= names
    assert len(OPERATIONS) >= 31


# -- what the fuzz found ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [1e300, -1e300, 10**30, 2**63, 253402300800, "10000-01-01T00:00:00Z", "NaN", "1e300",
     "0001-01-01T00:00:00+14:00", "yesterday", True],
)  # fmt: skip
@pytest.mark.parametrize("member", ["CreationTimeAfter", "LastModifiedTimeBefore"])
def test_list_filters_refuse_timestamps_out_of_range(wire: Wire, member: str, value: Any) -> None:
    for operation in ("ListTrainingJobs", "ListProcessingJobs", "ListEndpoints"):
        outcome = call(wire, operation, {member: value})
        message = refused(outcome, "ValidationException", member[0].lower() + member[1:])
        assert "between 0001-01-02" in message
        assert "9999-12-30" in message


def test_in_range_timestamps_still_filter(wire: Wire) -> None:
    for value in (0, 1.5e9, "2024-01-01T00:00:00Z", "1700000000", -1e10):
        outcome = call(wire, "ListTrainingJobs", {"CreationTimeBefore": value})
        assert outcome.status == 200, outcome.body


@pytest.mark.parametrize(
    "raw",
    [b'{"CreationTimeAfter": NaN}', b'{"CreationTimeAfter": Infinity}',
     b'{"MaxResults": -Infinity}'],
)  # fmt: skip
def test_nan_and_infinity_are_not_json(wire: Wire, raw: bytes) -> None:
    refused(call(wire, "ListTrainingJobs", raw), "SerializationException", "is not a JSON number")


def test_a_number_beyond_float_range_is_refused_by_member(wire: Wire) -> None:
    # 1e999 parses as inf in Python; the member says what was wrong with it
    raw = b'{"CreationTimeAfter": 1e999}'
    refused(call(wire, "ListTrainingJobs", raw), "ValidationException", "creationTimeAfter")


@pytest.mark.parametrize(
    "raw",
    [b"[" * 10000, b"{" * 10000, b'{"NameContains": ' + b"[" * 100000 + b"]" * 100000 + b"}",
     b'{"NameContains": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}"],
)  # fmt: skip
def test_deep_nesting_is_a_serialization_error(wire: Wire, raw: bytes) -> None:
    refused(call(wire, "ListTrainingJobs", raw), "SerializationException", "levels deep")


def test_nesting_inside_strings_is_not_nesting(wire: Wire) -> None:
    name = "[" * 70 + '\\"{' * 30
    raw = b'{"logGroupName": "g", "logStreamName": "' + name.encode() + b'"}'
    outcome = call(wire, "GetLogEvents", raw, "logs")
    assert json.loads(outcome.body)["__type"] == "ResourceNotFoundException", outcome.body


@pytest.mark.parametrize(
    ("operation", "body", "member"),
    [("ListTrainingJobs", {"MaxResults": 10**30}, "maxResults"),
     ("ListTrainingJobs", {"MaxResults": 2**63}, "maxResults"),
     ("DescribeLogStreams", {"logGroupName": "/aws/sagemaker/TrainingJobs", "limit": 2**64},
      "limit"),
     ("GetLogEvents", {"logGroupName": "g", "logStreamName": "s", "startTime": 2**63},
      "startTime"),
     ("GetLogEvents", {"logGroupName": "g", "logStreamName": "s", "endTime": 10**400},
      "endTime"),
     ("CreateEndpointConfig", {"EndpointConfigName": "fuzz-huge", "ProductionVariants": [
         {"VariantName": "v", "ModelName": "m", "InitialVariantWeight": 10**400}]},
      "initialVariantWeight")],
)  # fmt: skip
def test_huge_numbers_are_refused_by_member(
    wire: Wire, operation: str, body: dict[str, Any], member: str
) -> None:
    service = "logs" if operation[0].islower() or "Log" in operation else "sagemaker"
    refused(call(wire, operation, body, service), "ValidationException", member)


@pytest.mark.parametrize(
    "raw",
    [b'{"NameContains": "\\ud800"}', b'{"NameContains": "a\\udfffb"}',
     b'{"SortBy": "\\ud800"}'],
)  # fmt: skip
def test_lone_surrogates_are_refused(wire: Wire, raw: bytes) -> None:
    message = refused(call(wire, "ListTrainingJobs", raw), "ValidationException", "surrogates")
    assert "\\ud8" in message or "\\udf" in message  # the value is shown escaped


def test_raw_surrogate_bytes_are_refused(wire: Wire) -> None:
    # json reads a UTF-8-encoded surrogate as one (surrogatepass); the member check refuses it
    refused(call(wire, "ListTrainingJobs", b'{"NameContains": "\xed\xa0\x80"}'),
            "ValidationException", "nameContains", "surrogates")  # fmt: skip
    refused(call(wire, "ListTrainingJobs", b'{"NameContains": "\xff\xfe"}'),
            "SerializationException")  # fmt: skip


def test_nul_in_environment_is_refused_at_create(wire: Wire) -> None:
    body = {
        "ModelName": "fuzz-nul-env",
        "ExecutionRoleArn": ROLE,
        "PrimaryContainer": {"Image": IMAGE, "Environment": {"A": "x\x00y"}},
    }
    refused(call(wire, "CreateModel", body), "ValidationException",
            "primaryContainer.environment.A.value", "NUL")  # fmt: skip
    refused(call(wire, "DescribeModel", {"ModelName": "fuzz-nul-env"}), "ValidationException",
            "Could not find")  # fmt: skip
    job = {
        "TrainingJobName": "fuzz-nul-env",
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
                           "VolumeSizeInGB": 1},
        "OutputDataConfig": {"S3OutputPath": "s3://fuzz-bucket/out"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        "Environment": {"X\x00": "1"},
    }  # fmt: skip
    refused(call(wire, "CreateTrainingJob", job), "ValidationException", "environment", "NUL")
    refused(call(wire, "DescribeTrainingJob", {"TrainingJobName": "fuzz-nul-env"}),
            "ValidationException", "not found")  # fmt: skip


@pytest.mark.parametrize("uri", ["s3://bad\nbucket/x", "s3://a b/x", "s3://b\tk/x", "s3://é/x"])
def test_bucket_names_in_s3_uris_are_checked_at_create(wire: Wire, uri: str) -> None:
    body = {
        "ModelName": "fuzz-bad-bucket",
        "ExecutionRoleArn": ROLE,
        "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": uri},
    }
    refused(call(wire, "CreateModel", body), "ValidationException",
            "primaryContainer.modelDataUrl", "bucket name")  # fmt: skip
    refused(call(wire, "DescribeModel", {"ModelName": "fuzz-bad-bucket"}),
            "ValidationException")  # fmt: skip


def test_processing_cluster_config_without_instance_type(wire: Wire) -> None:
    body = {
        "ProcessingJobName": "fuzz-no-type",
        "RoleArn": ROLE,
        "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": ["python3", "-V"]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "VolumeSizeInGB": 1}},
    }
    refused(call(wire, "CreateProcessingJob", body), "ValidationException",
            "processingResources.clusterConfig.instanceType", "must not be null")  # fmt: skip
    body["ProcessingResources"] = {"ClusterConfig": {}}
    refused(call(wire, "CreateProcessingJob", body), "ValidationException", "instanceCount")


def _token(doc: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


@pytest.mark.parametrize(
    "token",
    [_token({"offset": 10**30}), _token({"offset": 2**63}), _token({"offset": -1}),
     _token({"offset": True}), base64.urlsafe_b64encode(b"[" * 5000).decode()],
)  # fmt: skip
def test_forged_list_tokens(wire: Wire, token: str) -> None:
    refused(call(wire, "ListTrainingJobs", {"NextToken": token}), "ValidationException",
            "pagination token")  # fmt: skip


@pytest.mark.parametrize(
    ("operation", "token"),
    [("DescribeLogGroups", _token({"offset": 10**30})),
     ("DescribeLogGroups", base64.urlsafe_b64encode(b"[" * 5000).decode()),
     ("FilterLogEvents", _token({"after": [2**63, 2**64]})),
     ("GetLogEvents", "f/²"), ("GetLogEvents", "b/" + "9" * 40)],
)  # fmt: skip
def test_forged_logs_tokens(wire: Wire, operation: str, token: str) -> None:
    body: dict[str, Any] = {"nextToken": token}
    if operation != "DescribeLogGroups":
        body["logGroupName"] = "/aws/sagemaker/TrainingJobs"
    if operation == "GetLogEvents":
        body["logStreamName"] = "none"
    outcome = call(wire, operation, body, "logs")
    assert json_error_problem(outcome) is None, json_error_problem(outcome)
    assert outcome.status == 400
    assert json.loads(outcome.body)["__type"] in (
        "InvalidParameterException",
        "ResourceNotFoundException",
    )


def test_long_values_are_quoted_shortened(wire: Wire) -> None:
    message = refused(call(wire, "ListTrainingJobs", {"NameContains": "x" * 100000}),
                      "ValidationException", "nameContains", "100000 characters")  # fmt: skip
    assert len(message) < 2000


def test_a_channel_in_a_missing_bucket_is_the_users_error(wire: Wire) -> None:
    job = {
        "TrainingJobName": "fuzz-no-bucket",
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
                           "VolumeSizeInGB": 1},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": "s3://fuzz-no-such-bucket/data"}}}],
        "OutputDataConfig": {"S3OutputPath": "s3://fuzz-no-such-bucket/out"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }  # fmt: skip
    assert call(wire, "CreateTrainingJob", job).status == 200
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = json.loads(
            call(wire, "DescribeTrainingJob", {"TrainingJobName": "fuzz-no-bucket"}).body
        )
        if answer["TrainingJobStatus"] == "Failed":
            break
        time.sleep(0.2)
    reason = answer.get("FailureReason", "")
    assert reason.startswith("ClientError: "), answer
    assert "NoSuchBucket" in reason
    assert "fuzz-no-such-bucket" in reason


# -- S3 ---------------------------------------------------------------------------------


def s3_problem(outcome: Outcome, method: str) -> str | None:
    if outcome.dropped:
        return "connection dropped"
    if outcome.status >= 500 and outcome.status != 501:
        return f"status {outcome.status}: {outcome.body[:300]!r}"
    if outcome.status >= 400 and method != "HEAD" and b"<Error>" not in outcome.body:
        return f"status {outcome.status} without an S3 error body: {outcome.body[:300]!r}"
    return None


@pytest.fixture(scope="module")
def bucket(server: ServerProcess) -> str:
    server.client("s3").create_bucket(Bucket="fuzz-s3")
    return "fuzz-s3"


def s3_send(
    wire: Wire, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> Outcome:
    headers = {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD", **(headers or {})}
    return wire.send("s3", "", body, path=path, method=method, headers=headers, content_type="")


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/bad%0Aname"), ("GET", "/bad%0Aname/k"), ("PUT", "/fuzz-s3%0A/k"),
     ("PUT", "/bad%00name"), ("GET", "/%ED%A0%80/k"), ("GET", "/" + "b" * 300)],
)  # fmt: skip
def test_s3_bucket_names_with_control_characters(
    wire: Wire, bucket: str, method: str, path: str
) -> None:
    outcome = s3_send(wire, method, path)
    assert s3_problem(outcome, method) is None, s3_problem(outcome, method)
    # botocore signs a NUL or a broken UTF-8 path in its own way: then the signature fails
    codes = (b"InvalidBucketName", b"SignatureDoesNotMatch")
    assert outcome.status in (400, 403), outcome.body
    assert any(c in outcome.body for c in codes), outcome.body


@pytest.mark.parametrize(
    "key",
    [
        "a%00b",
        "%00",
        "new%0Aline",
        "%ED%A0%80",
        "%FF%FE",
        "a/" * 600,
        "..%2F..%2Fx",
        "s" * 300,
        "d/" + "s" * 300 + "/k",
        "%0D%0A",
    ],
)
def test_s3_hostile_keys(wire: Wire, bucket: str, key: str) -> None:
    for method in ("PUT", "GET", "HEAD", "DELETE"):
        outcome = s3_send(wire, method, f"/{bucket}/{key}", b"x" if method == "PUT" else b"")
        assert s3_problem(outcome, method) is None, (method, key, s3_problem(outcome, method))


@pytest.mark.parametrize("length", [str(10**30), "-1", "1e3", "abc", str(2**64)])
def test_s3_hostile_content_length(server: ServerProcess, bucket: str, length: str) -> None:
    # a fresh connection: a server may close one whose framing it cannot trust
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("PUT", f"/{bucket}/huge", skip_accept_encoding=True)
        conn.putheader("Content-Length", length)
        conn.putheader("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD")
        conn.endheaders()
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert 400 <= response.status < 500, (response.status, body)
    assert server.client("s3").list_buckets()["Buckets"]  # and the server keeps serving


@pytest.mark.parametrize(
    "body",
    [b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
     b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
     b'<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]><Delete><Object><Key>&d;</Key></Object>'
     b"</Delete>",
     b'<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Delete><Object><Key>&x;</Key>'
     b"</Object></Delete>",
     b"<Delete>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</Delete>",
     b"<Delete><Object><Key>\xff\xfe</Key></Object></Delete>",
     b"<Delete><Object><Key>a&#0;b</Key></Object></Delete>",
     b"<Delete><Object></Object></Delete>", b"<Delete/>", b"\x00"],
)  # fmt: skip
def test_s3_hostile_xml(wire: Wire, bucket: str, body: bytes) -> None:
    import hashlib

    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    outcome = s3_send(wire, "POST", f"/{bucket}?delete", body, {"Content-MD5": md5})
    assert s3_problem(outcome, "POST") is None, s3_problem(outcome, "POST")
    assert b"root:" not in outcome.body  # no external entity was read
    outcome = s3_send(wire, "PUT", f"/{urllib.parse.quote('fuzz-xml')}", body)
    assert s3_problem(outcome, "PUT") is None, s3_problem(outcome, "PUT")


@pytest.mark.parametrize(
    ("operation", "shape"),
    [("ListTrainingJobs", "TrainingJobStatus"), ("ListProcessingJobs", "ProcessingJobStatus"),
     ("ListEndpoints", "EndpointStatus")],
)  # fmt: skip
def test_every_status_of_the_model_filters(wire: Wire, operation: str, shape: str) -> None:
    # the model has statuses sageport never gives (TrainingJobStatus 'Deleting' was a 500)
    model, _ = implemented("sagemaker")
    for status in model.shape_for(shape).enum:
        outcome = call(wire, operation, {"StatusEquals": status})
        assert outcome.status == 200, (status, outcome.body)
