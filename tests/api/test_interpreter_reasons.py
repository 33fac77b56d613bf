"""Which interpreter ran a job, said where a user looks: the FailureReason of a job that could
not import, and the server's log at start (one line per image family)."""

from __future__ import annotations

import sys
import time

import processing_helpers as processing
import training_helpers as training

from sageport.cli.process import ServerProcess

MISSING = "some_missing_module_xyz"
SCRIPT = f"import {MISSING}\n"


def _assert_names_the_interpreter(reason: str) -> None:
    assert reason.startswith("AlgorithmError: ExecuteUserScriptError:\nExitCode 1\n"), reason
    assert f"ModuleNotFoundError: No module named '{MISSING}'" in reason
    # the server's tests run it with this interpreter, and nothing maps the pytorch image
    assert f'Interpreter "{sys.executable}" (image family pytorch: the interpreter of ' in reason
    assert f"{sys.executable} -m pip install {MISSING}" in reason
    assert '[images] "pytorch" = "/path/to/venv/bin/python"' in reason


def test_a_training_job_that_cannot_import_names_its_interpreter(server: ServerProcess) -> None:
    name = training.unique("no-module")
    training.submit(server, name, SCRIPT)
    job = training.wait(server, name)
    assert job["TrainingJobStatus"] == "Failed"
    _assert_names_the_interpreter(job["FailureReason"])


def test_a_processing_job_that_cannot_import_names_its_interpreter(server: ServerProcess) -> None:
    name = training.unique("no-module-proc")
    processing.submit(server, name, SCRIPT)
    job = processing.wait(server, name)
    assert job["ProcessingJobStatus"] == "Failed"
    _assert_names_the_interpreter(job["FailureReason"])


def test_the_server_logs_each_image_familys_interpreter(server: ServerProcess) -> None:
    log = server.data_dir / "server.log"  # ServerProcess's; the whole file, not its tail
    deadline = time.monotonic() + 30
    wanted = f"interpreter: pytorch images -> {sys.executable} (the interpreter of sageport serve"
    while wanted not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.1)
    lines = [x for x in log.read_text(errors="replace").splitlines() if "interpreter: " in x]
    families = {line.split("interpreter: ", 1)[1].split(" images ->")[0] for line in lines}
    assert {"pytorch", "tensorflow", "sklearn", "xgboost", "huggingface-pytorch"} <= families
    torch_line = next(line for line in lines if "interpreter: pytorch images" in line)
    assert "torch yes" in torch_line or "torch no" in torch_line


def test_a_model_server_that_cannot_import_names_its_interpreter(server: ServerProcess) -> None:
    import endpoint_helpers as endpoints

    archive = endpoints.handler_model(1.0, SCRIPT)
    name = endpoints.prepare(server, archive, "no-module-ep")
    server.client("sagemaker").create_endpoint(EndpointName=name, EndpointConfigName=name)
    reason = endpoints.wait_status(server, name, "Failed", timeout=60)["FailureReason"]
    assert len(reason) <= 1024
    assert f"No module named '{MISSING}'" in reason
    assert f'Interpreter "{sys.executable}" (image family pytorch: the interpreter of ' in reason
    assert f"{sys.executable} -m pip install {MISSING}" in reason
    endpoints.delete(server, name)
