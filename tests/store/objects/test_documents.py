"""Contract tests of the small named documents kept beside a remote's objects (folder and S3)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from loopml.store import fsutil
from loopml.store.documents import DocumentStore, open_documents
from loopml.store.errors import StoreError
from loopml.store.fsutil import atomic_write_bytes


@pytest.fixture(params=["folder", pytest.param("s3", marks=pytest.mark.s3)])
def documents(request: pytest.FixtureRequest, tmp_path: Path) -> DocumentStore:
    if request.param == "folder":
        return open_documents(str(tmp_path / "remote"))
    bucket = request.getfixturevalue("s3_bucket")
    return open_documents(f"{bucket}/remote", s3_endpoint_url=request.getfixturevalue("s3_server"))


def test_write_read_list(documents: DocumentStore) -> None:
    assert documents.list("datasets") == []
    assert documents.read("datasets/a.json") is None
    documents.write("datasets/b.json", b"two")
    documents.write("datasets/a.json", b"one")
    documents.write("datasets/a.json", b"one, again")
    documents.write("datasets/nested/c.json", b"deeper")
    assert documents.read("datasets/a.json") == b"one, again"
    assert documents.list("datasets") == ["a.json", "b.json"]  # folders are not documents
    assert documents.list("datasets/nested") == ["c.json"]


@pytest.mark.parametrize("name", ["../escape.json", "/abs.json", "a//b", "a/./b", ""])
def test_names_cannot_leave_the_remote(documents: DocumentStore, name: str) -> None:
    with pytest.raises(StoreError, match="leave"):
        documents.write(name, b"x")
    with pytest.raises(StoreError):
        documents.read(name)


def test_atomic_write_gives_files_the_usual_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    fsutil._umask.cache_clear()
    try:
        fresh = tmp_path / "shared" / "record.json"
        atomic_write_bytes(fresh, b"{}")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644  # not mkstemp's private 0o600
        fresh.chmod(0o640)
        atomic_write_bytes(fresh, b"{ }")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o640  # a replaced file keeps its mode
        assert fresh.read_bytes() == b"{ }"
        assert [p.name for p in fresh.parent.iterdir()] == ["record.json"]
    finally:
        os.umask(umask)
        fsutil._umask.cache_clear()
