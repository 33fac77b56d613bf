"""A real model-server process: the default PyTorch handler, user modules, every failure mode."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from serving_helpers import ModelServer

torch = pytest.importorskip("torch")

JSON = {"content-type": "application/json"}


def reference(model_dir: Path, batch: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = torch.jit.load(str(model_dir / "model.pt"))
    with torch.inference_mode():
        result: np.ndarray = model(torch.from_numpy(batch)).numpy()
    return result


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def mlp_server(mlp_dir: Path) -> Iterator[ModelServer]:
    server = ModelServer(mlp_dir)
    server.wait_ready()
    yield server
    assert server.stop() == 0


def test_ping(mlp_server: ModelServer) -> None:
    response = mlp_server.client.get("/ping")
    assert response.status_code == 200


def test_json_invocation_matches_the_model(mlp_server: ModelServer, mlp_dir: Path) -> None:
    x = np.random.default_rng(0).random((2, 784), dtype=np.float32)
    response = mlp_server.client.post("/invocations", content=json.dumps(x.tolist()), headers=JSON)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    np.testing.assert_allclose(response.json(), reference(mlp_dir, x), rtol=1e-4, atol=1e-5)


def test_npy_invocation(mlp_server: ModelServer, mlp_dir: Path) -> None:
    x = np.random.default_rng(1).random((3, 784), dtype=np.float32)
    response = mlp_server.client.post(
        "/invocations",
        content=npy(x),
        headers={"content-type": "application/x-npy", "accept": "application/x-npy"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-npy"
    result = np.load(io.BytesIO(response.content))
    np.testing.assert_allclose(result, reference(mlp_dir, x), rtol=1e-4, atol=1e-5)


def test_csv_invocation(mlp_server: ModelServer, mlp_dir: Path) -> None:
    x = np.random.default_rng(2).random((1, 784), dtype=np.float32)
    body = ",".join(f"{v:.8f}" for v in x[0])
    response = mlp_server.client.post(
        "/invocations", content=body, headers={"content-type": "text/csv", "accept": "text/csv"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv"
    values = [float(v) for v in response.text.split()]
    np.testing.assert_allclose(values, reference(mlp_dir, x)[0], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{broken", JSON, 400),
        (b"\x00\x01garbage", {"content-type": "application/x-npy"}, 400),
        (b"[1]", {"content-type": "image/png"}, 415),
        (json.dumps([0.0] * 784).encode(), {**JSON, "accept": "image/png"}, 406),
        (json.dumps({"a": 1}).encode(), JSON, 400),
    ],
)
def test_bad_requests_get_4xx_and_the_server_keeps_serving(
    mlp_server: ModelServer, body: bytes, headers: dict[str, str], status: int
) -> None:
    response = mlp_server.client.post("/invocations", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.text
    ok = mlp_server.client.post("/invocations", content=json.dumps([0.0] * 784), headers=JSON)
    assert ok.status_code == 200


def test_model_error_is_500_with_message(mlp_server: ModelServer) -> None:
    response = mlp_server.client.post("/invocations", content="[1, 2, 3]", headers=JSON)
    assert response.status_code == 500
    assert "cannot be multiplied" in response.text


def test_routes_and_metrics(mlp_server: ModelServer) -> None:
    assert mlp_server.client.get("/nope").status_code == 404
    assert mlp_server.client.get("/invocations").status_code == 405
    metrics = mlp_server.client.get("/metrics").json()
    assert metrics["ready"] is True
    assert metrics["invocations"] >= 1
    assert set(metrics["latency_ms"]) >= {"p50", "p99", "count"}


def test_keep_alive_and_pipelining(mlp_server: ModelServer) -> None:
    import socket

    body = b"[" + b",".join([b"0"] * 784) + b"]"
    one = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    with socket.create_connection(("127.0.0.1", mlp_server.port)) as sock:
        sock.sendall(one * 3)
        sock.settimeout(10)
        received = b""
        while received.count(b"HTTP/1.1 200 OK") < 3:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk


def test_chunked_request_body(mlp_server: ModelServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"[" + b",".join([b"0"] * 400)
        yield b"," + b",".join([b"0"] * 384) + b"]"

    response = mlp_server.client.post("/invocations", content=chunks(), headers=JSON)
    assert response.status_code == 200
    assert len(response.json()) == 10


USER_MODULE = """
import json
import time

import numpy as np


def model_fn(model_dir):
    return {"scale": 3}


def input_fn(input_data, content_type):
    if input_data == "raise":
        raise ValueError("user input_fn refused this")
    if input_data == "hang":
        time.sleep(30)
    if input_data == "object":
        return "object"
    return np.array(json.loads(input_data))


def predict_fn(data, model, context):
    if isinstance(data, str):
        return object()
    return {"y": (data * model["scale"]).tolist(), "attrs": context.custom_attributes}


def output_fn(prediction, accept):
    if not isinstance(prediction, dict):
        return prediction
    return json.dumps(prediction), "application/json"
