"""A full disk under a live server: clear AWS-form errors, nothing lost, and recovery.

The server's data folder (object store and SQLite database) lies on a 16 MiB tmpfs, which
the test fills with a file of its own. PutObject must then answer S3's XML error
``InsufficientStorage`` (507) and leave the old object, an upload in progress and no temp
file behind; a Create* that cannot be stored must answer ``ResourceLimitExceeded`` saying
the database's disk is full, and store nothing. Once the file is removed, both work again. Mounting needs root
(CAP_SYS_ADMIN); elsewhere the module is skipped with the reason.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from server_helpers import FAKE_GPUS, aws_error, start_server
from training_helpers import BUCKET, ROLE, job_request, unique

from sageport.cli.process import ServerProcess

OLD = bytes(range(256)) * 256  # 64 KiB


@pytest.fixture(scope="module")
def mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    where = tmp_path_factory.mktemp("smalldisk")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture(scope="module")
def server(mount: Path) -> Iterator[ServerProcess]:
    proc = start_server(mount / "data", FAKE_GPUS)
    yield proc
    proc.stop()


def _clients(server: ServerProcess) -> tuple[Any, Any]:
    config = Config(retries={"total_max_attempts": 1}, read_timeout=20)
    return server.client("s3", config=config), server.client("sagemaker", config=config)


def _fill(path: Path) -> None:
    """Write ``path`` until the filesystem has no byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            block = b"\0" * size
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)


def _model(sm: Any, name: str, fat: bool = True) -> None:
    env = {f"K{i:03d}": "v" * 1024 for i in range(100)} if fat else {}
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "python:3.11", "Environment": env},
    )


def test_a_full_disk_refuses_clearly_keeps_everything_and_recovers(
    server: ServerProcess, mount: Path
) -> None:
    s3, sm = _clients(server)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="kept.bin", Body=OLD)
    job = job_request(server, unique("full"), "print('hello')\n")  # uploads its code now
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="parts.bin")["UploadId"]
    filler = mount / "filler"
    _fill(filler)
    tmp = server.data_dir / "objects" / ".tmp"
    try:
        # -- the object store ----------------------------------------------------------
        for key in ("kept.bin", "new.bin"):
            with aws_error("InsufficientStorage") as exc:
                s3.put_object(Bucket=BUCKET, Key=key, Body=os.urandom(1 << 20))
            assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 507
            assert "No space left on device in the object store at" in str(
                exc.value.response["Error"]["Message"]
            )
        assert s3.get_object(Bucket=BUCKET, Key="kept.bin")["Body"].read() == OLD
        with aws_error("404"):
            s3.head_object(Bucket=BUCKET, Key="new.bin")
        with aws_error("InsufficientStorage"):
            s3.upload_part(
                Bucket=BUCKET, Key="parts.bin", UploadId=upload, PartNumber=1, Body=b"p" * 65536
            )
        parts = s3.list_parts(Bucket=BUCKET, Key="parts.bin", UploadId=upload)
        assert parts.get("Parts", []) == []  # the upload is intact, without the failed part
        assert list(tmp.iterdir()) == []

        # -- the database: fill what room SQLite's files still have, then one more ---
        stored = []
        refused = None
        for _ in range(200):
            name = unique("fat")
            try:
                _model(sm, name)
            except ClientError as err:
                refused = err
                break
            stored.append(name)
        assert refused is not None, "the database never ran out of room"
        assert refused.response["Error"]["Code"] == "ResourceLimitExceeded"
        assert "has no space left" in str(refused.response["Error"]["Message"])
        with aws_error("ResourceLimitExceeded") as exc:
            sm.create_training_job(**job)
        assert "disk is full" in str(exc.value.response["Error"]["Message"])
        with aws_error("ValidationException"):
            sm.describe_training_job(TrainingJobName=job["TrainingJobName"])
        for name in stored[-3:]:  # what was stored before stays readable
            assert len(sm.describe_model(ModelName=name)["PrimaryContainer"]["Environment"]) == 100
    finally:
        filler.unlink()

    # -- space is back: everything proceeds --------------------------------------------
    s3.put_object(Bucket=BUCKET, Key="kept.bin", Body=b"new")
    assert s3.get_object(Bucket=BUCKET, Key="kept.bin")["Body"].read() == b"new"
    etag = s3.upload_part(
        Bucket=BUCKET, Key="parts.bin", UploadId=upload, PartNumber=1, Body=b"p" * 65536
    )["ETag"]
    s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key="parts.bin",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    assert s3.get_object(Bucket=BUCKET, Key="parts.bin")["Body"].read() == b"p" * 65536
    _model(sm, unique("thin"), fat=False)
    arn = sm.create_training_job(**job)["TrainingJobArn"]
    assert arn.endswith(job["TrainingJobName"])
    sm.stop_training_job(TrainingJobName=job["TrainingJobName"])
    assert list(tmp.iterdir()) == []
