"""Training jobs on a server configured through ``sageport.toml``.

One server for the module, with the sandbox off (``sandbox = "off"``: the fallback every
machine without bubblewrap gets), an ``[images]`` entry that maps a custom image to an
interpreter of its own, and a small per-host log cap.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest
from server_helpers import start_server
from training_helpers import (
    BUCKET,
    PYTORCH_IMAGE,
    download,
    host_folder,
    log_lines,
    model_files,
    put_objects,
    report,
    submit,
    tar_members,
    unique,
    wait_completed,
)

from sageport.cli.process import ServerProcess

CUSTOM_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-algo:7"
LOG_CAP = 200_000


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("configured")
    runtime = root / "my-algo-python"
    # The mapped "image": this interpreter, recognisable by what it puts in the environment.
    runtime.write_text(f'#!/bin/sh\nexport MY_ALGO_RUNTIME=yes\nexec {sys.executable} "$@"\n')
    runtime.chmod(0o755)
    proc = start_server(
        root / "data",
        f'sandbox = "off"\nmax_log_bytes_per_host = {LOG_CAP}\n\n'
        f'[images]\n"my-algo" = "{runtime}"\n',
    )
    yield proc
    proc.stop()


ENV_SCRIPT = """
    import json, os, sys
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "report.json"), "w") as f:
        json.dump({
            "base": os.environ.get("SAGEMAKER_BASE_DIR"),
            "model_dir": os.environ["SM_MODEL_DIR"],
            "cwd": os.getcwd(),
            "runtime": os.environ.get("MY_ALGO_RUNTIME"),
        }, f)
"""


def test_without_a_sandbox_the_log_and_status_message_say_so(configured: ServerProcess) -> None:
    name = unique("nosandbox")
    submit(configured, name, ENV_SCRIPT)
    job = wait_completed(configured, name)
    training = next(t for t in job["SecondaryStatusTransitions"] if t["Status"] == "Training")
    assert "no sandbox: sandbox = off in settings" in training["StatusMessage"]
    assert any(
        "no sandbox (sandbox = off in settings)" in line for line in log_lines(configured, name)
    )
    seen = report(configured, job)
    folder = str(host_folder(configured, name))
    assert seen["base"] == folder
    assert seen["model_dir"] == f"{folder}/model"
    assert seen["cwd"] == f"{folder}/code"
    assert seen["runtime"] is None  # a framework image: the server's own interpreter


def test_settings_images_table_maps_a_custom_image(configured: ServerProcess) -> None:
    name = unique("custom-image")
    submit(configured, name, ENV_SCRIPT, image=CUSTOM_IMAGE)
    job = wait_completed(configured, name)
    assert job["AlgorithmSpecification"]["TrainingImage"] == CUSTOM_IMAGE
    assert report(configured, job)["runtime"] == "yes"


PATHS_SCRIPT = """
    import os, sys
    source, out = sys.argv[1], sys.argv[2].split("=", 1)[1]
    with open(source) as f:
        text = f.read()
    with open(os.path.join(out, "copied.txt"), "w") as f:
        f.write(text)
    with open(os.path.join(os.environ["EXTRA_DIR"], "note.txt"), "w") as f:
        f.write("via the environment")
"""


def test_opt_ml_paths_in_the_container_entrypoint_are_rewritten(
    configured: ServerProcess,
) -> None:
    name = unique("entry-paths")
    data = put_objects(configured, f"{name}/data", {"x.txt": b"from the channel"})
    submit(
        configured,
        name,
        PATHS_SCRIPT,
        channels={"training": data},
        AlgorithmSpecification={
            "TrainingImage": PYTORCH_IMAGE,
            "TrainingInputMode": "File",
            "ContainerEntrypoint": [
                "python3",
                "/opt/ml/code/train.py",
                "/opt/ml/input/data/training/x.txt",
            ],
            "ContainerArguments": ["--out=/opt/ml/model"],
        },
        Environment={"EXTRA_DIR": "/opt/ml/output/data"},
    )
    job = wait_completed(configured, name)
    assert model_files(configured, job) == {"copied.txt": b"from the channel"}
    output = job["ModelArtifacts"]["S3ModelArtifacts"].replace("model.tar.gz", "output.tar.gz")
    assert tar_members(download(configured, output)) == {"note.txt": b"via the environment"}
    assert job["Environment"] == {"EXTRA_DIR": "/opt/ml/output/data"}  # echoed as sent


FLOOD_SCRIPT = """
    import os, sys
    for i in range(4000):
        print(f"line {i} " + "y" * 100)
    sys.stdout.flush()
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.pth"), "w") as f:
        f.write("written after the log was full")
    print("still here at the end", file=sys.stderr, flush=True)
"""


def test_log_cap_truncates_the_log_and_the_job_runs_on(configured: ServerProcess) -> None:
    name = unique("logcap")
    submit(configured, name, FLOOD_SCRIPT)
    job = wait_completed(configured, name, timeout=60)
    assert model_files(configured, job) == {"model.pth": b"written after the log was full"}
    lines = log_lines(configured, name)
    assert any(
        line.startswith(f"log truncated: the limit of {LOG_CAP} bytes was reached")
        for line in lines
    )
    assert "line 3999 " + "y" * 100 not in lines  # discarded ...
    assert "still here at the end" in lines  # ... but for the last stderr lines
    assert sum(len(line) for line in lines) < 2 * LOG_CAP
    training = next(t for t in job["SecondaryStatusTransitions"] if t["Status"] == "Training")
    assert "algo-1 reached the per-host limit" in training["StatusMessage"]
    assert "max_log_bytes_per_host" in training["StatusMessage"]


OVERWRITE_SCRIPT = """
    import json, os
    path = os.path.join(os.environ["SM_CHANNEL_TRAINING"], "labels.csv")
    try:
        with open(path, "r+") as f:
            f.write("CHANGED")
        outcome = "written"
    except PermissionError as exc:
        outcome = f"refused: {exc}"
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "report.json"), "w") as f:
        json.dump({"outcome": outcome, "nlink": os.stat(path).st_nlink}, f)
"""


def test_without_a_sandbox_a_script_never_changes_the_stored_object(
    configured: ServerProcess,
) -> None:
    name = unique("copies")
    data = put_objects(configured, f"{name}/data", {"labels.csv": b"y\n1\n"})
    submit(configured, name, OVERWRITE_SCRIPT, channels={"training": data})
    job = wait_completed(configured, name)
    seen = report(configured, job)
    if os.geteuid() == 0:
        # root could write through a read-only link, so its inputs are private copies
        assert seen == {"outcome": "written", "nlink": 1}
        staged = host_folder(configured, name) / "input" / "data" / "training" / "labels.csv"
        assert staged.read_bytes() == b"CHANGED"  # the copy changed, not the object
    else:
        assert seen["outcome"].startswith("refused: [Errno 13]")
    assert download(configured, f"s3://{BUCKET}/{name}/data/labels.csv") == b"y\n1\n"
