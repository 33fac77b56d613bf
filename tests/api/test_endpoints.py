"""Endpoints that really serve: deploy with boto3, invoke through the signed runtime API.

Each endpoint is real model-server processes (one per instance) behind the runtime proxy;
these tests check what a client sees: the three body formats, the SageMaker errors for
every kind of bad request or bad handler (the endpoint stays InService and the next request
works), a model that cannot load failing the endpoint with its traceback, the runtime headers,
code/requirements.txt, an update under continuous load with no failed request, a crashed model
server being restarted (and still reported once it serves again), and the endpoint's logs.
"""

from __future__ import annotations

import csv
import io
import json
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError
from endpoint_helpers import (
    INFO_HANDLER,
    TENSORFLOW_IMAGE,
    delete,
    deploy,
    handler_model,
    invoke_json,
    no_retries,
    prepare,
    tarball,
    wait_status,
)
from server_helpers import module_server
from wheel_helpers import tiny_wheel

from sageport.cli.process import ServerProcess


def invoke(server: ServerProcess, name: str, body: bytes | str, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("ContentType", "application/json")
    resp: dict[str, Any] = server.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=name, Body=body, **kwargs
    )
    resp["Data"] = resp["Body"].read()
    return resp


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Message"]


#: a server of this module's own, with room for several multi-instance endpoints
server = module_server("endpoints")


@pytest.fixture(scope="module")
def mlp_endpoint(server: ServerProcess) -> Iterator[tuple[str, Any]]:
    """The 784-256-10 TorchScript MLP on two instances, with the module to compare against."""
    torch = pytest.importorskip("torch")
    from endpoint_helpers import torchscript_mlp

    archive, mlp = torchscript_mlp()
    name = deploy(server, archive, "mlp", count=2)
    yield name, lambda x: mlp(torch.as_tensor(x, dtype=torch.float32)).detach().numpy()
    delete(server, name)


@pytest.fixture(scope="module")
def info_endpoint(server: ServerProcess) -> Iterator[str]:
    """A framework-free endpoint that reports what reached its handler."""
    name = deploy(server, handler_model(1.0, INFO_HANDLER), "info")
    yield name
    delete(server, name)


@pytest.fixture(scope="module")
def handler_endpoint(server: ServerProcess) -> Iterator[str]:
    """A framework-free endpoint whose handler misbehaves on magic inputs (1 s timeout)."""
    name = deploy(server, handler_model(2.0), "bad", env={"SAGEMAKER_MODEL_SERVER_TIMEOUT": "1"})
    yield name
    delete(server, name)


# -- formats -----------------------------------------------------------------------------------


def test_two_instances_answer_json_csv_and_npy(
    server: ServerProcess, mlp_endpoint: tuple[str, Any]
) -> None:
    name, forward = mlp_endpoint
    x = np.random.default_rng(0).random((2, 784), dtype=np.float32)
    expected = forward(x)
    desc = server.client("sagemaker").describe_endpoint(EndpointName=name)
    assert desc["ProductionVariants"][0]["CurrentInstanceCount"] == 2

    resp = invoke(server, name, json.dumps(x.tolist()), Accept="application/json")
    assert resp["ContentType"] == "application/json"
    assert resp["InvokedProductionVariant"] == "AllTraffic"
    np.testing.assert_allclose(np.array(json.loads(resp["Data"])), expected, rtol=1e-4, atol=1e-5)

    text = "\n".join(",".join(repr(float(v)) for v in row) for row in x)
    resp = invoke(server, name, text, ContentType="text/csv", Accept="text/csv")
    assert resp["ContentType"] == "text/csv"
    rows = [[float(v) for v in r] for r in csv.reader(io.StringIO(resp["Data"].decode()))]
    np.testing.assert_allclose(np.array(rows), expected, rtol=1e-4, atol=1e-5)

    buf = io.BytesIO()
    np.save(buf, x)
    resp = invoke(
        server, name, buf.getvalue(), ContentType="application/x-npy", Accept="application/x-npy"
    )
    assert resp["ContentType"] == "application/x-npy"
    np.testing.assert_allclose(np.load(io.BytesIO(resp["Data"])), expected, rtol=1e-4, atol=1e-5)


