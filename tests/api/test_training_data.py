"""What a training job reads and leaves: channels, checkpoints and ``output.tar.gz``.

Live server, boto3, real processes. Channels are ``S3Prefix`` and ``ManifestFile``,
``FullyReplicated`` and ``ShardedByS3Key`` (on a 2-instance job); staged files are hard links
to the stored objects where that is safe, and a script cannot change a stored object by
writing to its input. Checkpoints are restored before the script starts and uploaded after.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from training_helpers import (
    BUCKET,
    download,
    host_folder,
    log_lines,
    model_files,
    put_objects,
    report,
    s3_channel,
    submit,
    tar_members,
    unique,
    wait,
    wait_completed,
)

from sageport.cli.process import ServerProcess

#: where this machine links instead of copying: a sandbox, or a user who cannot override
#: file permissions (not root).
LINKS = shutil.which("bwrap") is not None or os.geteuid() != 0

LIST_INPUTS = """
    import json, os
    base = os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")
    host = os.environ["SM_CURRENT_HOST"]
    data = os.path.join(base, "input", "data")
    listing = {
        c: sorted(
            os.path.relpath(os.path.join(d, f), os.path.join(data, c))
            for d, _, files in os.walk(os.path.join(data, c)) for f in files
        )
        for c in sorted(os.listdir(data))
    }
    with open(os.path.join(base, "input", "config", "inputdataconfig.json")) as f:
        config = json.load(f)
    out = {
        "listing": listing,
        "config": config,
        "env": json.loads(os.environ["SM_INPUT_DATA_CONFIG"]),
        "hosts": json.loads(os.environ["SM_HOSTS"]),
    }
    with open(os.path.join(os.environ["SM_MODEL_DIR"], host + ".json"), "w") as f:
        json.dump(out, f)
"""


def test_sharded_channel_gives_each_host_its_share(server: ServerProcess) -> None:
    name = unique("shard")
    keys = [f"part-{i}.csv" for i in range(5)]
    shards = put_objects(server, f"{name}/shards", {k: k.encode() for k in keys})
    common = put_objects(server, f"{name}/common", {"vocab.txt": b"a b c"})
    submit(
        server,
        name,
        LIST_INPUTS,
        InputDataConfig=[
            s3_channel("train", shards, distribution="ShardedByS3Key"),
            s3_channel("vocab", common),
        ],
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 1},
    )
    job = wait_completed(server, name, timeout=90)
    hosts = [report(server, job, f"algo-{i}.json") for i in (1, 2)]
    assert hosts[0]["hosts"] == ["algo-1", "algo-2"]
    parts = [h["listing"]["train"] for h in hosts]
    assert all(parts)  # each host got a share ...
    assert not set(parts[0]) & set(parts[1])  # ... its own ...
    assert sorted(parts[0] + parts[1]) == keys  # ... and together they are everything
    for h in hosts:
        assert h["listing"]["vocab"] == ["vocab.txt"]  # FullyReplicated: every host, all of it
        for view in (h["config"], h["env"]):
            assert view["train"]["S3DistributionType"] == "ShardedByS3Key"
            assert view["vocab"]["S3DistributionType"] == "FullyReplicated"
            assert view["train"]["TrainingInputMode"] == "File"


def submit_with_manifest(
    server: ServerProcess,
    name: str,
    script: str,
    objects: dict[str, bytes],
    listed: list[str],
    manifest: str = "train.manifest",
) -> str:
    """Store ``objects`` under ``<name>/data/`` and a manifest of the ``listed`` ones, then
    submit ``script`` with that manifest as channel ``train``; returns the data prefix."""
    prefix = put_objects(server, f"{name}/data", objects)
    body = json.dumps([{"prefix": prefix}, *listed]).encode()
    put_objects(server, f"{name}/manifests", {manifest: body})
    uri = f"s3://{BUCKET}/{name}/manifests/{manifest}"
    channel = s3_channel("train", uri, data_type="ManifestFile")
    submit(server, name, script, InputDataConfig=[channel])
    return prefix


def test_manifest_file_channel_stages_exactly_the_listed_objects(server: ServerProcess) -> None:
    name = unique("manifest")
    objects = {"a.csv": b"1", "nested/b.csv": b"2", "not-listed.csv": b"3"}
    submit_with_manifest(server, name, LIST_INPUTS, objects, ["a.csv", "nested/b.csv"])
    job = wait_completed(server, name)
    seen = report(server, job, "algo-1.json")
    assert seen["listing"]["train"] == ["a.csv", "nested/b.csv"]


def test_manifest_naming_a_missing_object_fails_with_its_uri(server: ServerProcess) -> None:
    name = unique("manifest-missing")
    listed = ["a.csv", "gone.csv"]
    prefix = submit_with_manifest(
        server, name, "print('never runs')\n", {"a.csv": b"1"}, listed, "m.json"
    )
    job = wait(server, name)
    assert job["TrainingJobStatus"] == "Failed"
    assert f"{prefix}gone.csv" in job["FailureReason"]


INODE_SCRIPT = """
    import json, os
    path = os.path.join(os.environ["SM_CHANNEL_TRAINING"], "blob.bin")
    st = os.stat(path)
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "report.json"), "w") as f:
        json.dump({"nlink": st.st_nlink, "writable": bool(st.st_mode & 0o222)}, f)
