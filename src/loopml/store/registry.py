"""Backends by name: URL scheme → dotted path, imported only when used (DESIGN section 9)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loopml.store.errors import MissingExtraError, UnsupportedStoreURLError
from loopml.store.objects.protocol import ObjectBackend

__all__ = ["OBJECT_BACKENDS", "open_object_backend", "url_scheme"]

# scheme -> (dotted path of the class, the extra that provides its dependencies)
OBJECT_BACKENDS: Mapping[str, tuple[str, str | None]] = {
    "file": ("loopml.store.objects.local:LocalObjectBackend", None),
    "s3": ("loopml.store.objects.fsspec_backend:FsspecObjectBackend", "s3"),
    "memory": ("loopml.store.objects.fsspec_backend:FsspecObjectBackend", None),
}
_EXTRA_MODULES = {"s3": "s3fs"}


def url_scheme(url: str) -> str:
    """``s3`` for ``s3://…``; ``file`` for a plain path or ``file://…``."""
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else "file"


def _load(dotted: str) -> Any:
    module_name, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def open_object_backend(
    url: str, *, s3_endpoint_url: str | None = None, **options: Any
) -> ObjectBackend:
    """Open the backend for ``url``; a missing optional dependency names its extra."""
    scheme = url_scheme(url)
    try:
        dotted, extra = OBJECT_BACKENDS[scheme]
    except KeyError:
        known = ", ".join(sorted(OBJECT_BACKENDS))
        raise UnsupportedStoreURLError(
            f"no object store backend for {url!r}; use a folder path or one of: {known}"
        ) from None
    if extra is not None:
        try:
            importlib.import_module(_EXTRA_MODULES[extra])
        except ImportError:
            raise MissingExtraError(f"the {scheme}:// object store", extra) from None
    cls = _load(dotted)
    if scheme == "file":
        path = url.removeprefix("file://")
        return cls(Path(path).expanduser(), **options)  # type: ignore[no-any-return]
    storage: dict[str, Any] = {}
    if scheme == "s3" and s3_endpoint_url:
        storage["endpoint_url"] = s3_endpoint_url
    return cls(url, storage_options=storage)  # type: ignore[no-any-return]
