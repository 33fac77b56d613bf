"""Paths from requests are confined, and no upload follows a link a job left (issue 11, item 3).

One live server for the module, driven with boto3: LocalPath traversals are refused at create
naming the field (and nothing is created); jobs that plant symlinks to a host secret (and to
``/etc/passwd``) in every folder the server uploads or reads get their artifacts uploaded
without the secret's bytes; channel object keys with ``..`` segments never write outside the
channel folder.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from processing_helpers import log_text as processing_log
from processing_helpers import objects, s3_input, s3_output
from processing_helpers import submit as submit_processing
from processing_helpers import wait as wait_processing
from server_helpers import aws_error, start_server
from training_helpers import BUCKET, download, ensure_bucket, put_objects, unique
from training_helpers import log_text as training_log
from training_helpers import submit as submit_training
from training_helpers import wait as wait_training

from sageport.cli.process import ServerProcess

SECRET = b"sageport-test-secret-4f1c9a"


@pytest.fixture(scope="module")
def secret(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A host file outside every job folder, that no job may get into S3."""
    path = tmp_path_factory.mktemp("host") / "credentials.json"
    path.write_bytes(SECRET)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server(tmp_path_factory.mktemp("paths") / "data")
    yield proc
    proc.stop()


def _processing_request_with(
    server: ServerProcess, name: str, *, input_path: str, output_path: str
) -> None:
    submit_processing(
        server,
        name,
        "print('never runs')\n",
        inputs=[s3_input("data", f"s3://{BUCKET}/{name}/in/", input_path)],
        outputs=[s3_output("out", f"s3://{BUCKET}/{name}/out", output_path)],
    )


@pytest.mark.parametrize(
    ("field", "paths"),
    [
        (
            "ProcessingInputs[0].S3Input.LocalPath",
            ("/opt/ml/processing/../../../tmp/x", "/opt/ml/processing/output"),
        ),
        (
            "ProcessingOutputConfig.Outputs[0].S3Output.LocalPath",
            ("/opt/ml/processing/input", "/opt/ml/processing/output/../../../../tmp/y"),
        ),
        (
            "ProcessingInputs[0].S3Input.LocalPath",
            ("/opt/ml/processing2/in", "/opt/ml/processing/output"),
        ),
    ],
)
def test_processing_local_path_traversal_refused(
    server: ServerProcess, field: str, paths: tuple[str, str]
) -> None:
    name = unique("trav")
    with aws_error("ValidationException") as info:
        _processing_request_with(server, name, input_path=paths[0], output_path=paths[1])
    message = info.value.response["Error"]["Message"]
    assert message.startswith(field), message
    assert "is outside /opt/ml/processing" in message
    with aws_error("ValidationException") as missing:
        server.client("sagemaker").describe_processing_job(ProcessingJobName=name)
    assert "not found" in missing.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (
            {"CheckpointConfig": {"S3Uri": f"s3://{BUCKET}/ck", "LocalPath": "/opt/ml/../../tmp"}},
            "CheckpointConfig.LocalPath",
        ),
        (
            {"TensorBoardOutputConfig": {"S3OutputPath": f"s3://{BUCKET}/tb", "LocalPath": "rel"}},
            "TensorBoardOutputConfig.LocalPath",
        ),
    ],
)
def test_training_local_path_traversal_refused(
    server: ServerProcess, overrides: dict[str, object], field: str
) -> None:
    name = unique("trav")
    with aws_error("ValidationException") as info:
        submit_training(server, name, "print('never runs')\n", **overrides)
    assert info.value.response["Error"]["Message"].startswith(field)
    with aws_error("ValidationException"):
        server.client("sagemaker").describe_training_job(TrainingJobName=name)


def test_channel_name_dot_dot_refused(server: ServerProcess) -> None:
    """``..`` matches ChannelName's pattern, and would be ``input/data/..`` = ``input``."""
    name = unique("trav")
    uri = put_objects(server, f"{name}/data", {"a.txt": b"a"})
    with aws_error("ValidationException") as info:
        submit_training(server, name, "print('never runs')\n", channels={"..": uri})
    assert info.value.response["Error"]["Message"].startswith("InputDataConfig[0].ChannelName")


