"""What the object store tests share: the stores to test, bodies, and sync wrappers."""

from __future__ import annotations

import asyncio
import base64
import uuid
import zlib
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from sageport.storage.fsspec_store import FsspecObjectStore
from sageport.storage.local import LocalObjectStore
from sageport.storage.objectstore import ObjectAttrs, ObjectStore

T = TypeVar("T")
MiB = 1024 * 1024
#: the embedded store, then the fsspec store on memory, local disk and S3 (moto)
FSSPEC_KINDS = ["memory", "local", "s3"]
ALL_KINDS = ["embedded", *FSSPEC_KINDS]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read_all(body: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in body])


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def put(store: ObjectStore, key: str, data: bytes, bucket: str = "data") -> None:
    run(store.put_object(bucket, key, chunks(data), ObjectAttrs()))


def s3_store(endpoint: str) -> FsspecObjectStore:
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


def open_store(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> LocalObjectStore | FsspecObjectStore:
    """A store of ``kind`` (see :data:`ALL_KINDS`) with an empty bucket ``data``."""
    store: LocalObjectStore | FsspecObjectStore
    if kind == "embedded":
        store = LocalObjectStore(tmp_path / "objects")
    elif kind == "memory":
        fs: Any = MemoryFileSystem(global_store=False, skip_instance_cache=True)
        store = FsspecObjectStore(fs, "/sageport")
    elif kind == "local":
        store = FsspecObjectStore(LocalFileSystem(), str(tmp_path / "objects"))
    else:
        store = s3_store(request.getfixturevalue("moto_endpoint"))
    run(store.create_bucket("data", "us-east-1"))
    return store


def reopened(store: LocalObjectStore | FsspecObjectStore) -> LocalObjectStore | FsspecObjectStore:
    """A new store instance over the same storage (as after a server restart)."""
    if isinstance(store, LocalObjectStore):
        return LocalObjectStore(store.root)
    return FsspecObjectStore(store.io.fs, store.io.root)
