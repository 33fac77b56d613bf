"""The S3 API over an fsspec object store (``object_store_url``), with real boto3 clients.

``memory://`` and ``local://`` stand in for ``s3://``: the same FsspecObjectStore code serves
them. Where s3fs (the ``s3`` extra) and moto are installed, a moto server stands in for AWS
and the store is a real ``s3://`` one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from server_helpers import aws_error, start_server
from training_helpers import model_files, put_objects, submit, unique, wait_completed

from sageport.cli.process import ServerProcess

MiB = 1024 * 1024


@pytest.fixture
def memory_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = start_server(tmp_path / "data", 'object_store_url = "memory://sageport-test"\n')
    yield proc
    proc.stop()


def test_round_trip_on_a_memory_store(memory_server: ServerProcess, tmp_path: Path) -> None:
    s3: Any = memory_server.client("s3")
    s3.create_bucket(Bucket="mem")
    body = b"hello fsspec"
    put = s3.put_object(
        Bucket="mem", Key="dir/a.txt", Body=body, ContentType="text/plain", Metadata={"k": "v"}
    )
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket="mem", Key="dir/a.txt")
    assert (got["Body"].read(), got["ContentType"], got["Metadata"]) == (
        body,
        "text/plain",
        {"k": "v"},
    )
    assert s3.get_object(Bucket="mem", Key="dir/a.txt", Range="bytes=6-")["Body"].read() == (
        b"fsspec"
    )
    s3.copy_object(Bucket="mem", Key="copy.txt", CopySource={"Bucket": "mem", "Key": "dir/a.txt"})
    assert s3.head_object(Bucket="mem", Key="copy.txt")["Metadata"] == {"k": "v"}
    listed = s3.list_objects_v2(Bucket="mem", Delimiter="/")
    assert [o["Key"] for o in listed["Contents"]] == ["copy.txt"]
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["dir/"]

    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(12 * MiB))
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.upload_file(str(src), "mem", "big.bin", Config=config)
    head = s3.head_object(Bucket="mem", Key="big.bin")
    data = src.read_bytes()
    parts = [data[i : i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    assert head["ETag"] == f'"{digest}-{len(parts)}"'
    assert s3.get_object(Bucket="mem", Key="big.bin")["Body"].read() == data

    out = s3.delete_objects(
        Bucket="mem",
        Delete={"Objects": [{"Key": k} for k in ("dir/a.txt", "copy.txt", "big.bin")]},
    )
    assert len(out["Deleted"]) == 3
    assert s3.list_objects_v2(Bucket="mem")["KeyCount"] == 0
    s3.delete_bucket(Bucket="mem")
    assert s3.list_buckets()["Buckets"] == []


def test_multipart_abort_and_errors_on_a_memory_store(memory_server: ServerProcess) -> None:
    s3: Any = memory_server.client("s3")
    s3.create_bucket(Bucket="mpu")
    uid = s3.create_multipart_upload(Bucket="mpu", Key="k")["UploadId"]
    etag = s3.upload_part(Bucket="mpu", Key="k", UploadId=uid, PartNumber=1, Body=b"x")["ETag"]
    assert [p["ETag"] for p in s3.list_parts(Bucket="mpu", Key="k", UploadId=uid)["Parts"]] == [
        etag
    ]
    with aws_error("BucketNotEmpty"):
        s3.delete_bucket(Bucket="mpu")
    s3.abort_multipart_upload(Bucket="mpu", Key="k", UploadId=uid)
    with aws_error("NoSuchUpload"):
        s3.list_parts(Bucket="mpu", Key="k", UploadId=uid)
    with aws_error("NoSuchKey"):
        s3.get_object(Bucket="mpu", Key="k")


def test_a_local_fsspec_store_survives_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "store"
    proc = start_server(tmp_path / "data", f'object_store_url = "local://{root}"\n')
    try:
        s3: Any = proc.client("s3")
        s3.create_bucket(Bucket="kept")
        s3.put_object(Bucket="kept", Key="deep/k.txt", Body=b"still here", Metadata={"a": "b"})
        proc.restart()
        got = proc.client("s3").get_object(Bucket="kept", Key="deep/k.txt")
        assert (got["Body"].read(), got["Metadata"]) == (b"still here", {"a": "b"})
    finally:
        proc.stop()
    # the bytes are a plain file under the URL's folder, not under the data folder
    assert (root / "kept" / "deep" / "k.txt.@d").read_bytes() == b"still here"
    assert not (tmp_path / "data" / "objects" / "kept").exists()


def test_a_training_job_reads_and_writes_through_the_fsspec_store(
    memory_server: ServerProcess,
) -> None:
    name = unique("fsspec")
    data = put_objects(memory_server, f"{name}/data", {"a.txt": b"from memory", "b/c.txt": b"!"})
    script = """
        import os
        train = os.environ["SM_CHANNEL_TRAINING"]
        with open(os.path.join(train, "a.txt")) as f:
            text = f.read()
        with open(os.path.join(train, "b", "c.txt")) as f:
            text += f.read()
        with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w") as f:
            f.write(text)
    """
    submit(memory_server, name, script, channels={"training": data})
    job = wait_completed(memory_server, name)
    assert model_files(memory_server, job)["model.txt"] == b"from memory!"


def test_objects_live_in_real_s3_through_s3fs(tmp_path: Path) -> None:
    """A moto server stands in for AWS; sageport keeps its objects there through s3fs."""
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    moto = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        real = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="moto", aws_secret_access_key="moto",
        )  # fmt: skip
        real.create_bucket(Bucket="company-data")
        real.put_object(Bucket="company-data", Key="sp/datasets/train/x.csv", Body=b"1,2\n")
        proc = start_server(
            tmp_path / "data",
            'object_store_url = "s3://company-data/sp"\n'
            f'object_store_endpoint_url = "{endpoint}"\n'
            'object_store_options = { key = "moto", secret = "moto" }\n',
        )
        try:
            s3: Any = proc.client("s3")
            # data already in S3 is served as it is
            assert s3.get_object(Bucket="datasets", Key="train/x.csv")["Body"].read() == b"1,2\n"
            s3.create_bucket(Bucket="results")
            s3.put_object(Bucket="results", Key="run 1/out.txt", Body=b"done", Metadata={"a": "b"})
            got = s3.get_object(Bucket="results", Key="run 1/out.txt")
            assert (got["Body"].read(), got["Metadata"]) == (b"done", {"a": "b"})
            assert {b["Name"] for b in s3.list_buckets()["Buckets"]} == {"datasets", "results"}
        finally:
            proc.stop()
        # and any other S3 tool sees the object under its own name
        body = real.get_object(Bucket="company-data", Key="sp/results/run 1/out.txt")["Body"]
        assert body.read() == b"done"
    finally:
        moto.stop()
