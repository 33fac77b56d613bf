"""Opening the embedded store empties ``.tmp``, and keeps everything else.

What lies in ``.tmp`` when a store is opened was being written when a server stopped (one
server owns a data folder): a PUT's body, a record, a part in flight. Objects and multipart
uploads in progress (``.uploads``: records and parts a client may still complete) survive.
"""

from __future__ import annotations

from pathlib import Path

from storage_helpers import MiB, chunks, put, read_all, run

from sageport.storage.local import LocalObjectStore
from sageport.storage.objectstore import ObjectAttrs


def test_opening_the_store_removes_partial_writes_but_keeps_objects_and_uploads(
    tmp_path: Path,
) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    run(store.create_bucket("data", "us-east-1"))
    put(store, "kept/object.bin", b"kept")
    upload = run(store.create_upload("data", "big.bin", ObjectAttrs()))
    part = run(store.upload_part("data", "big.bin", upload.upload_id, 1, chunks(b"a" * 5 * MiB)))
    # what a server killed mid-write leaves: a body, a record, a folder
    (store.tmp / "0123abcd").write_bytes(b"half a body")
    (store.tmp / "feed.json").write_text('{"half": ')
    (store.tmp / "stray").mkdir()
    (store.tmp / "stray" / "x").write_bytes(b"x")

    again = LocalObjectStore(store.root)

    assert list(again.tmp.iterdir()) == []
    got = run(again.get_object("data", "kept/object.bin"))
    assert run(read_all(got.body)) == b"kept"
    parts = run(again.list_parts("data", "big.bin", upload.upload_id))
    assert [(p.number, p.etag) for p in parts] == [(1, part.etag)]
    tail = run(again.upload_part("data", "big.bin", upload.upload_id, 2, chunks(b"b")))
    info = run(
        again.complete_upload("data", "big.bin", upload.upload_id, [(1, part.etag), (2, tail.etag)])
    )
    assert info.size == 5 * MiB + 1


def test_a_store_with_no_tmp_folder_yet_opens(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "fresh")
    assert store.clean_tmp() == []
