"""Remotes: named object stores that ``push`` and ``pull`` exchange objects with.

A remote is configured in ``loopml.toml`` (committed, so a fresh clone knows where its data
lives) and mirrored in the ``remotes`` table, which also records when it was last used.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass
from pathlib import Path

from loopml.config import RemoteConfig
from loopml.errors import NotFoundError, UserInputError
from loopml.refs import validate_name
from loopml.store.documents import DocumentStore, open_documents
from loopml.store.fsutil import atomic_write_bytes
from loopml.store.objects.store import ObjectStore
from loopml.store.registry import open_object_backend, url_scheme
from loopml.store.workspace import Workspace

__all__ = ["Remote", "add_remote", "list_remotes", "open_remote", "record_use", "remove_remote"]


@dataclass
class Remote:
    """An opened remote: its objects and its documents."""

    name: str
    url: str
    objects: ObjectStore
    documents: DocumentStore


def _join(url: str, part: str) -> str:
    if url_scheme(url) == "file":
        return str(Path(url.removeprefix("file://")).expanduser() / part)
    return posixpath.join(url.rstrip("/"), part)


def _normalise_url(workspace: Workspace, url: str) -> str:
    scheme = url_scheme(url)
    if scheme == "file":
        path = Path(url.removeprefix("file://")).expanduser()
        resolved = (workspace.root / path).resolve() if not path.is_absolute() else path.resolve()
        inside = resolved == workspace.root or workspace.root in resolved.parents
        if inside:
            raise UserInputError(
                f"remote folder {url} is inside the workspace; choose a folder outside it"
            )
        return str(resolved)
    if scheme not in ("s3", "memory"):
        raise UserInputError(
            f"unsupported remote URL {url!r}; use a folder path or s3://bucket/prefix"
        )
    return url.rstrip("/")


def add_remote(workspace: Workspace, name: str, url: str, *, default: bool = False) -> RemoteConfig:
    """Add (or change) a remote in ``loopml.toml`` and the metadata store."""
    import tomlkit

    validate_name(name, "remote name")
    url = _normalise_url(workspace, url)
    path = workspace.settings.config_path
    document = (
        tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
    )
    remotes = document.get("remotes")
    if remotes is None:
        remotes = tomlkit.table(is_super_table=True)
        document["remotes"] = remotes
    entry = tomlkit.table()
    entry["url"] = url
    remotes[name] = entry
    if default:
        core = document.get("core")
        if core is None:
            core = tomlkit.table()
            document["core"] = core
        core["remote"] = name
    atomic_write_bytes(path, tomlkit.dumps(document).encode("utf-8"))
    _upsert_row(workspace, name, url)
    return RemoteConfig(name, url)


def _upsert_row(workspace: Workspace, name: str, url: str) -> None:
    from sqlalchemy import delete, insert

    from loopml.store.metadata.schema import remotes

    def write(conn: object) -> None:
        conn.execute(delete(remotes).where(remotes.c.name == name))  # type: ignore[attr-defined]
        conn.execute(  # type: ignore[attr-defined]
            insert(remotes).values(name=name, url=url, created_at=time.time_ns() // 1_000_000)
        )

    workspace.metadata.run_write(write)


def remove_remote(workspace: Workspace, name: str) -> None:
    """Forget a remote (its stored objects are left untouched)."""
    import tomlkit
    from sqlalchemy import delete

    from loopml.store.metadata.schema import remotes

    path = workspace.settings.config_path
    if name not in workspace.settings.remotes:
        raise NotFoundError(f"no remote named {name!r}; `loopml remote ls` lists them")
    document = tomlkit.parse(path.read_text(encoding="utf-8"))
    del document["remotes"][name]
    core = document.get("core")
    if core is not None and core.get("remote") == name:
        del core["remote"]
    atomic_write_bytes(path, tomlkit.dumps(document).encode("utf-8"))
    workspace.metadata.run_write(
        lambda conn: conn.execute(delete(remotes).where(remotes.c.name == name))
    )


def list_remotes(workspace: Workspace) -> list[RemoteConfig]:
    """Configured remotes, by name."""
    return [workspace.settings.remotes[n] for n in sorted(workspace.settings.remotes)]


def open_remote(workspace: Workspace, name: str | None) -> Remote:
    """Open the remote ``name`` (or the default one, or the only one)."""
    configured = workspace.settings.remotes
    if name is None:
        name = workspace.settings.default_remote
        if name is None:
            if len(configured) == 1:
                name = next(iter(configured))
            elif not configured:
                raise UserInputError("no remote configured; run `loopml remote add NAME URL` first")
            else:
                raise UserInputError(
                    f"several remotes ({', '.join(sorted(configured))}); choose one with -r"
                )
    if name not in configured:
        raise NotFoundError(f"no remote named {name!r}; `loopml remote ls` lists them")
    url = configured[name].url
    endpoint = workspace.settings.s3_endpoint_url
    backend = open_object_backend(_join(url, "objects"), s3_endpoint_url=endpoint)
    return Remote(
        name=name,
        url=url,
        objects=ObjectStore(backend, small_object_bytes=workspace.settings.small_object_bytes),
        documents=open_documents(url, s3_endpoint_url=endpoint),
    )


def record_use(workspace: Workspace, name: str, *, pushed: bool) -> None:
    """Note the time of the last push or pull."""
    from sqlalchemy import insert, update

    from loopml.store.metadata.schema import remotes

    column = "last_push_at" if pushed else "last_pull_at"
    now = time.time_ns() // 1_000_000
    url = workspace.settings.remotes[name].url

    def write(conn: object) -> None:
        result = conn.execute(  # type: ignore[attr-defined]
            update(remotes).where(remotes.c.name == name).values({column: now})
        )
        if not result.rowcount:
            # A fresh clone knows its remotes from loopml.toml before the table does.
            conn.execute(  # type: ignore[attr-defined]
                insert(remotes).values(name=name, url=url, created_at=now, **{column: now})
            )

    workspace.metadata.run_write(write)