def test_unknown_endpoint_and_unknown_variant_are_validation_errors(
    server: ServerProcess, mlp_endpoint: tuple[str, Any]
) -> None:
    with pytest.raises(ClientError) as exc:
        invoke(server, "no-such-endpoint", "[]")
    code, status, message = error_of(exc)
    assert (code, status) == ("ValidationError", 400)
    assert "no-such-endpoint" in message
    with pytest.raises(ClientError) as exc:
        invoke(server, mlp_endpoint[0], "[[0]]", TargetVariant="Nope")
    assert error_of(exc)[0] == "ValidationError"


# -- bad input, bad handlers ---------------------------------------------------------------------


def assert_still_serving(server: ServerProcess, name: str) -> None:
    desc = server.client("sagemaker").describe_endpoint(EndpointName=name)
    assert desc["EndpointStatus"] == "InService"
    assert json.loads(invoke(server, name, "[1, 2]")["Data"]) == {"scaled": [2.0, 4.0]}


@pytest.mark.parametrize(
    ("body", "kwargs", "status", "fragment"),
    [
        ("{not json", {}, 500, "JSONDecodeError"),
        ("1,2", {"ContentType": "text/csv"}, 500, "only JSON here"),
        ('"raise"', {}, 500, "the model is unhappy"),
        ('"unencodable"', {}, 500, "object"),
        ('"hang"', {}, 504, ""),
    ],
    ids=["undecodable", "unsupported-content-type", "raises", "unencodable", "hangs"],
)
def test_a_bad_request_is_a_model_error_and_the_endpoint_keeps_serving(
    server: ServerProcess,
    handler_endpoint: str,
    body: str,
    kwargs: dict[str, str],
    status: int,
    fragment: str,
) -> None:
    started = time.monotonic()
    with pytest.raises(ClientError) as exc:
        invoke(server, handler_endpoint, body, **kwargs)
    code, http_status, message = error_of(exc)
    assert (code, http_status) == ("ModelError", 424)
    assert exc.value.response["OriginalStatusCode"] == status
    assert f"({status}) from primary" in message
    assert fragment in message
    assert time.monotonic() - started < 10  # the hanging handler is cut off at its timeout
    assert_still_serving(server, handler_endpoint)


def test_default_codecs_refuse_bad_bodies_and_accept_types(
    server: ServerProcess, mlp_endpoint: tuple[str, Any]
) -> None:
    name = mlp_endpoint[0]
    cases: list[tuple[str | bytes, dict[str, str], int]] = [
        ("[[1, 2", {}, 400),
        (b"\x93NUMPY garbage", {"ContentType": "application/x-npy"}, 400),
        ("[[0.5]]", {"ContentType": "application/x-unknown"}, 415),
        (json.dumps([[0.0] * 784]), {"Accept": "image/png"}, 406),
    ]
    for body, kwargs, status in cases:
        with pytest.raises(ClientError) as exc:
            invoke(server, name, body, **kwargs)
        assert error_of(exc)[:2] == ("ModelError", 424), kwargs
        assert exc.value.response["OriginalStatusCode"] == status, kwargs
    assert len(json.loads(invoke(server, name, json.dumps([[0.0] * 784]))["Data"])[0]) == 10


def test_an_over_size_body_is_refused_before_the_model(
    server: ServerProcess, handler_endpoint: str
) -> None:
    with pytest.raises(ClientError) as exc:
        invoke(server, handler_endpoint, b"[" + b"1," * (3 * 1024 * 1024 + 10) + b"1]")
    code, status, message = error_of(exc)
    assert (code, status) == ("ValidationError", 400)
    assert "6 MiB" in message
    assert_still_serving(server, handler_endpoint)


# -- lifecycle ----------------------------------------------------------------------------------


