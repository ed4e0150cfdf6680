"""Choosing a materializer for a value, by type; users register their own.

Built-ins are named by dotted path and imported only when used, so choosing one never imports
pandas or scikit-learn for a value that is not theirs.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from loopml.artifacts.errors import ArtifactError, UnsupportedTypeError
from loopml.artifacts.protocol import Materializer
from loopml.store.objects.store import ObjectStore

__all__ = ["UserMaterializer", "materializer", "materializer_by_name", "materializer_for"]

T = TypeVar("T")

# Checked in order; the first that handles the value wins. JSON comes last because a dict of
# DataFrames is not JSON.
_BUILTINS: tuple[tuple[str, str], ...] = (
    ("parquet", "loopml.artifacts.builtin:ParquetMaterializer"),
    ("npy", "loopml.artifacts.builtin:NumpyMaterializer"),
    ("skops", "loopml.artifacts.builtin:SkopsMaterializer"),
    ("file", "loopml.artifacts.builtin:FileMaterializer"),
    ("path", "loopml.artifacts.builtin:PathMaterializer"),
    ("json", "loopml.artifacts.builtin:JsonMaterializer"),
)
_user: dict[type, Materializer] = {}


def _load(dotted: str) -> Any:
    module, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module), attr)


class UserMaterializer:
    """Adapts a user class with ``save(value) -> bytes`` and ``load(bytes) -> value``."""

    def __init__(self, cls: type, impl: Any) -> None:
        self.cls = cls
        self.impl = impl
        self.name = f"user:{cls.__module__}.{cls.__qualname__}"

    def handles(self, value: object) -> bool:
        """Instances of the registered type."""
        return isinstance(value, self.cls)

    def save(self, value: Any, store: ObjectStore) -> str:
        """The user's bytes."""
        data = self.impl.save(value)
        if not isinstance(data, bytes | bytearray):
            raise UnsupportedTypeError(
                f"materializer for {self.cls.__name__} must return bytes from save()"
            )
        return store.add_bytes(bytes(data))

    def load(self, digest: str, store: ObjectStore) -> Any:
        """The user's value."""
        return self.impl.load(store.read_bytes(digest))


def materializer(cls: type) -> Callable[[type[T]], type[T]]:
    """Register a materializer class for values of type ``cls``::

    @materializer(MyModel)
    class MyModelFormat:
        def save(self, value: MyModel) -> bytes: ...
        def load(self, data: bytes) -> MyModel: ...
    """

    def register(impl_cls: type[T]) -> type[T]:
        _user[cls] = UserMaterializer(cls, impl_cls())
        return impl_cls

    return register


def _workspace_key(workspace_dir: Path) -> bytes:
    """The workspace's signing key, made on first use.

    Made private from its first byte, and published with a hard link, which fails if the
    name exists: when several worker processes make it at once, one key wins and every
    process reads that one (an overwrite would leave blobs signed with a lost key).
    """
    path = workspace_dir / "pickle.key"
    if not path.exists():
        staging = workspace_dir / f".pickle.key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(secrets.token_bytes(32))
                file.flush()
                os.fsync(file.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(staging, path)
        finally:
            staging.unlink(missing_ok=True)
    return path.read_bytes()


def materializer_by_name(name: str, *, workspace_dir: Path | None = None) -> Materializer:
    """The materializer stored outputs name (``parquet``, ``skops``, ``user:pkg.Type`` …)."""
    if name == "pickle":
        if workspace_dir is None:
            raise UnsupportedTypeError("pickle needs a workspace (its signing key lives there)")
        from loopml.artifacts.builtin import PickleMaterializer

        return PickleMaterializer(_workspace_key(workspace_dir))
    for builtin_name, dotted in _BUILTINS:
        if builtin_name == name:
            instance: Materializer = _load(dotted)()
            return instance
    for user in _user.values():
        if user.name == name:
            return user
    raise UnsupportedTypeError(
        f"no materializer named {name!r}; register it with @loopml.materializer(Type) "
        "before loading this output"
    )


def materializer_for(
    value: object, *, allow_pickle: bool = False, workspace_dir: Path | None = None
) -> Materializer:
    """The materializer for ``value``: a user's first, then the built-ins, then opt-in pickle."""
    for cls, user in _user.items():
        if isinstance(value, cls):
            return user
    for _name, dotted in _BUILTINS:
        candidate: Materializer = _load(dotted)()
        if candidate.handles(value):
            return candidate
    if isinstance(value, Path) and not value.exists():
        raise ArtifactError(f"the step returned the path {value}, which does not exist")
    if allow_pickle:
        return materializer_by_name("pickle", workspace_dir=workspace_dir)
    raise UnsupportedTypeError(
        f"no materializer for {type(value).__module__}.{type(value).__qualname__}; register one "
        "with @loopml.materializer(YourType), or opt in to pickle with @step(pickle=True)"
    )