"""


@pytest.fixture(scope="module")
def user_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    model_dir = tmp_path_factory.mktemp("user-model")
    (model_dir / "code").mkdir()
    (model_dir / "code" / "inference.py").write_text(USER_MODULE)
    server = ModelServer(
        model_dir,
        {
            "SAGEMAKER_PROGRAM": "inference.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
            "SAGEPORT_REQUEST_TIMEOUT": "1",
            "SAGEMAKER_MAX_PAYLOAD_IN_MB": "0.01",
        },
    )
    server.wait_ready()
    yield server
    server.stop()


def test_user_module_functions(user_server: ModelServer) -> None:
    response = user_server.client.post(
        "/invocations",
        content="[1, 2]",
        headers={**JSON, "X-Amzn-SageMaker-Custom-Attributes": "k=v"},
    )
    assert response.status_code == 200
    assert response.json() == {"y": [3, 6], "attrs": "k=v"}


def test_raising_handler_is_500_then_next_request_works(user_server: ModelServer) -> None:
    response = user_server.client.post("/invocations", content="raise", headers=JSON)
    assert response.status_code == 500
    assert "user input_fn refused this" in response.text
    assert "Traceback" in response.text
    ok = user_server.client.post("/invocations", content="[1]", headers=JSON)
    assert ok.json()["y"] == [3]


def test_hanging_handler_times_out_then_next_request_works(user_server: ModelServer) -> None:
    response = user_server.client.post("/invocations", content="hang", headers=JSON)
    assert response.status_code == 504
    assert "did not answer within 1 seconds" in response.text
    for _ in range(3):  # more requests than handler threads: the hung one was replaced
        ok = user_server.client.post("/invocations", content="[2]", headers=JSON)
        assert ok.status_code == 200
        assert ok.json()["y"] == [6]


def test_unencodable_result_is_500(user_server: ModelServer) -> None:
    response = user_server.client.post("/invocations", content="object", headers=JSON)
    assert response.status_code == 500
    assert "not bytes, str" in response.text


def test_oversize_body_is_413(user_server: ModelServer) -> None:
    response = user_server.client.post(
        "/invocations", content=b"[" + b"1," * 10_000 + b"1]", headers=JSON
    )
    assert response.status_code == 413
    ok = httpx.post(f"{user_server.url}/invocations", content="[1]", headers=JSON)
    assert ok.status_code == 200


def test_ping_is_503_while_loading_and_500_when_loading_fails(
    tmp_path: Path, start_server: type[ModelServer]
) -> None:
    slow = tmp_path / "slow"
    (slow / "code").mkdir(parents=True)
    (slow / "code" / "inference.py").write_text(
        "import time\n\ndef model_fn(model_dir):\n    time.sleep(1.5)\n    return len\n"
    )
    server = start_server(slow)
    statuses = set()
    for _ in range(200):
        with contextlib.suppress(httpx.TransportError):
            statuses.add(server.client.get("/ping").status_code)
        if 200 in statuses:
            break
        time.sleep(0.05)
    assert statuses == {503, 200}

    broken = tmp_path / "broken"
    (broken / "code").mkdir(parents=True)
    (broken / "code" / "inference.py").write_text(
        "def model_fn(model_dir):\n    raise OSError('no weights')\n"
    )
    failing = start_server(broken)
    for _ in range(100):
        try:
            ping = failing.client.get("/ping")
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        if ping.status_code != 503:
            break
    assert ping.status_code == 500
    assert "no weights" in ping.text
    invoke = failing.client.post("/invocations", content="[1]", headers=JSON)
    assert invoke.status_code == 503


def test_dynamic_batching_forms_batches(
    mlp_dir: Path, tmp_path: Path, start_server: type[ModelServer]
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(mlp_dir, model_dir)
    server = start_server(
        model_dir, {"SAGEMAKER_TS_BATCH_SIZE": "8", "SAGEMAKER_TS_MAX_BATCH_DELAY": "50"}
    )
    server.wait_ready()
    rng = np.random.default_rng(3)
    inputs = [rng.random(784, dtype=np.float32) for _ in range(16)]

    def call(x: np.ndarray) -> list[float]:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            response = client.post("/invocations", content=json.dumps(x.tolist()), headers=JSON)
            assert response.status_code == 200
            result: list[float] = response.json()
            return result

    with ThreadPoolExecutor(16) as executor:
        results = list(executor.map(call, inputs))
    expected = reference(model_dir, np.stack(inputs))
    np.testing.assert_allclose(np.array(results), expected, rtol=1e-4, atol=1e-5)
    metrics = server.client.get("/metrics").json()
    histogram = {int(size): count for size, count in metrics["batch_size_histogram"].items()}
    assert sum(size * count for size, count in histogram.items()) == 16
    assert max(histogram) > 1
    assert metrics["batching"] == {"batch_size": 8, "max_delay_ms": 50.0}


def test_two_workers_share_the_port(mlp_dir: Path, start_server: type[ModelServer]) -> None:
    server = start_server(mlp_dir, {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"})
    server.wait_ready()
    pids = set()
    for _ in range(40):
        with httpx.Client(base_url=server.url) as client:  # new connection each time
            assert (
                client.post(
                    "/invocations", content=json.dumps([0.0] * 784), headers=JSON
                ).status_code
                == 200
            )
            pids.add(client.get("/metrics").json()["per_worker"][0]["pid"])
        if len(pids) == 2:
            break
    assert len(pids) == 2
    assert server.stop() == 0


def test_sigterm_exits_cleanly(mlp_dir: Path, start_server: type[ModelServer]) -> None:
    server = start_server(mlp_dir)
    server.wait_ready()
    assert server.stop() == 0
    assert "listening on" in server.output()
