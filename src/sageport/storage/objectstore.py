"""The object store interface: what the S3 protocol and the jobs need from storage.

The S3 wire protocol (``sageport.api.s3``), the job runner's staging and uploads
(``scheduler``, through ``storage.transfer``) and the endpoints' model downloads talk to objects
only through :class:`ObjectStore`; :class:`~sageport.storage.local.LocalObjectStore` keeps them
on local disk under ``settings.objects_dir``, ``storage.fsspec_store`` on any fsspec filesystem.
Bodies move as async byte streams, so memory never grows with object size. Errors are the S3
errors of :mod:`sageport.errors` (``NoSuchBucket``, ``NoSuchKey``, ...), so the protocol layer
only renders them.
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sageport.errors import StorageFull
from sageport.settings import Settings

#: Called once the body is consumed and before the object becomes visible. It returns the
#: checksums the client declared (algorithm, e.g. ``"SHA256"`` → base64 value) after it
#: verified them, or raises to abort the write (nothing is then stored).
Seal = Callable[[], Mapping[str, str]]


@dataclass(frozen=True)
class BucketInfo:
    name: str
    created: datetime
    region: str


@dataclass(frozen=True)
class ObjectAttrs:
    """What a client sets on an object besides its bytes."""

    content_type: str = "binary/octet-stream"
    #: user metadata (``x-amz-meta-*`` without the prefix, names lower-case)
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: stored representation headers: Content-Encoding, Content-Disposition, Cache-Control,
    #: Content-Language, Expires, x-amz-server-side-encryption ... (returned verbatim)
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    #: the S3 ETag without quotes: md5 hex, or ``md5-of-md5s-N`` for multipart objects
    etag: str
    last_modified: datetime
    attrs: ObjectAttrs
    #: algorithm (``CRC32``, ``SHA256`` ...) → base64 value; CRC32 is always present
    checksums: Mapping[str, str] = field(default_factory=dict)
    parts_count: int | None = None


@dataclass(frozen=True)
class ObjectListing:
    objects: list[ObjectInfo]
    common_prefixes: list[str]
    is_truncated: bool
    #: the last key or common prefix returned; the next page starts after it
    last: str | None


@dataclass(frozen=True)
class PartInfo:
    number: int
    etag: str
    size: int
    last_modified: datetime
    checksums: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UploadInfo:
    upload_id: str
    bucket: str
    key: str
    initiated: datetime
    attrs: ObjectAttrs


@dataclass(frozen=True)
class ObjectRange:
    """An object opened for reading: its info and the byte range ``[start, end]`` to send."""

    info: ObjectInfo
    start: int
    end: int  # inclusive; ``-1`` for an empty object
    #: the bytes, in pieces; the local store's are views of the mapped file (no copy)
    body: AsyncIterator[bytes | memoryview]


#: the errnos of a full disk: no space left, or the user's disk quota used up
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def disk_space(where: Path | str) -> Iterator[None]:
    """Turn a full disk under ``where`` into :class:`~sageport.errors.StorageFull`.

    The one place the stores map ``ENOSPC``/``EDQUOT``; what they wrap must leave nothing
    half-written behind when it raises (the old object stays, no temp file stays), so the
    error can say that nothing was stored.
    """
    try:
        yield
    except OSError as exc:
        if exc.errno not in NO_SPACE:
            raise
        raise StorageFull(
            f"No space left on device in the object store at {where}: nothing was stored. "
            "Free space there (or raise the disk quota) and retry."
        ) from exc


def byte_range(size: int, first: int | None, last: int | None) -> tuple[int, int]:
    """The inclusive ``(start, end)`` to send of an object of ``size`` bytes, for the resolved
    range ``first``-``last`` (None: from the start, to the end); ``end`` is clamped to the
    object (``-1`` for an empty one)."""
    start = 0 if first is None else first
    end = size - 1 if last is None else min(last, size - 1)
    return start, end


class ObjectStore(Protocol):
    """Buckets and objects; multipart uploads are assembled by the store."""

    async def list_buckets(self) -> list[BucketInfo]: ...
    async def create_bucket(self, bucket: str, region: str) -> BucketInfo: ...
    async def head_bucket(self, bucket: str) -> BucketInfo: ...
    async def delete_bucket(self, bucket: str) -> None: ...

    async def put_object(
        self,
        bucket: str,
        key: str,
        body: AsyncIterable[bytes],
        attrs: ObjectAttrs,
        *,
        seal: Seal | None = None,
    ) -> ObjectInfo: ...
    async def head_object(self, bucket: str, key: str) -> ObjectInfo: ...
    async def get_object(
        self, bucket: str, key: str, first: int | None = None, last: int | None = None
    ) -> ObjectRange:
        """Open ``key``; ``first``/``last`` are the resolved inclusive byte range (None: all)."""
        ...

    async def delete_object(self, bucket: str, key: str) -> None:
        """Delete ``key``; deleting a missing key succeeds (as in S3)."""
        ...

    async def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        after: str = "",
        max_keys: int = 1000,
    ) -> ObjectListing: ...
    async def copy_object(
        self, src_bucket: str, src_key: str, bucket: str, key: str, attrs: ObjectAttrs | None
    ) -> ObjectInfo:
        """Copy; ``attrs`` None keeps the source's (S3's ``MetadataDirective: COPY``)."""
        ...

    async def create_upload(self, bucket: str, key: str, attrs: ObjectAttrs) -> UploadInfo: ...
    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        body: AsyncIterable[bytes],
        *,
        seal: Seal | None = None,
    ) -> PartInfo: ...
    async def upload_part_copy(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        src_bucket: str,
        src_key: str,
        first: int | None = None,
        last: int | None = None,
    ) -> tuple[PartInfo, ObjectInfo]:
        """Make bytes ``first``-``last`` (inclusive, None: all) of an object part ``number``
        of the upload, streamed through a range read; the part and the source it copied."""
        ...

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]: ...
    async def list_uploads(self, bucket: str) -> list[UploadInfo]: ...
    async def complete_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> ObjectInfo:
        """Assemble the listed ``(part number, etag)`` pairs into the object."""
        ...

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None: ...

    def local_path(self, bucket: str, key: str) -> Path | None:
        """The file holding the object's bytes, for hard-linking into job folders.

        The file is never modified in place (an overwrite replaces it), so a hard link keeps
        the version it was made from. ``None`` for stores not on local disk.
        """
        ...


def open_object_store(settings: Settings) -> ObjectStore:
    """The store ``settings.object_store_url`` names (see :class:`~sageport.settings.Settings`).

    Empty or ``file://``: the embedded store on local disk (``file:///path`` puts it there
    instead of ``objects_dir``). Anything else is an fsspec URL, served by
    :class:`~sageport.storage.fsspec_store.FsspecObjectStore`; fsspec and the backend's
    package (s3fs for ``s3://``) are imported only then.
    """
    url = settings.object_store_url
    if not url or url.startswith("file://"):
        from sageport.storage.local import LocalObjectStore

        folder = url[len("file://") :] if url else ""
        return LocalObjectStore(Path(folder) if folder else settings.objects_dir)
    from sageport.storage.fsspec_io import open_filesystem
    from sageport.storage.fsspec_store import FsspecObjectStore

    options = dict(settings.object_store_options)
    if url.startswith(("s3://", "s3a://")):
        options = _s3_options(settings, options)
    fs, root = open_filesystem(url, options)
    return FsspecObjectStore(fs, root, region=settings.region)


def _s3_options(settings: Settings, options: dict[str, object]) -> dict[str, object]:
    """s3fs options: the endpoint from settings, fresh listings, and never this server itself."""
    import os

    if settings.object_store_endpoint_url:
        options.setdefault("endpoint_url", settings.object_store_endpoint_url)
    # other tools may write the bucket too: always ask S3 rather than a listing cache
    options.setdefault("use_listings_cache", False)
    client = options.get("client_kwargs")
    endpoint = str(
        options.get("endpoint_url")
        or (client.get("endpoint_url") if isinstance(client, dict) else None)
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or ""
    )
    if endpoint and _same_server(endpoint, settings):
        raise ValueError(
            f"object_store_url {settings.object_store_url!r} would reach S3 at {endpoint}, which "
            "is this sageport server (AWS_ENDPOINT_URL from `sageport env`?); set "
            "object_store_endpoint_url to the real S3 endpoint (https://s3.amazonaws.com for AWS)"
        )
    return options


def _same_server(endpoint: str, settings: Settings) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    local = {"127.0.0.1", "localhost", "::1", "0.0.0.0", settings.host}
    return parts.port == settings.port and (parts.hostname or "") in local
