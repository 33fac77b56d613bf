"""FsspecObjectStore on fsspec's memory and local filesystems (and S3 through s3fs on a moto
server, where both are installed): what only this store does (files of other tools, the
multipart CRC32, the choice of store by URL). The contract it shares with the embedded store
is test_object_store_contract.py."""

from __future__ import annotations

import os
import uuid
import zlib
from pathlib import Path

import pytest
from storage_helpers import FSSPEC_KINDS, crc32_b64, open_store, read_all, run

from sageport.settings import Settings
from sageport.storage.fsspec_store import FsspecObjectStore
from sageport.storage.local import LocalObjectStore
from sageport.storage.multipart_sums import combine_crc32, crc32_combine
from sageport.storage.objectstore import open_object_store


@pytest.fixture(params=FSSPEC_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> FsspecObjectStore:
    s = open_store(request.param, request, tmp_path)
    assert isinstance(s, FsspecObjectStore)
    return s


def test_files_put_there_by_other_tools_are_objects(store: FsspecObjectStore) -> None:
    suffix = "" if store.io.object_store else ".@d"
    store.io.write_small(store.io.path("data", "external", "x.csv") + suffix, b"a,b\n")
    store.io.write_small(store.io.path("outside", "y.txt") + suffix, b"y")
    info = run(store.head_object("data", "external/x.csv"))
    assert info.size == 4
    assert info.etag
    assert run(read_all(run(store.get_object("data", "external/x.csv")).body)) == b"a,b\n"
    assert [o.key for o in run(store.list_objects("data")).objects] == ["external/x.csv"]
    # a top-level folder nobody created through sageport is a bucket too
    assert [b.name for b in run(store.list_buckets())] == ["data", "outside"]
    assert run(read_all(run(store.get_object("outside", "y.txt")).body)) == b"y"


def test_crc32_combine_matches_zlib() -> None:
    a, b = os.urandom(1000), os.urandom(12345)
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
    assert crc32_combine(zlib.crc32(a), 0, 0) == zlib.crc32(a)
    parts = [a, b, b"", b"x"]
    assert combine_crc32([(crc32_b64(p), len(p)) for p in parts]) == crc32_b64(b"".join(parts))


def test_open_object_store_picks_the_store_by_url(tmp_path: Path) -> None:
    default = open_object_store(Settings(data_dir=tmp_path))
    assert isinstance(default, LocalObjectStore)
    assert default.root == tmp_path / "objects"
    elsewhere = open_object_store(
        Settings(data_dir=tmp_path, object_store_url=f"file://{tmp_path}/elsewhere")
    )
    assert isinstance(elsewhere, LocalObjectStore)
    assert elsewhere.root == tmp_path / "elsewhere"
    memory = open_object_store(
        Settings(data_dir=tmp_path, object_store_url=f"memory://sp-{uuid.uuid4().hex[:8]}")
    )
    assert isinstance(memory, FsspecObjectStore)
    run(memory.create_bucket("b", "us-east-1"))
    assert [b.name for b in run(memory.list_buckets())] == ["b"]
    with pytest.raises(ValueError, match="root below"):
        open_object_store(Settings(data_dir=tmp_path, object_store_url="memory://"))


def test_s3_store_refuses_to_point_at_this_server(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        port=5757,
        object_store_url="s3://bucket/prefix",
        object_store_endpoint_url="http://127.0.0.1:5757",
    )
    with pytest.raises(ValueError, match="is this sageport server"):
        open_object_store(settings)
