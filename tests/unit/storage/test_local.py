"""LocalObjectStore on a temp folder: layout, atomicity, listing, multipart, key safety."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest

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
from sageport.storage import keys
from sageport.storage.listing import paginate
from sageport.storage.local import LocalObjectStore
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


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    s = LocalObjectStore(tmp_path / "objects")
    run(s.create_bucket("data", "us-east-1"))
    return s


def put(store: LocalObjectStore, key: str, data: bytes, bucket: str = "data") -> None:
    run(store.put_object(bucket, key, chunks(data), ObjectAttrs()))


def test_open_object_store_is_local_on_objects_dir(tmp_path: Path) -> None:
    store = open_object_store(Settings(data_dir=tmp_path))
    assert isinstance(store, LocalObjectStore)
    assert store.root == tmp_path / "objects"


def test_put_get_roundtrip_with_etag_and_attrs(store: LocalObjectStore) -> None:
    attrs = ObjectAttrs("text/plain", {"owner": "me"}, {"CacheControl": "no-cache"})
    info = run(store.put_object("data", "a/b.txt", chunks(b"hello ", b"world"), attrs))
    assert info.etag == hashlib.md5(b"hello world").hexdigest()
    assert info.size == 11
    assert info.checksums["CRC32"]
    head = run(store.head_object("data", "a/b.txt"))
    assert head.attrs == attrs
    opened = run(store.get_object("data", "a/b.txt"))
    assert run(read_all(opened.body)) == b"hello world"


def test_range_read(store: LocalObjectStore) -> None:
    put(store, "k", bytes(range(100)))
    opened = run(store.get_object("data", "k", 10, 19))
    assert (opened.start, opened.end) == (10, 19)
    assert run(read_all(opened.body)) == bytes(range(10, 20))


def test_missing_bucket_and_key(store: LocalObjectStore) -> None:
    with pytest.raises(NoSuchBucket):
        run(store.head_bucket("nope"))
    with pytest.raises(NoSuchKey):
        run(store.head_object("data", "missing"))
    with pytest.raises(BucketAlreadyOwnedByYou):
        run(store.create_bucket("data", "us-east-1"))


def test_failed_seal_leaves_no_object_and_no_temp_file(store: LocalObjectStore) -> None:
    def seal() -> Mapping[str, str]:
        raise BadDigest()

    with pytest.raises(BadDigest):
        run(store.put_object("data", "k", chunks(b"x" * 10), ObjectAttrs(), seal=seal))
    with pytest.raises(NoSuchKey):
        run(store.head_object("data", "k"))
    assert list(store.tmp.iterdir()) == []
    assert [p.name for p in (store.root / "data").iterdir()] == ["@bucket.json"]


def test_overwrite_keeps_hard_links_to_the_old_version(
    store: LocalObjectStore, tmp_path: Path
) -> None:
    put(store, "model.bin", b"v1")
    path = store.local_path("data", "model.bin")
    assert path is not None
    assert path.read_bytes() == b"v1"
    link = tmp_path / "job-input"
    os.link(path, link)
    put(store, "model.bin", b"v2")
    assert link.read_bytes() == b"v1"
    new_path = store.local_path("data", "model.bin")
    assert new_path is not None
    assert new_path.read_bytes() == b"v2"
    assert not path.exists()  # the old version's file was unlinked from the store


@pytest.mark.parametrize(
    "key",
    ["../../etc/passwd", "a/../b", "..", ".", "/leading", "a//b", "sp ace/ü/%41", "x" * 1024],
)
def test_awkward_keys_stay_inside_the_bucket(store: LocalObjectStore, key: str) -> None:
    put(store, key, key.encode())
    path = store.local_path("data", key)
    assert path is not None
    assert (store.root / "data").resolve() in path.resolve().parents
    assert run(store.head_object("data", key)).key == key
    listed = run(store.list_objects("data"))
    assert [o.key for o in listed.objects] == [key]
    run(store.delete_object("data", key))
    assert run(store.list_objects("data")).objects == []


def test_key_encoding_roundtrip_and_distinctness() -> None:
    samples = ["a", "a/b", "a/", "", "/", "..", "a/../b", "%2E", "a+b", "y" * 700, "é/" * 3]
    encoded = [tuple(keys.encode_key(k)) for k in samples]
    assert len(set(encoded)) == len(samples)
    for key in samples:
        parts = keys.encode_key(key)
        assert keys.decode_parts(parts) == key
        assert all(0 < len(p) <= keys.MAX_NAME + 1 and p not in (".", "..") for p in parts)


def test_object_and_folder_of_same_name_coexist(store: LocalObjectStore) -> None:
    put(store, "a", b"1")
    put(store, "a/b", b"2")
    assert [o.key for o in run(store.list_objects("data")).objects] == ["a", "a/b"]


def test_list_with_delimiter_and_pages(store: LocalObjectStore) -> None:
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


def test_paginate_skips_prefix_already_returned() -> None:
    page = paginate(["a/1", "a/2", "b"], "", "/", "a/", 10)
    assert page.keys == ["b"]
    assert page.common_prefixes == []


def test_delete_bucket_only_when_empty(store: LocalObjectStore) -> None:
    put(store, "k", b"1")
    with pytest.raises(BucketNotEmpty):
        run(store.delete_bucket("data"))
    run(store.delete_object("data", "k"))
    run(store.delete_bucket("data"))
    assert run(store.list_buckets()) == []


def test_copy_object(store: LocalObjectStore) -> None:
    put(store, "src", b"payload")
    info = run(store.copy_object("data", "src", "data", "dst", ObjectAttrs("text/csv")))
    assert info.etag == hashlib.md5(b"payload").hexdigest()
    assert run(store.head_object("data", "dst")).attrs.content_type == "text/csv"
    run(store.delete_object("data", "src"))
    assert run(read_all(run(store.get_object("data", "dst")).body)) == b"payload"


def test_multipart_complete(store: LocalObjectStore) -> None:
    upload = run(store.create_upload("data", "big", ObjectAttrs("application/x-tar")))
    p1 = b"a" * (5 * MiB)
    p2 = b"b" * 100
    e1 = run(store.upload_part("data", "big", upload.upload_id, 1, chunks(p1))).etag
    e2 = run(store.upload_part("data", "big", upload.upload_id, 2, chunks(p2))).etag
    assert [p.number for p in run(store.list_parts("data", "big", upload.upload_id))] == [1, 2]
    info = run(store.complete_upload("data", "big", upload.upload_id, [(1, e1), (2, f'"{e2}"')]))
    digest = hashlib.md5(bytes.fromhex(e1) + bytes.fromhex(e2)).hexdigest()
    assert info.etag == f"{digest}-2"
    assert info.size == len(p1) + len(p2)
    assert run(read_all(run(store.get_object("data", "big")).body)) == p1 + p2
    assert run(store.head_object("data", "big")).attrs.content_type == "application/x-tar"
    with pytest.raises(NoSuchUpload):
        run(store.list_parts("data", "big", upload.upload_id))


def test_multipart_errors(store: LocalObjectStore) -> None:
    upload = run(store.create_upload("data", "k", ObjectAttrs()))
    uid = upload.upload_id
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


def test_state_survives_a_new_store_instance(store: LocalObjectStore) -> None:
    put(store, "persist/me", b"data")
    again = LocalObjectStore(store.root)
    assert [b.name for b in run(again.list_buckets())] == ["data"]
    assert run(read_all(run(again.get_object("data", "persist/me")).body)) == b"data"
