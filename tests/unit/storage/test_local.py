"""LocalObjectStore on a temp folder: what only the embedded store does (hard links, its key
encoding, the listing rules it is built on). The contract it shares with the fsspec store is
test_object_store_contract.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from storage_helpers import put, run

from sageport.storage import keys
from sageport.storage.listing import paginate
from sageport.storage.local import LocalObjectStore


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    s = LocalObjectStore(tmp_path / "objects")
    run(s.create_bucket("data", "us-east-1"))
    return s


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


def test_key_encoding_roundtrip_and_distinctness() -> None:
    samples = ["a", "a/b", "a/", "", "/", "..", "a/../b", "%2E", "a+b", "y" * 700, "é/" * 3]
    encoded = [tuple(keys.encode_key(k)) for k in samples]
    assert len(set(encoded)) == len(samples)
    for key in samples:
        parts = keys.encode_key(key)
        assert keys.decode_parts(parts) == key
        assert all(0 < len(p) <= keys.MAX_NAME + 1 and p not in (".", "..") for p in parts)


def test_paginate_skips_prefix_already_returned() -> None:
    page = paginate(["a/1", "a/2", "b"], "", "/", "a/", 10)
    assert page.keys == ["b"]
    assert page.common_prefixes == []
