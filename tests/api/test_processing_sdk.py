"""The SageMaker Python SDK 2.x, unchanged, runs processing jobs on the server.

``ScriptProcessor(command=["python3"], image_uri=<a framework image>, instance_type=
"ml.g5.2xlarge").run(code="process.py", inputs=..., outputs=...)`` as tutorials write it,
on a server with four fake GPUs (so the GPU instance type is admitted on this machine).
The environment is what ``eval "$(sageport env)"`` sets; ``sagemaker.Session()`` takes its
bucket and role from the SDK config the server writes. The SDK sleeps 5 s before its first
DescribeProcessingJob, so each ``wait=True`` test takes at least that long.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from typing import Any

import pytest
from processing_helpers import objects, wait_log
from server_helpers import apply_sageport_env, module_server
from training_helpers import PYTORCH_IMAGE, put_objects, unique

from sageport.cli.process import ServerProcess

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("sagemaker") is None, reason="needs the SageMaker SDK 2.x"
)

PROCESS = """
    import json, os
    base = "/opt/ml/processing"
    rows = open(base + "/input/data/rows.csv").read().split()
    os.makedirs(base + "/output", exist_ok=True)
    with open(base + "/output/summary.json", "w") as f:
        json.dump({"rows": len(rows), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}, f)
    print("summarised", len(rows), "rows")
"""


#: four fake 80 GB GPUs; CPU and memory accounting loose so an ml.g5 host fits
gpu_server = module_server("proc-sdk", name="gpu_server")


@pytest.fixture
def session(gpu_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``sagemaker.Session()`` after ``eval "$(sageport env --data-dir ...)"``."""
    apply_sageport_env(gpu_server, monkeypatch)
    import sagemaker

    return sagemaker.Session()


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))
    return folder


def _script_processor(session: Any, **kwargs: Any) -> Any:
    from sagemaker.processing import ScriptProcessor

    return ScriptProcessor(
        command=["python3"],
        image_uri=PYTORCH_IMAGE,
        instance_type="ml.g5.2xlarge",
        instance_count=1,
        sagemaker_session=session,
        **kwargs,
    )


def test_script_processor_on_a_gpu_instance_writes_its_output_to_s3(
    gpu_server: ServerProcess, session: Any, tmp_path: Path
) -> None:
    from sagemaker.processing import ProcessingInput, ProcessingOutput

    data = put_objects(gpu_server, unique("sdk-proc-data"), {"rows.csv": b"1\n2\n3\n"})
    code = _write(tmp_path, {"process.py": PROCESS}) / "process.py"
    processor = _script_processor(session, base_job_name="sdk-proc")
    processor.run(
        code=str(code),
        inputs=[ProcessingInput(source=data, destination="/opt/ml/processing/input/data")],
        outputs=[ProcessingOutput(source="/opt/ml/processing/output", output_name="summary")],
        wait=True,
        logs=False,
    )
    job = processor.latest_job.describe()
    assert job["ProcessingJobStatus"] == "Completed"
    assert job["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.g5.2xlarge"
    destination = job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    bucket, prefix = destination.removeprefix("s3://").split("/", 1)
    assert bucket == "sagemaker-sageport"  # the default bucket from the server's SDK config
    out = objects(gpu_server, prefix, bucket=bucket)
    summary = __import__("json").loads(out["summary.json"])
    assert summary["rows"] == 3
    assert len(summary["gpus"].split(",")) == 1  # ml.g5.2xlarge: one GPU, granted exclusively


def test_framework_processor_runs_a_source_dir(
    gpu_server: ServerProcess, session: Any, tmp_path: Path
) -> None:
    from sagemaker.processing import FrameworkProcessor, ProcessingOutput
    from sagemaker.pytorch import PyTorch

    source = _write(
        tmp_path / "src",
        {
            "helpers.py": "def greet(name):\n    return 'hello ' + name\n",
            "process.py": """
                import sys
                from helpers import greet
                open("/opt/ml/processing/output/greeting.txt", "w").write(greet(sys.argv[1]))
            """,
        },
    )
    processor = FrameworkProcessor(
        estimator_cls=PyTorch,
        framework_version="2.1",
        py_version="py310",
        instance_type="ml.m5.xlarge",
        instance_count=1,
        sagemaker_session=session,
        base_job_name="sdk-fwproc",
    )
    processor.run(
        code="process.py",
        source_dir=str(source),
        arguments=["world"],
        outputs=[ProcessingOutput(source="/opt/ml/processing/output", output_name="greeting")],
        wait=True,
        logs=False,
    )
    job = processor.latest_job.describe()
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    destination = job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    bucket, prefix = destination.removeprefix("s3://").split("/", 1)
    assert objects(gpu_server, prefix, bucket=bucket) == {"greeting.txt": b"hello world"}


def test_stop_through_the_sdk(gpu_server: ServerProcess, session: Any, tmp_path: Path) -> None:
    script = "import time\nprint('waiting', flush=True)\ntime.sleep(120)\n"
    code = _write(tmp_path, {"sleep.py": script}) / "sleep.py"
    processor = _script_processor(session, base_job_name="sdk-proc-stop")
    processor.run(code=str(code), wait=False, logs=False)
    job = processor.latest_job
    wait_log(gpu_server, job.job_name, "waiting")
    job.stop()
    job.wait(logs=False)  # the SDK accepts Stopped as an end state (with a warning)
    assert job.describe()["ProcessingJobStatus"] == "Stopped"


def test_failed_job_raises_with_its_failure_reason(session: Any, tmp_path: Path) -> None:
    from sagemaker.exceptions import UnexpectedStatusException

    code = (
        _write(tmp_path, {"broken.py": "raise RuntimeError('column price is missing')\n"})
        / "broken.py"
    )
    processor = _script_processor(session, base_job_name="sdk-proc-fail")
    with pytest.raises(UnexpectedStatusException) as info:
        processor.run(code=str(code), wait=True, logs=False)
    assert "column price is missing" in str(info.value)


@pytest.mark.slow
def test_run_with_logs_prints_the_jobs_output(
    gpu_server: ServerProcess, session: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _write(tmp_path, {"hello.py": "print('hello from processing')\n"}) / "hello.py"
    processor = _script_processor(session, base_job_name="sdk-proc-logs")
    processor.run(code=str(code), wait=True, logs=True)
    assert "hello from processing" in capsys.readouterr().out
    assert processor.latest_job.describe()["ProcessingJobStatus"] == "Completed"