"""


@pytest.mark.skipif(not LINKS, reason="root without a sandbox: channels are copies, not links")
def test_staging_hard_links_the_stored_objects(server: ServerProcess) -> None:
    name = unique("links")
    body = os.urandom(1 << 16)
    data = put_objects(server, f"{name}/data", {"blob.bin": body})
    submit(server, name, INODE_SCRIPT, channels={"training": data})
    job = wait_completed(server, name)
    seen = report(server, job)
    assert seen["nlink"] >= 2  # the script's file is one name of a shared inode ...
    assert seen["writable"] is False  # ... made read-only
    staged = host_folder(server, name) / "input" / "data" / "training" / "blob.bin"
    inode = staged.stat().st_ino
    stored = [
        p
        for p in (server.data_dir / "objects" / BUCKET).rglob("*")
        if p.is_file() and p.stat().st_ino == inode
    ]
    assert len(stored) == 1  # ... and the other name is the object in the store
    assert stored[0].read_bytes() == body
    assert any("read-only hard links" in line for line in log_lines(server, name))


OVERWRITE_SCRIPT = """
    import json, os
    path = os.path.join(os.environ["SM_CHANNEL_TRAINING"], "labels.csv")
    outcome = {}
    try:
        with open(path, "r+") as f:
            f.write("CORRUPTED")
        outcome["in_place"] = "written"
    except PermissionError as exc:
        outcome["in_place"] = f"refused: {exc}"
    # Replacing the file (a new inode) is always fine and stays private to the job.
    os.remove(path)
    with open(path, "w") as f:
        f.write("my own version")
    with open(path) as f:
        outcome["after_replace"] = f.read()
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "report.json"), "w") as f:
        json.dump(outcome, f)
"""


def test_a_script_cannot_change_the_stored_object_through_its_input(
    server: ServerProcess,
) -> None:
    name = unique("overwrite")
    data = put_objects(server, f"{name}/data", {"labels.csv": b"y\n1\n0\n"})
    submit(server, name, OVERWRITE_SCRIPT, channels={"training": data})
    job = wait_completed(server, name)
    outcome = report(server, job)
    if LINKS:
        assert outcome["in_place"].startswith("refused: [Errno 13] Permission denied")
    else:
        assert outcome["in_place"] == "written"  # a private copy
    assert outcome["after_replace"] == "my own version"
    assert download(server, f"{data}labels.csv") == b"y\n1\n0\n"


CHECKPOINT_SCRIPT = """
    import json, os
    ckpt = os.path.join(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"), "checkpoints")
    restored = sorted(
        os.path.relpath(os.path.join(d, f), ckpt) for d, _, fs in os.walk(ckpt) for f in fs
    )
    with open(os.path.join(ckpt, "epoch-1.pt")) as f:
        previous = f.read()
    with open(os.path.join(ckpt, "epoch-2.pt"), "w") as f:
        f.write("weights after epoch 2")
    with open(os.path.join(ckpt, "sub", "state.json"), "w") as f:  # a private copy: writable
        json.dump({"epoch": 2}, f)
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "report.json"), "w") as f:
        json.dump({"restored": restored, "previous": previous}, f)
"""


def test_checkpoints_are_restored_at_start_and_uploaded_at_the_end(
    server: ServerProcess,
) -> None:
    name = unique("ckpt")
    uri = put_objects(
        server,
        f"{name}/checkpoints",
        {"epoch-1.pt": b"weights after epoch 1", "sub/state.json": b'{"epoch": 1}'},
    )
    submit(server, name, CHECKPOINT_SCRIPT, CheckpointConfig={"S3Uri": uri})
    job = wait_completed(server, name)
    assert job["CheckpointConfig"] == {"S3Uri": uri}
    seen = report(server, job)
    assert seen == {
        "restored": ["epoch-1.pt", "sub/state.json"],
        "previous": "weights after epoch 1",
    }
    listed = server.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"{name}/checkpoints/")
    assert sorted(o["Key"].split("/checkpoints/")[1] for o in listed["Contents"]) == [
        "epoch-1.pt",
        "epoch-2.pt",
        "sub/state.json",
    ]
    assert download(server, f"{uri}epoch-2.pt") == b"weights after epoch 2"
    assert json.loads(download(server, f"{uri}sub/state.json")) == {"epoch": 2}


OUTPUT_DATA_SCRIPT = """
    import os
    out = os.environ["SM_OUTPUT_DATA_DIR"]
    os.makedirs(os.path.join(out, "plots"))
    with open(os.path.join(out, "metrics.txt"), "w") as f:
        f.write("accuracy 0.93")
    with open(os.path.join(out, "plots", "loss.csv"), "w") as f:
        f.write("1,0.5")
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.pth"), "w") as f:
        f.write("weights")
"""


def test_output_data_becomes_output_tar_gz_next_to_the_model(server: ServerProcess) -> None:
    name = unique("outdata")
    submit(server, name, OUTPUT_DATA_SCRIPT)
    job = wait_completed(server, name)
    model_uri = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert model_uri == f"s3://{BUCKET}/output/{name}/output/model.tar.gz"
    output = tar_members(download(server, model_uri.replace("model.tar.gz", "output.tar.gz")))
    assert output == {"metrics.txt": b"accuracy 0.93", "plots/loss.csv": b"1,0.5"}
    assert model_files(server, job) == {"model.pth": b"weights"}


def test_host_folder_helper_points_at_the_job(server: ServerProcess) -> None:
    # The other tests read the host folder through this helper: check it names the real one.
    name = unique("folder")
    submit(server, name, "print('ok')\n")
    assert wait(server, name)["TrainingJobStatus"] == "Completed"
    folder: Path = host_folder(server, name)
    assert (folder / "input" / "config" / "resourceconfig.json").is_file()
    assert (folder / "code" / "train.py").is_file()
