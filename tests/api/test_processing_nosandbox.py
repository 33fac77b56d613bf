"""Processing jobs on a server without a sandbox (``sandbox = "off"``, as on a machine
without bubblewrap): what the log says they get instead of ``/opt/ml``, and the
``FrameworkProcessor`` jobs that cannot work there, refused at start with the fix."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from processing_helpers import log_lines, log_text, objects, s3_input, s3_output, submit, wait
from training_helpers import BUCKET, put_objects, unique

from sageport.cli.process import ServerProcess

#: the command FrameworkProcessor (SDK 2.x) sends: bash on the runproc.sh it generates
RUNPROC = "/opt/ml/processing/input/entrypoint/runproc.sh"


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("proc-nosandbox") / "data"
    data.mkdir()
    (data / "sageport.toml").write_text('sandbox = "off"\n')
    proc = ServerProcess(data)
    proc.start()
    yield proc
    proc.stop()


def test_the_log_says_what_a_processing_job_gets_instead_of_opt_ml(
    bare_server: ServerProcess,
) -> None:
    server = bare_server
    name = unique("proc-note")
    script = "import sys\nopen(sys.argv[1] + '/done.txt', 'w').write('ok')\n"
    out = f"s3://{BUCKET}/{name}/out"
    submit(
        server,
        name,
        script,
        outputs=[s3_output("out", out, "/opt/ml/processing/output")],
        arguments=["/opt/ml/processing/output"],
    )
    job = wait(server, name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason") or log_text(
        server, name
    )
    (note,) = [line for line in log_lines(server, name) if "no sandbox" in line]
    host = server.data_dir / "jobs" / "processing" / name / "algo-1"
    assert note.startswith("sageport: no sandbox (sandbox = off in settings); ")
    assert f"LocalPaths under /opt/ml live in the host folder {host}" in note
    assert "ContainerArguments" in note
    assert "bubblewrap" in note
    # processing containers have no SAGEMAKER_BASE_DIR contract: the note must not promise one
    assert "SAGEMAKER_BASE_DIR" not in note
    assert objects(server, f"{name}/out/") == {"done.txt": b"ok"}


def test_a_framework_processor_job_fails_at_start_saying_it_needs_the_sandbox(
    bare_server: ServerProcess,
) -> None:
    server = bare_server
    name = unique("proc-fw")
    runproc = "#!/bin/bash\ncd /opt/ml/processing/input/code/\ntar -xzf sourcedir.tar.gz\n"
    code = put_objects(server, f"{name}/source", {"runproc.sh": runproc.encode()})
    data = put_objects(server, f"{name}/data", {"big.csv": b"1,2\n"})
    submit(
        server,
        name,
        "print('never')\n",
        inputs=[
            s3_input("data", data, "/opt/ml/processing/input/data"),
            s3_input("entrypoint", code + "runproc.sh", "/opt/ml/processing/input/entrypoint"),
        ],
        AppSpecification={
            "ImageUri": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.1.0-cpu-py310",
            "ContainerEntrypoint": ["/bin/bash", RUNPROC],
            "ContainerArguments": ["world"],
        },
    )
    job = wait(server, name)
    assert job["ProcessingJobStatus"] == "Failed"
    reason = job["FailureReason"]
    assert reason.startswith("FrameworkProcessor jobs need the bubblewrap sandbox")
    assert "(sandbox = off in settings)" in reason
    assert "cd /opt/ml/processing/input/code/" in reason
    assert "apt-get install -y bubblewrap" in reason
    assert "ScriptProcessor" in reason
    # refused before staging: no input was downloaded, nothing ran
    host = server.data_dir / "jobs" / "processing" / name / "algo-1"
    assert not (host / "processing" / "input" / "data").exists()
    assert "never" not in log_lines(server, name)
