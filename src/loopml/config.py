"""Workspace discovery and settings.

A workspace is a folder holding ``.loopml/`` (like ``.git/``) and an optional ``loopml.toml``.
Settings resolve in this order: explicit arguments, ``LOOPML_*`` environment variables,
``loopml.toml``, defaults.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from loopml.errors import ConfigError, WorkspaceNotFoundError

__all__ = [
    "CONFIG_FILE",
    "WORKSPACE_DIR",
    "RemoteConfig",
    "Settings",
    "find_workspace_root",
    "load_settings",
]

WORKSPACE_DIR = ".loopml"
CONFIG_FILE = "loopml.toml"
DATABASE_FILE = "loopml.db"
OBJECTS_DIR = "objects"

CONFIG_TEMPLATE = """\
# loopml workspace settings. Environment variables (LOOPML_*) override these,
# and command-line arguments override both. Commit this file with your code.

[store]
# Metadata database. Default: SQLite at .loopml/loopml.db.
# database_url = "postgresql+psycopg://user@host:5432/loopml"   # or env LOOPML_DATABASE_URL
# Object store. Default: the folder .loopml/objects.
# objects_url = "s3://bucket/prefix"                             # or env LOOPML_OBJECTS_URL

[s3]
# endpoint_url = "http://127.0.0.1:9000"   # for S3-compatible servers; env LOOPML_S3_ENDPOINT_URL

[core]
# Remote used by push/pull when -r is not given.
# remote = "origin"
# Threads used to hash and copy files (default: number of CPUs).
# jobs = 4

# Remotes are added with `loopml remote add NAME URL`:
# [remotes.origin]
# url = "s3://bucket/loopml"
"""


@dataclass(frozen=True, slots=True)
class RemoteConfig:
    """A named remote object store that push and pull talk to."""

    name: str
    url: str


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved settings of one workspace."""

    root: Path
    database_url: str
    objects_url: str
    s3_endpoint_url: str | None = None
    default_remote: str | None = None
    remotes: Mapping[str, RemoteConfig] = field(default_factory=dict)
    jobs: int = 0
    user: str = ""
    small_object_bytes: int = 256 * 1024

    @property
    def workspace_dir(self) -> Path:
        """The ``.loopml`` folder."""
        return self.root / WORKSPACE_DIR

    @property
    def config_path(self) -> Path:
        """The ``loopml.toml`` file (it may not exist)."""
        return self.root / CONFIG_FILE

    @property
    def effective_jobs(self) -> int:
        """Worker threads for hashing and transfers."""
        return self.jobs if self.jobs > 0 else max(2, os.cpu_count() or 2)

    def with_overrides(self, **overrides: Any) -> Settings:
        """Return a copy with explicit arguments applied (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def find_workspace_root(start: Path | None = None) -> Path:
    """Return the nearest folder from ``start`` upward that holds ``.loopml/``.

    ``LOOPML_WORKSPACE`` names the workspace explicitly when set.
    """
    explicit = os.environ.get("LOOPML_WORKSPACE")
    if explicit:
        root = Path(explicit).expanduser().resolve()
        if not (root / WORKSPACE_DIR).is_dir():
            raise WorkspaceNotFoundError(
                f"LOOPML_WORKSPACE={explicit} has no {WORKSPACE_DIR}/ folder; "
                f"run `loopml init {explicit}`"
            )
        return root
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / WORKSPACE_DIR).is_dir():
            return candidate
    raise WorkspaceNotFoundError(
        f"no loopml workspace in {here} or any parent folder; run `loopml init` first"
    )


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix or remove it") from None


def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"[{name}] in {CONFIG_FILE} must be a table")
    return value


def _int_setting(raw: object, name: str) -> int:
    try:
        return int(str(raw))
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None


def load_settings(root: Path | None = None, **overrides: Any) -> Settings:
    """Resolve the settings of the workspace at ``root`` (found from the cwd when ``None``)."""
    root = find_workspace_root() if root is None else Path(root).resolve()
    data = _read_toml(root / CONFIG_FILE)
    store = _section(data, "store")
    s3 = _section(data, "s3")
    core = _section(data, "core")
    env = os.environ

    remotes: dict[str, RemoteConfig] = {}
    for name, table in _section(data, "remotes").items():
        if not isinstance(table, Mapping) or not isinstance(table.get("url"), str):
            raise ConfigError(f'[remotes.{name}] in {CONFIG_FILE} needs a url = "..." string')
        remotes[name] = RemoteConfig(name=name, url=table["url"])

    default_db = f"sqlite:///{root / WORKSPACE_DIR / DATABASE_FILE}"
    jobs_raw = env.get("LOOPML_JOBS", core.get("jobs", 0))
    settings = Settings(
        root=root,
        database_url=env.get("LOOPML_DATABASE_URL") or store.get("database_url") or default_db,
        objects_url=env.get("LOOPML_OBJECTS_URL")
        or store.get("objects_url")
        or str(root / WORKSPACE_DIR / OBJECTS_DIR),
        s3_endpoint_url=env.get("LOOPML_S3_ENDPOINT_URL") or s3.get("endpoint_url"),
        default_remote=env.get("LOOPML_REMOTE") or core.get("remote"),
        remotes=remotes,
        jobs=_int_setting(jobs_raw, "jobs"),
        user=env.get("LOOPML_USER") or _current_user(),
    )
    return settings.with_overrides(**overrides)


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
