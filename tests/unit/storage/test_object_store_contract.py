"""The ObjectStore contract, on every store: the embedded one (LocalObjectStore) and the fsspec
one on memory, local disk and S3 through s3fs on a moto server (where both are installed)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import pytest
from storage_helpers import (
    ALL_KINDS,
    MiB,
    chunks,
    crc32_b64,
    open_store,
    put,
    read_all,
    reopened,
    run,
)

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
from sageport.storage.fsspec_store import FsspecObjectStore
from sageport.storage.local import LocalObjectStore
from sageport.storage.objectstore import ObjectAttrs

Store = LocalObjectStore | FsspecObjectStore


@pytest.fixture(params=ALL_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return open_store(request.param, request, tmp_path)


def test_put_get_roundtrip_with_etag_and_attrs(store: Store) -> None:
    attrs = ObjectAttrs("text/plain", {"owner": "me"}, {"CacheControl": "no-cache"})
    info = run(store.put_object("data", "a/b.txt", chunks(b"hello ", b"world"), attrs))
    assert info.etag == hashlib.md5(b"hello world").hexdigest()
    assert info.size == 11
    assert info.checksums["CRC32"] == crc32_b64(b"hello world")
    head = run(store.head_object("data", "a/b.txt"))
    assert (head.attrs, head.etag, head.last_modified) == (attrs, info.etag, info.last_modified)
    opened = run(store.get_object("data", "a/b.txt"))
    assert run(read_all(opened.body)) == b"hello world"
    assert opened.info.attrs == attrs
    ranged = run(store.get_object("data", "a/b.txt", 2, 6))
    assert (ranged.start, ranged.end) == (2, 6)
    assert run(read_all(ranged.body)) == b"llo w"


def test_range_read(store: Store) -> None:
    put(store, "k", bytes(range(100)))
    opened = run(store.get_object("data", "k", 10, 19))
    assert (opened.start, opened.end) == (10, 19)
    assert run(read_all(opened.body)) == bytes(range(10, 20))


def test_missing_bucket_and_key(store: Store) -> None:
    with pytest.raises(NoSuchBucket):
        run(store.head_bucket("nope"))
    with pytest.raises(NoSuchBucket):
        run(store.head_object("nobucket", "k"))
    with pytest.raises(NoSuchKey):
        run(store.head_object("data", "nokey"))
    with pytest.raises(NoSuchKey):
        run(store.get_object("data", "nokey"))
    with pytest.raises(BucketAlreadyOwnedByYou):
        run(store.create_bucket("data", "us-east-1"))
    run(store.delete_object("data", "nokey"))  # S3: deleting a missing key succeeds


def test_failed_seal_leaves_no_object_and_no_temp_file(store: Store) -> None:
    def seal() -> Mapping[str, str]:
        raise BadDigest()

    with pytest.raises(BadDigest):
        run(store.put_object("data", "bad", chunks(b"x" * 1000), ObjectAttrs(), seal=seal))
    with pytest.raises(NoSuchKey):
        run(store.head_object("data", "bad"))
    assert run(store.list_objects("data")).objects == []
    if isinstance(store, LocalObjectStore):
        assert list(store.tmp.iterdir()) == []
        assert [p.name for p in (store.root / "data").iterdir()] == ["@bucket.json"]
    else:
        assert store.io.find(store.io.path(".sageport", "tmp")) == {}


def test_reader_keeps_the_version_it_opened(store: Store) -> None:
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
def test_awkward_keys_stay_inside_the_bucket(store: Store, key: str) -> None:
    put(store, key, key.encode())
    if isinstance(store, LocalObjectStore):
        path = store.local_path("data", key)
        assert path is not None
        assert (store.root / "data").resolve() in path.resolve().parents
    else:
        bucket_dir = store.io.path("data")
        assert all(p.startswith(bucket_dir + "/") for p in store.io.find(bucket_dir))
    assert run(store.head_object("data", key)).key == key
    assert run(read_all(run(store.get_object("data", key)).body)) == key.encode()
    assert [o.key for o in run(store.list_objects("data")).objects] == [key]
    run(store.delete_object("data", key))
    assert run(store.list_objects("data")).objects == []


def test_object_and_folder_of_same_name_coexist(store: Store) -> None:
    put(store, "a", b"1")
    put(store, "a/b", b"2")
    assert [o.key for o in run(store.list_objects("data")).objects] == ["a", "a/b"]
    assert run(read_all(run(store.get_object("data", "a")).body)) == b"1"


def test_list_with_delimiter_and_pages(store: Store) -> None:
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


def test_delete_bucket_only_when_empty(store: Store) -> None:
    put(store, "k", b"1")
    with pytest.raises(BucketNotEmpty):
        run(store.delete_bucket("data"))
    run(store.delete_object("data", "k"))
    run(store.delete_bucket("data"))
    assert run(store.list_buckets()) == []
    with pytest.raises(NoSuchBucket):
        run(store.head_bucket("data"))


def test_copy_object(store: Store) -> None:
    put(store, "src", b"payload")
    info = run(store.copy_object("data", "src", "data", "dst", ObjectAttrs("text/csv")))
    assert info.etag == hashlib.md5(b"payload").hexdigest()
    assert run(store.head_object("data", "dst")).attrs.content_type == "text/csv"
    run(store.delete_object("data", "src"))
    assert run(read_all(run(store.get_object("data", "dst")).body)) == b"payload"
    kept = run(store.copy_object("data", "dst", "data", "again", None))
    assert kept.attrs.content_type == "text/csv"


def test_multipart_complete(store: Store) -> None:
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
    assert info.checksums["CRC32"] == crc32_b64(p1 + p2)
    assert run(read_all(run(store.get_object("data", "big")).body)) == p1 + p2
    head = run(store.head_object("data", "big"))
    assert (head.etag, head.attrs.content_type) == (info.etag, "application/x-tar")
    with pytest.raises(NoSuchUpload):
        run(store.list_parts("data", "big", upload.upload_id))
    assert run(store.list_uploads("data")) == []


def test_multipart_errors(store: Store) -> None:
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


def test_state_survives_a_new_store_instance(store: Store) -> None:
    run(store.create_bucket("other", "eu-west-1"))
    attrs = ObjectAttrs("a/b", {"k": "v"})
    run(store.put_object("other", "persist/me", chunks(b"data"), attrs))
    again = reopened(store)
    buckets = [(b.name, b.region) for b in run(again.list_buckets())]
    assert buckets == [("data", "us-east-1"), ("other", "eu-west-1")]
    assert run(again.head_object("other", "persist/me")).attrs == attrs
    assert run(read_all(run(again.get_object("other", "persist/me")).body)) == b"data"
    path = again.local_path("other", "persist/me")
    if isinstance(store, LocalObjectStore) or store.io.local:
        assert path is not None
        assert path.read_bytes() == b"data"
    else:
        assert path is None  # not on local disk: jobs get a copy instead of a hard link
