"""The Python face of data versioning: ``loopml.data.add``, ``get``, ``read_frame`` and friends.

Each function opens the workspace found from the current folder (or the one given), does one
thing, and closes it. Heavy modules are imported inside the functions, so ``import loopml``
stays fast.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loopml.store.workspace import Workspace

if TYPE_CHECKING:
    import pandas as pd

    from loopml.data.model import DatasetVersion
    from loopml.data.status import DatasetStatus

__all__ = ["DataRef", "add", "get", "log", "read_frame", "ref", "status"]


@dataclass(frozen=True, slots=True)
class DataRef:
    """A reference to a dataset version, for use as a pipeline input (``ref("sales@v3")``)."""

    text: str

    def resolve(self, workspace: Workspace | None = None) -> DatasetVersion:
        """The version this reference names now."""
        from loopml.data.versioning import resolve

        with _Opened(workspace) as ws:
            return resolve(ws, self.text)[1]


def ref(text: str) -> DataRef:
    """A ``NAME@REF`` reference to a dataset version (validated now, resolved when used)."""
    from loopml.refs import parse_ref

    parse_ref(text)
    return DataRef(text)


class _Opened:
    """Use the given workspace, or open (and later close) the one found from the cwd."""

    def __init__(self, workspace: Workspace | None) -> None:
        self._given = workspace
        self._opened: Workspace | None = None

    def __enter__(self) -> Workspace:
        if self._given is not None:
            return self._given
        self._opened = Workspace.open()
        return self._opened

    def __exit__(self, *exc: object) -> None:
        if self._opened is not None:
            self._opened.close()


def add(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    message: str | None = None,
    workspace: Workspace | None = None,
) -> DatasetVersion:
    """Record a file or folder as a new version of a dataset (no new version if unchanged)."""
    from loopml.data.versioning import add_dataset

    with _Opened(workspace) as ws:
        return add_dataset(ws, Path(path), name=name, message=message).version


def status(workspace: Workspace | None = None) -> list[DatasetStatus]:
    """What changed in each tracked path since its latest version."""
    from loopml.data.status import dataset_status

    with _Opened(workspace) as ws:
        return dataset_status(ws)


def log(name: str, workspace: Workspace | None = None) -> list[DatasetVersion]:
    """Every version of a dataset, oldest first."""
    from loopml.data.repository import DatasetRepository

    with _Opened(workspace) as ws:
        repository = DatasetRepository(ws.metadata)
        return repository.versions(repository.get(name))


def get(reference: str | DataRef, *, workspace: Workspace | None = None) -> Path:
    """A read-only local copy of a version: a file path, or a folder for a folder dataset.

    Copies are shared by content under ``.loopml/cache/datasets/<hash>``; they are made
    read-only so that a user cannot edit what another run will read.
    """
    from loopml.data.checkout import safe_relative
    from loopml.data.reads import note_read
    from loopml.data.versioning import resolve

    text = reference.text if isinstance(reference, DataRef) else reference
    with _Opened(workspace) as ws:
        dataset, version = resolve(ws, text)
        tree = ws.objects.get_tree(version.hash)
        root = ws.cache_dir("datasets") / version.hash
        if not root.exists():
            staging = root.with_name(f".{version.hash}.partial-{os.getpid()}")
            if staging.exists():
                _force_remove(staging)
            for entry in tree:
                destination = staging.joinpath(*safe_relative(entry.path).parts)
                ws.objects.export_file(entry.digest, destination, mode=entry.mode & 0o555)
            staging.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(staging, root)
            except OSError:
                _force_remove(staging)  # another process finished first; its copy is identical
        note_read(dataset.name, version)
        if dataset.kind == "file":
            return root / next(iter(tree)).path
        return root


def read_frame(reference: str | DataRef, *, workspace: Workspace | None = None) -> pd.DataFrame:
    """Load a version's Parquet or CSV file (or every such file of a folder) into pandas."""
    import pandas as pd

    from loopml.errors import UserInputError

    path = get(reference, workspace=workspace)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    frames = []
    for file in files:
        suffix = file.suffix.lower()
        if suffix in (".parquet", ".pq"):
            frames.append(pd.read_parquet(file))
        elif suffix in (".csv", ".tsv"):
            frames.append(pd.read_csv(file, sep="\t" if suffix == ".tsv" else ","))
    if not frames:
        raise UserInputError(f"{reference} holds no .parquet or .csv file to read into a frame")
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _force_remove(path: Path) -> None:
    """Remove a tree that contains read-only files and folders."""
    for folder, _dirs, _files in os.walk(path):
        os.chmod(folder, stat.S_IRWXU)
    shutil.rmtree(path, ignore_errors=True)
