"""FsspecObjectStore on fsspec's memory and local filesystems (and S3 through s3fs on a moto
server, where both are installed): the same contract as the embedded store."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import uuid
import zlib
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from sageport.errors import (
    BadDigest,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    EntityTooSmall,
    InvalidPart,
    InvalidPartOrder,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
)
from sageport.settings import Settings
from sageport.storage.fsspec_store import FsspecObjectStore
from sageport.storage.local import LocalObjectStore
from sageport.storage.multipart_sums import combine_crc32, crc32_combine
from sageport.storage.objectstore import ObjectAttrs, open_object_store

T = TypeVar("T")
MiB = 1024 * 1024


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read_all(body: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in body])


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _s3_store(endpoint: str) -> FsspecObjectStore:
    import boto3
    import s3fs

    bucket = f"real-{uuid.uuid4().hex[:8]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    ).create_bucket(Bucket=bucket)
    fs = s3fs.S3FileSystem(
        endpoint_url=endpoint, key="test", secret="test", use_listings_cache=False
    )
    return FsspecObjectStore(fs, f"{bucket}/prefix")


@pytest.fixture(params=["memory", "local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> FsspecObjectStore:
    if request.param == "memory":
        fs: Any = MemoryFileSystem(global_store=False, skip_instance_cache=True)
        s = FsspecObjectStore(fs, "/sageport")
    elif request.param == "local":
        s = FsspecObjectStore(LocalFileSystem(), str(tmp_path / "objects"))
    else:
        s = _s3_store(request.getfixturevalue("moto_endpoint"))
    run(s.create_bucket("data", "us-east-1"))
    return s


def put(store: FsspecObjectStore, key: str, data: bytes) -> None:
    run(store.put_object("data", key, chunks(data), ObjectAttrs()))


def test_put_get_roundtrip_with_etag_and_attrs(store: FsspecObjectStore) -> None:
    attrs = ObjectAttrs("text/plain", {"owner": "me"}, {"CacheControl": "no-cache"})
    info = run(store.put_object("data", "a/b.txt", chunks(b"hello ", b"world"), attrs))
    assert info.etag == hashlib.md5(b"hello world").hexdigest()
    assert info.size == 11
    assert (
        info.checksums["CRC32"]
        == base64.b64encode(zlib.crc32(b"hello world").to_bytes(4, "big")).decode()
    )
    head = run(store.head_object("data", "a/b.txt"))
    assert (head.attrs, head.etag, head.last_modified) == (attrs, info.etag, info.last_modified)
    opened = run(store.get_object("data", "a/b.txt"))
    assert run(read_all(opened.body)) == b"hello world"
    assert opened.info.attrs == attrs
    ranged = run(store.get_object("data", "a/b.txt", 2, 6))
    assert (ranged.start, ranged.end) == (2, 6)
    assert run(read_all(ranged.body)) == b"llo w"


def test_missing_bucket_and_key(store: FsspecObjectStore) -> None:
    with pytest.raises(NoSuchBucket):
        run(store.head_object("nobucket", "k"))
    with pytest.raises(NoSuchKey):
        run(store.head_object("data", "nokey"))
    with pytest.raises(NoSuchKey):
        run(store.get_object("data", "nokey"))
    with pytest.raises(BucketAlreadyOwnedByYou):
        run(store.create_bucket("data", "us-east-1"))
    run(store.delete_object("data", "nokey"))  # S3: deleting a missing key succeeds


def test_failed_seal_leaves_no_object_and_no_temp_file(store: FsspecObjectStore) -> None:
    def seal() -> dict[str, str]:
        raise BadDigest()

    with pytest.raises(BadDigest):
        run(store.put_object("data", "bad", chunks(b"x" * 1000), ObjectAttrs(), seal=seal))
    with pytest.raises(NoSuchKey):
        run(store.head_object("data", "bad"))
    assert run(store.list_objects("data")).objects == []
    assert store.io.find(store.io.path(".sageport", "tmp")) == {}


def test_reader_keeps_the_version_it_opened(store: FsspecObjectStore) -> None:
    put(store, "k", b"old" * 1000)

    async def scenario() -> tuple[bytes, bytes]:
        opened = await store.get_object("data", "k")
        await store.put_object("data", "k", chunks(b"new" * 500), ObjectAttrs())
        try:
            old = await read_all(opened.body)
        except OSError:  # s3fs refuses to read a changed object (If-Match) rather than mix
            old = b"old" * 1000
        fresh = await store.get_object("data", "k")
        return old, await read_all(fresh.body)

    old, new = run(scenario())
    assert old == b"old" * 1000
    assert new == b"new" * 500
    assert run(store.head_object("data", "k")).etag == hashlib.md5(b"new" * 500).hexdigest()


@pytest.mark.parametrize(
    "key", ["../../etc/passwd", "a/../b", "..", ".", "/leading", "a//b", "sp ace/ü/%41", "x" * 1024]
)
def test_awkward_keys_stay_inside_the_bucket(store: FsspecObjectStore, key: str) -> None:
    put(store, key, key.encode())
    bucket_dir = store.io.path("data")
    assert all(p.startswith(bucket_dir + "/") for p in store.io.find(bucket_dir))
    assert run(store.head_object("data", key)).key == key
    assert run(read_all(run(store.get_object("data", key)).body)) == key.encode()
    assert [o.key for o in run(store.list_objects("data")).objects] == [key]
    run(store.delete_object("data", key))
    assert run(store.list_objects("data")).objects == []


def test_object_and_folder_of_same_name_coexist(store: FsspecObjectStore) -> None:
    put(store, "a", b"1")
    put(store, "a/b", b"2")
    assert [o.key for o in run(store.list_objects("data")).objects] == ["a", "a/b"]
    assert run(read_all(run(store.get_object("data", "a")).body)) == b"1"


def test_list_with_delimiter_and_pages(store: FsspecObjectStore) -> None:
    for key in ["a/1", "a/2", "b", "c/x/1", "c/y", "d"]:
        put(store, key, b".")
    page = run(store.list_objects("data", delimiter="/", max_keys=2))
    assert page.common_prefixes == ["a/"]
    assert [o.key for o in page.objects] == ["b"]
    assert page.is_truncated
    assert page.last == "b"
    page = run(store.list_objects("data", delimiter="/", after="b", max_keys=2))
    assert page.common_prefixes == ["c/"]
    assert [o.key for o in page.objects] == ["d"]
    assert not page.is_truncated
    sub = run(store.list_objects("data", prefix="c/", delimiter="/"))
    assert sub.common_prefixes == ["c/x/"]
    assert [o.key for o in sub.objects] == ["c/y"]
    assert sub.objects[0].etag == hashlib.md5(b".").hexdigest()


def test_delete_bucket_only_when_empty(store: FsspecObjectStore) -> None:
    put(store, "k", b"1")
    with pytest.raises(BucketNotEmpty):
        run(store.delete_bucket("data"))
    run(store.delete_object("data", "k"))
    run(store.delete_bucket("data"))
    assert run(store.list_buckets()) == []
    with pytest.raises(NoSuchBucket):
        run(store.head_bucket("data"))


def test_copy_object(store: FsspecObjectStore) -> None:
    put(store, "src", b"payload")
    info = run(store.copy_object("data", "src", "data", "dst", ObjectAttrs("text/csv")))
    assert info.etag == hashlib.md5(b"payload").hexdigest()
    assert run(store.head_object("data", "dst")).attrs.content_type == "text/csv"
    run(store.delete_object("data", "src"))
    assert run(read_all(run(store.get_object("data", "dst")).body)) == b"payload"
    kept = run(store.copy_object("data", "dst", "data", "again", None))
    assert kept.attrs.content_type == "text/csv"


def test_multipart_complete(store: FsspecObjectStore) -> None:
    upload = run(store.create_upload("data", "big", ObjectAttrs("application/x-tar")))
    p1 = os.urandom(5 * MiB)
    p2 = b"b" * 100
    e1 = run(store.upload_part("data", "big", upload.upload_id, 1, chunks(p1))).etag
    # a re-sent part replaces the first one
    run(store.upload_part("data", "big", upload.upload_id, 2, chunks(b"first try")))
    e2 = run(store.upload_part("data", "big", upload.upload_id, 2, chunks(p2))).etag
    assert [p.number for p in run(store.list_parts("data", "big", upload.upload_id))] == [1, 2]
    assert [u.upload_id for u in run(store.list_uploads("data"))] == [upload.upload_id]
    info = run(store.complete_upload("data", "big", upload.upload_id, [(1, e1), (2, f'"{e2}"')]))
    digest = hashlib.md5(bytes.fromhex(e1) + bytes.fromhex(e2)).hexdigest()
    assert info.etag == f"{digest}-2"
    assert info.parts_count == 2
    assert info.size == len(p1) + len(p2)
    whole = zlib.crc32(p1 + p2).to_bytes(4, "big")
    assert info.checksums["CRC32"] == base64.b64encode(whole).decode()
    assert run(read_all(run(store.get_object("data", "big")).body)) == p1 + p2
    head = run(store.head_object("data", "big"))
    assert (head.etag, head.attrs.content_type) == (info.etag, "application/x-tar")
    with pytest.raises(NoSuchUpload):
        run(store.list_parts("data", "big", upload.upload_id))
    assert run(store.list_uploads("data")) == []


def test_multipart_errors(store: FsspecObjectStore) -> None:
    uid = run(store.create_upload("data", "k", ObjectAttrs())).upload_id
    e1 = run(store.upload_part("data", "k", uid, 1, chunks(b"small"))).etag
    e2 = run(store.upload_part("data", "k", uid, 2, chunks(b"tail"))).etag
    with pytest.raises(EntityTooSmall):
        run(store.complete_upload("data", "k", uid, [(1, e1), (2, e2)]))
    with pytest.raises(InvalidPartOrder):
        run(store.complete_upload("data", "k", uid, [(2, e2), (1, e1)]))
    with pytest.raises(InvalidPart):
        run(store.complete_upload("data", "k", uid, [(1, "0" * 32)]))
    with pytest.raises(BucketNotEmpty):
        run(store.delete_bucket("data"))
    run(store.abort_upload("data", "k", uid))
    with pytest.raises(NoSuchUpload):
        run(store.abort_upload("data", "k", uid))
    with pytest.raises(NoSuchUpload):
        run(store.list_parts("data", "k", "../../etc"))
    with pytest.raises(NoSuchKey):
        run(store.head_object("data", "k"))


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


def test_state_survives_a_new_store_instance(tmp_path: Path) -> None:
    first = FsspecObjectStore(LocalFileSystem(), str(tmp_path / "objects"))
    run(first.create_bucket("data", "eu-west-1"))
    run(first.put_object("data", "persist/me", chunks(b"data"), ObjectAttrs("a/b", {"k": "v"})))
    again = FsspecObjectStore(LocalFileSystem(), str(tmp_path / "objects"))
    assert [(b.name, b.region) for b in run(again.list_buckets())] == [("data", "eu-west-1")]
    assert run(again.head_object("data", "persist/me")).attrs == ObjectAttrs("a/b", {"k": "v"})
    assert run(read_all(run(again.get_object("data", "persist/me")).body)) == b"data"
    path = again.local_path("data", "persist/me")
    assert path is not None
    assert path.read_bytes() == b"data"


def test_crc32_combine_matches_zlib() -> None:
    a, b = os.urandom(1000), os.urandom(12345)
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
    assert crc32_combine(zlib.crc32(a), 0, 0) == zlib.crc32(a)
    parts = [a, b, b"", b"x"]
    b64 = [(base64.b64encode(zlib.crc32(p).to_bytes(4, "big")).decode(), len(p)) for p in parts]
    expected = base64.b64encode(zlib.crc32(b"".join(parts)).to_bytes(4, "big")).decode()
    assert combine_crc32(b64) == expected


def test_open_object_store_picks_the_store_by_url(tmp_path: Path) -> None:
    assert isinstance(open_object_store(Settings(data_dir=tmp_path)), LocalObjectStore)
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