def test_invoking_while_creating_is_model_not_ready(server: ServerProcess) -> None:
    name = prepare(server, handler_model(1.0, INFO_HANDLER), "early", {"LOAD_SLEEP": "3"})
    server.client("sagemaker").create_endpoint(EndpointName=name, EndpointConfigName=name)
    runtime = no_retries(server, "sagemaker-runtime")
    try:
        with pytest.raises(ClientError) as exc:
            invoke_json(runtime, name, [1])
        code, status, message = error_of(exc)
        assert (code, status) == ("ModelNotReadyException", 429)
        assert "Creating" in message
        wait_status(server, name)
        assert invoke_json(runtime, name, [1])[1]["scale"] == 1.0
    finally:
        wait_status(server, name)
        delete(server, name)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_model_fn_that_raises_fails_the_endpoint_with_its_traceback(
    server: ServerProcess, workers: int
) -> None:
    env = {"LOAD_FAIL": "weights file is corrupt", "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers)}
    name = prepare(server, handler_model(1.0, INFO_HANDLER), "nomodel", env)
    sm = server.client("sagemaker")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    desc = wait_status(server, name, "Failed", timeout=30)
    reason = desc["FailureReason"]
    assert "ValueError: weights file is corrupt" in reason
    assert "model_fn" in reason  # the traceback's tail names the user's function
    assert "AllTraffic" in reason
    assert len(reason) <= 1024
    with pytest.raises(ClientError) as exc:
        invoke_json(no_retries(server, "sagemaker-runtime"), name, [1])
    assert error_of(exc)[0] == "ModelNotReadyException"
    delete(server, name)


def test_runtime_headers_reach_the_handler_and_custom_attributes_come_back(
    server: ServerProcess, info_endpoint: str
) -> None:
    runtime = no_retries(server, "sagemaker-runtime")
    resp, data = invoke_json(
        runtime,
        info_endpoint,
        {},
        CustomAttributes="trace=abc;k=v",
        InferenceId="req-42",
        TargetVariant="AllTraffic",
    )
    assert data["custom"] == "trace=abc;k=v"
    assert data["inference_id"] == "req-42"
    assert data["header_inference_id"] == "req-42"
    assert data["target_variant"] == "AllTraffic"
    assert resp["CustomAttributes"] == "echo=trace=abc;k=v"
    assert resp["InvokedProductionVariant"] == "AllTraffic"
    resp, data = invoke_json(runtime, info_endpoint, {})
    assert data["custom"] is None
    assert "CustomAttributes" not in resp  # only when the model sets them, as in SageMaker


def test_requirements_txt_is_installed_once_into_the_data_folder(server: ServerProcess) -> None:
    wheel_name, wheel = tiny_wheel("sageport_overlay_probe", value="from the overlay")
    code = """
        import os
        import sageport_overlay_probe

        def model_fn(model_dir):
            return sageport_overlay_probe.__file__

        def predict_fn(data, model):
            return {"value": sageport_overlay_probe.VALUE, "file": model, "pid": os.getpid()}
    """
    archive = tarball(
        {
            "code/inference.py": textwrap.dedent(code).encode(),
            "code/requirements.txt": f"./wheels/{wheel_name}\n".encode(),
            f"code/wheels/{wheel_name}": wheel,
        }
    )
    name = deploy(server, archive, "overlay", count=2)
    try:
        runtime = no_retries(server, "sagemaker-runtime")
        answers = [invoke_json(runtime, name, [0])[1] for _ in range(8)]
        assert {a["value"] for a in answers} == {"from the overlay"}
        overlays = server.data_dir / "overlays"
        (overlay,) = [p for p in overlays.iterdir() if p.is_dir() and (p / ".complete").exists()]
        assert {a["file"] for a in answers} == {
            str(overlay / "sageport_overlay_probe" / "__init__.py")
        }
    finally:
        delete(server, name)


def test_update_under_continuous_load_fails_no_request(server: ServerProcess) -> None:
    name = deploy(server, handler_model(2.0), "upd")
    sm = server.client("sagemaker")
    new = prepare(server, handler_model(3.0), "upd-v2", count=2)
    answers: list[float] = []
    failures: list[str] = []
    stop = threading.Event()

    def load() -> None:
        runtime = server.client("sagemaker-runtime")
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                resp = runtime.invoke_endpoint(
                    EndpointName=name, Body="[1]", ContentType="application/json"
                )
                answers.append(json.loads(resp["Body"].read())["scaled"][0])
            except Exception as exc:
                failures.append(repr(exc))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        sm.update_endpoint(EndpointName=name, EndpointConfigName=new)
        assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Updating"
        desc = wait_status(server, name)
        count_after = len(answers)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert desc["EndpointConfigName"] == new
    assert desc["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    assert answers[0] == 2.0
    assert set(answers[count_after:]) == {3.0}  # after InService only the new model answers
    assert len(answers) > count_after
    delete(server, name)
    sm.delete_endpoint_config(EndpointConfigName=new)
    sm.delete_model(ModelName=new)


def test_a_crashed_model_server_is_restarted_and_reported(
    server: ServerProcess, handler_endpoint: str
) -> None:
    name = handler_endpoint
    sm = server.client("sagemaker")
    runtime = no_retries(server, "sagemaker-runtime")
    before = json.loads(invoke(server, name, '"pid"')["Data"])["pid"]
    started = time.monotonic()
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(EndpointName=name, Body='"exit"', ContentType="application/json")
    code, status, _ = error_of(exc)
    assert (code, status) == ("ServiceUnavailable", 503)
    assert time.monotonic() - started < 10  # the request was not left waiting
    after = None
    deadline = time.monotonic() + 30
    while after is None and time.monotonic() < deadline:
        try:
            after = json.loads(invoke(server, name, '"pid"')["Data"])["pid"]
        except ClientError as err:
            error = err.response["Error"]["Code"]
            time.sleep(0.1)
            if error not in ("ModelNotReadyException", "ServiceUnavailable"):
                raise
    assert after is not None
    assert after != before
    # Back in service, the variant still says what happened, and when.
    desc = sm.describe_endpoint(EndpointName=name)
    assert desc["EndpointStatus"] == "InService"
    variant = desc["ProductionVariants"][0]
    assert variant["CurrentInstanceCount"] == 1
    (note,) = variant["VariantStatus"]
    assert "was restarted" in note["StatusMessage"]
    assert "exit code 3" in note["StatusMessage"]
    assert "serving again" in note["StatusMessage"]
    assert abs(note["StartTime"].timestamp() - time.time()) < 60
    logs = server.client("logs")
    streams = logs.describe_log_streams(logGroupName=f"/aws/sagemaker/Endpoints/{name}")
    names = [s["logStreamName"] for s in streams["logStreams"]]
    assert any(n.startswith("AllTraffic/") for n in names)
    messages = [
        e["message"]
        for n in names
        for e in logs.get_log_events(
            logGroupName=f"/aws/sagemaker/Endpoints/{name}", logStreamName=n, startFromHead=True
        )["events"]
    ]
    assert any("restarted" in m for m in messages)


# -- TensorFlow -----------------------------------------------------------------------------------


@pytest.mark.tensorflow
def test_a_tensorflow_saved_model_answers_the_tf_serving_json_form(
    server: ServerProcess, tmp_path: Any
) -> None:
    tf = pytest.importorskip("tensorflow")

    class Double(tf.Module):  # type: ignore[misc]
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        def __call__(self, x: Any) -> Any:
            return {"y": x * 2.0}

    module = Double()
    tf.saved_model.save(
        module, str(tmp_path / "1"), signatures={"serving_default": module.__call__}
    )
    files = {
        str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()
    }
    name = deploy(server, tarball(files), "tf", image=TENSORFLOW_IMAGE)
    try:
        resp = invoke(server, name, json.dumps({"instances": [[1.0, 2.0, 3.0]]}))
        assert json.loads(resp["Data"]) == {"predictions": [[2.0, 4.0, 6.0]]}
    finally:
        delete(server, name)
