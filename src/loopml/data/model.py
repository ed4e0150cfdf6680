"""Value objects of data versioning."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Dataset", "DatasetVersion"]


@dataclass(frozen=True, slots=True)
class Dataset:
    """A tracked file or folder under a name."""

    id: str
    name: str
    path: str  # posix, relative to the workspace root
    kind: str  # "file" or "dir"
    created_at: int


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """One recorded state of a dataset; ``hash`` is the digest of its tree manifest."""

    id: str
    dataset: str
    number: int
    hash: str
    size: int
    file_count: int
    message: str | None
    author: str
    created_at: int
    tags: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        """``name@vN``."""
        return f"{self.dataset}@v{self.number}"
