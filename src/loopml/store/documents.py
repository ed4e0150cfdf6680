"""Small named documents beside the objects of a remote (dataset records and the like)."""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any, Protocol

from loopml.store.errors import StoreError
from loopml.store.fsutil import atomic_write_bytes
from loopml.store.registry import url_scheme

__all__ = ["DocumentStore", "FolderDocuments", "FsspecDocuments", "open_documents"]


def _check_relative(relative: str) -> str:
    parts = relative.split("/")
    if relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StoreError(f"document name {relative!r} would leave the remote's folder")
    return relative


class DocumentStore(Protocol):
    """Read, write and list small documents by relative name."""

    def read(self, relative: str) -> bytes | None:
        """The document's bytes, or ``None`` when it does not exist."""
        ...

    def write(self, relative: str, data: bytes) -> None:
        """Replace the document atomically."""
        ...

    def list(self, folder: str) -> list[str]:
        """Names of the documents directly in ``folder``."""
        ...


class FolderDocuments:
    """Documents as files under a local folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, relative: str) -> bytes | None:
        """Read a document."""
        try:
            return (self.root / _check_relative(relative)).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, relative: str, data: bytes) -> None:
        """Write through a temporary file and a rename."""
        atomic_write_bytes(self.root / _check_relative(relative), data)

    def list(self, folder: str) -> list[str]:
        """Document names in ``folder``."""
        path = self.root / _check_relative(folder)
        if not path.is_dir():
            return []
        return sorted(p.name for p in path.iterdir() if p.is_file() and not p.name.startswith("."))


class FsspecDocuments:
    """Documents as keys under a prefix of an fsspec file system (one PUT each: atomic)."""

    def __init__(self, url: str, storage_options: dict[str, Any]) -> None:
        import fsspec

        protocol, _, path = url.rstrip("/").partition("://")
        self.fs = fsspec.filesystem(protocol, **storage_options)
        self.root = path.strip("/")

    def read(self, relative: str) -> bytes | None:
        """Read a document."""
        try:
            return bytes(self.fs.cat_file(posixpath.join(self.root, _check_relative(relative))))
        except FileNotFoundError:
            return None

    def write(self, relative: str, data: bytes) -> None:
        """Write a document in one PUT."""
        self.fs.pipe_file(posixpath.join(self.root, _check_relative(relative)), data)

    def list(self, folder: str) -> list[str]:
        """Document names in ``folder``."""
        prefix = posixpath.join(self.root, _check_relative(folder))
        try:
            found = self.fs.ls(prefix, detail=True, refresh=True)
        except FileNotFoundError:
            return []
        # Sub-folders (S3 common prefixes) are not documents, as in ``FolderDocuments``.
        names = (
            posixpath.basename(str(info["name"]).rstrip("/"))
            for info in found
            if info.get("type") == "file"
        )
        return sorted(name for name in names if name and not name.startswith("."))


def open_documents(url: str, *, s3_endpoint_url: str | None = None) -> DocumentStore:
    """The document store rooted at ``url``."""
    if url_scheme(url) == "file":
        return FolderDocuments(Path(url.removeprefix("file://")).expanduser())
    options: dict[str, Any] = {}
    if url_scheme(url) == "s3" and s3_endpoint_url:
        options["endpoint_url"] = s3_endpoint_url
    return FsspecDocuments(url, options)
