"""A workspace: the settings, the object store and the metadata store of one project folder."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.config import CONFIG_FILE, CONFIG_TEMPLATE, WORKSPACE_DIR, Settings, load_settings
from loopml.errors import UserInputError
from loopml.store.fsutil import atomic_write_bytes
from loopml.store.objects.store import ObjectStore
from loopml.store.registry import open_object_backend, url_scheme

if TYPE_CHECKING:
    from loopml.store.metadata import MetadataStore
    from loopml.store.metadata.plainsql import SqlDatabase

__all__ = ["Workspace", "init_workspace"]

GITIGNORE = """\
# The database and the object store stay out of git; `loopml push` / `pull` move them.
/loopml.db*
/objects/
/cache/
/tmp/
"""


@dataclass
class Workspace:
    """An open workspace. Stores open lazily, so a command only pays for what it uses."""

    settings: Settings
    _metadata: MetadataStore | None = field(default=None, repr=False)
    _sql: SqlDatabase | None = field(default=None, repr=False)

    @classmethod
    def open(cls, root: Path | None = None, **overrides: Any) -> Workspace:
        """Open the workspace at ``root``, or the one found from the current folder upward."""
        return cls(load_settings(root, **overrides))

    @property
    def root(self) -> Path:
        """The project folder."""
        return self.settings.root

    @property
    def dir(self) -> Path:
        """The ``.loopml`` folder."""
        return self.settings.workspace_dir

    @property
    def host(self) -> str:
        """This machine's name, which keys machine-local caches such as the stat cache."""
        return socket.gethostname()

    @cached_property
    def objects(self) -> ObjectStore:
        """The workspace's object store."""
        backend = open_object_backend(
            self.settings.objects_url, s3_endpoint_url=self.settings.s3_endpoint_url
        )
        return ObjectStore(backend, small_object_bytes=self.settings.small_object_bytes)

    @property
    def objects_are_local(self) -> bool:
        """Whether objects live in a folder on this machine."""
        return url_scheme(self.settings.objects_url) == "file"

    @property
    def metadata(self) -> MetadataStore:
        """The metadata store, opened (and migrated if needed) on first use."""
        if self._metadata is None:
            from loopml.store.metadata import MetadataStore

            self._metadata = MetadataStore.open(self.settings.database_url)
        return self._metadata

    @property
    def sql(self) -> SqlDatabase:
        """The metadata database for plain SQL (the hot paths of runs and pipelines).

        A SQLite file at the current schema is spoken to with the standard library's
        ``sqlite3``, so that SQLAlchemy is not imported; anything else goes through
        :attr:`metadata`.
        """
        if self._sql is None:
            from loopml.store.metadata.plainsql import AlchemyDatabase, SqliteDatabase

            fast = SqliteDatabase.open_current(self.settings.database_url)
            self._sql = fast if fast is not None else AlchemyDatabase(self.metadata)
        return self._sql

    def cache_dir(self, *parts: str) -> Path:
        """A folder under ``.loopml/cache`` for materialised, rebuildable files."""
        path = self.dir.joinpath("cache", *parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def resolve_inside(self, path: Path | str) -> Path:
        """An absolute path for ``path``, refusing anything outside the workspace."""
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = Path.cwd() / candidate
        try:
            resolved = candidate.resolve()
        except (RuntimeError, OSError):
            raise UserInputError(f"{path} is a symlink loop; remove or fix the link") from None
        if resolved != self.root and self.root not in resolved.parents:
            raise UserInputError(
                f"{path} is outside the workspace {self.root}; move it inside or run loopml there"
            )
        if resolved == self.dir or self.dir in resolved.parents:
            raise UserInputError(f"{path} is inside {WORKSPACE_DIR}/, which loopml manages itself")
        return resolved

    def relative(self, path: Path) -> str:
        """The posix path of ``path`` relative to the workspace root."""
        return path.relative_to(self.root).as_posix()

    def close(self) -> None:
        """Release database connections."""
        if self._sql is not None:
            self._sql.close()
            self._sql = None
        if self._metadata is not None:
            self._metadata.close()
            self._metadata = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def init_workspace(path: Path | str = ".") -> tuple[Workspace, bool]:
    """Create a workspace at ``path`` (idempotent); returns it and whether it was new."""
    root = Path(path).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise UserInputError(f"{path} is a file; give a folder to initialise")
    workspace_dir = root / WORKSPACE_DIR
    created = not workspace_dir.is_dir()
    (workspace_dir / "objects").mkdir(parents=True, exist_ok=True)
    gitignore = workspace_dir / ".gitignore"
    if not gitignore.exists():
        atomic_write_bytes(gitignore, GITIGNORE.encode())
    config = root / CONFIG_FILE
    if not config.exists():
        atomic_write_bytes(config, CONFIG_TEMPLATE.encode())
    workspace = Workspace.open(root)
    workspace.metadata  # noqa: B018 - creates and migrates the database now, not on first use
    return workspace, created
