"""Storing a run's artifacts in the object store: files, folders, dicts, figures, tables."""

from __future__ import annotations

import io
import json
from pathlib import Path, PurePosixPath
from typing import Any

from loopml.errors import UserInputError
from loopml.store.workspace import Workspace
from loopml.tracking.model import ArtifactRecord

__all__ = [
    "artifact_path",
    "store_bytes",
    "store_dict",
    "store_figure",
    "store_path",
    "store_table",
]


def artifact_path(name: str) -> str:
    """A validated artifact path: relative, posix, without ``..``."""
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or any(part in ("", "..") for part in pure.parts):
        raise UserInputError(
            f"artifact path {name!r} must be relative and stay inside the run (no '..')"
        )
    return pure.as_posix()


def store_bytes(workspace: Workspace, data: bytes, name: str) -> ArtifactRecord:
    """Store bytes as a file artifact."""
    digest = workspace.objects.add_bytes(data)
    return ArtifactRecord(artifact_path(name), digest, len(data), "file")


def store_path(workspace: Workspace, path: Path, name: str | None = None) -> ArtifactRecord:
    """Store a file (a blob) or a folder (a tree of blobs, small files packed)."""
    from loopml.data.scan import scan_path
    from loopml.data.working import hash_working_files

    source = Path(path)
    if not source.exists():
        raise UserInputError(f"{path} does not exist; check the artifact path")
    target = artifact_path(name or source.resolve().name)
    kind, files = scan_path(source, shown=str(path))
    if kind == "file":
        stored = workspace.objects.add_file(source)
        return ArtifactRecord(target, stored.digest, stored.size, "file")
    with workspace.objects.batch() as batch:
        hashed = hash_working_files(workspace, files, shown_root=str(path), batch=batch)
        digest = batch.add_bytes(hashed.tree.to_bytes())
    return ArtifactRecord(target, digest, hashed.tree.size, "tree")


def store_dict(workspace: Workspace, value: Any, name: str) -> ArtifactRecord:
    """A dict or list as JSON (``.json``) or YAML (``.yaml``/``.yml``)."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_dump(value, sort_keys=True).encode()
    elif suffix == ".json":
        data = json.dumps(value, indent=2, sort_keys=True, default=str).encode()
    else:
        raise UserInputError(f"log_dict needs a .json, .yaml or .yml name, got {name!r}")
    return store_bytes(workspace, data, name)


def store_figure(workspace: Workspace, figure: Any, name: str) -> ArtifactRecord:
    """A matplotlib figure as PNG/SVG/PDF, or a plotly figure as HTML (by the name's suffix)."""
    suffix = PurePosixPath(name).suffix.lower()
    if hasattr(figure, "savefig"):
        if suffix not in (".png", ".svg", ".pdf", ".jpg", ".jpeg"):
            raise UserInputError(f"log_figure needs a .png, .svg, .pdf or .jpg name, got {name!r}")
        buffer = io.BytesIO()
        figure.savefig(buffer, format=suffix.lstrip("."), bbox_inches="tight")
        return store_bytes(workspace, buffer.getvalue(), name)
    if hasattr(figure, "to_html"):
        if suffix != ".html":
            raise UserInputError(f"a plotly figure is stored as .html, got {name!r}")
        return store_bytes(workspace, figure.to_html(include_plotlyjs="cdn").encode(), name)
    raise UserInputError(
        f"log_figure takes a matplotlib or plotly figure, not {type(figure).__name__}"
    )


def store_table(workspace: Workspace, table: Any, name: str) -> ArtifactRecord:
    """A pandas DataFrame (or anything ``pandas.DataFrame`` accepts) as Parquet."""
    import pandas as pd

    frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
    if not name.endswith(".parquet"):
        name = f"{name}.parquet"
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return store_bytes(workspace, buffer.getvalue(), name)