PLANT = """
import os, sys
secret = sys.argv[-1] if len(sys.argv) > 1 else os.environ["SECRET"]
base = os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")
for folder in ("model", "output/data", "checkpoints", "checkpoints/sub"):
    os.makedirs(f"{base}/{folder}", exist_ok=True)
    with open(f"{base}/{folder}/real.txt", "w") as f:
        f.write("real")
    os.symlink(secret, f"{base}/{folder}/secret.json")
    os.symlink("/etc/passwd", f"{base}/{folder}/passwd")
os.symlink(os.path.dirname(secret), f"{base}/checkpoints/hostdir")  # a symlinked folder
os.symlink(secret, f"{base}/output/failure")  # FailureReason must not quote it
sys.exit(3)
"""


def _no_secret(blob: bytes, where: str) -> None:
    assert SECRET not in blob, f"the secret leaked into {where}"
    assert b"root:x:0:0" not in blob, f"/etc/passwd leaked into {where}"


def test_training_symlinks_are_not_followed(server: ServerProcess, secret: Path) -> None:
    name = unique("links")
    ck = f"s3://{BUCKET}/{name}/checkpoints"
    submit_training(
        server,
        name,
        PLANT,
        Environment={"SECRET": str(secret)},
        CheckpointConfig={"S3Uri": ck},
    )
    job = wait_training(server, name, timeout=120)
    assert job["TrainingJobStatus"] == "Failed", training_log(server, name)
    _no_secret(job["FailureReason"].encode(), "FailureReason")
    assert "ExitCode 3" in job["FailureReason"]
    for archive in ("model.tar.gz", "output.tar.gz"):
        blob = download(server, f"s3://{BUCKET}/output/{name}/output/{archive}")
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            members = {m.name: m for m in tar.getmembers()}
            contents = b"".join(
                tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in members.values()
                if m.isfile()
            )
        _no_secret(contents, archive)
        assert members["real.txt"].isfile()
        assert members["secret.json"].issym()  # stored as the link, as tar does
        assert members["secret.json"].linkname == str(secret)
    uploaded = objects(server, f"{name}/checkpoints")
    assert set(uploaded) == {"real.txt", "sub/real.txt"}
    for key, body in uploaded.items():
        _no_secret(body, key)
    lines = training_log(server, name)
    assert f"skipped symlink algo-1/checkpoints/secret.json -> {secret}" in lines
    assert "skipped symlink algo-1/checkpoints/hostdir" in lines


PLANT_OUTPUT = """
import os, sys
secret = os.environ["SECRET"]
out = sys.argv[1]
with open(out + "/real.txt", "w") as f:
    f.write("real")
os.symlink(secret, out + "/secret.json")
os.symlink(os.path.dirname(secret), out + "/hostdir")
base = os.path.dirname(os.path.dirname(out))  # /opt/ml, or the host folder without a sandbox
os.makedirs(base + "/output", exist_ok=True)
os.symlink(secret, base + "/output/message")  # ExitMessage must not quote it
print("planted", sorted(os.listdir(out)))
"""


def test_processing_output_symlinks_are_skipped(server: ServerProcess, secret: Path) -> None:
    name = unique("links")
    out = "/opt/ml/processing/output"
    ensure_bucket(server)
    submit_processing(
        server,
        name,
        PLANT_OUTPUT,
        outputs=[s3_output("out", f"s3://{BUCKET}/{name}/out", out)],
        arguments=[out],
        Environment={"SECRET": str(secret)},
    )
    job = wait_processing(server, name, timeout=120)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    uploaded = objects(server, f"{name}/out")
    assert uploaded == {"real.txt": b"real"}
    _no_secret(job.get("ExitMessage", "").encode(), "ExitMessage")
    lines = processing_log(server, name)
    assert "planted ['hostdir', 'real.txt', 'secret.json']" in lines
    assert f"skipped symlink algo-1:{out}/secret.json -> {secret}" in lines
    assert f"skipped symlink algo-1:{out}/hostdir" in lines


def test_channel_keys_with_dot_dot_stay_in_the_channel(
    server: ServerProcess, tmp_path: Path
) -> None:
    """S3 keeps ``..`` in keys as plain characters; staging must not take them as a path."""
    name = unique("keys")
    escape = tmp_path / "escaped.txt"
    depth = "/".join([".."] * 40)  # enough to climb from any channel folder to /
    prefix = f"{name}/data"
    s3 = server.client("s3")
    ensure_bucket(server)
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/ok.txt", Body=b"ok")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{depth}{escape}", Body=b"escaped")
    submit_training(
        server, name, "print('never runs')\n", channels={"train": f"s3://{BUCKET}/{prefix}/"}
    )
    job = wait_training(server, name, timeout=120)
    assert job["TrainingJobStatus"] == "Failed"
    assert "would land outside the channel folder" in job["FailureReason"]
    assert not escape.exists()
