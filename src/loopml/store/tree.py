"""Tree manifests: a directory as a sorted list of (path, size, mode, hash), itself a blob.

The serialised form is canonical (sorted entries, fixed key order, no whitespace), so the same
directory always gives the same bytes and therefore the same tree hash.
"""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from loopml.store.errors import StoreError
from loopml.store.hashing import hash_bytes

__all__ = ["Tree", "TreeDiff", "TreeEntry"]

_FORMAT = "loopml-tree/1"
_DIGEST = re.compile(r"[0-9a-f]{64}")  # an entry's digest also names a path in the store


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One file of a tree: its posix path relative to the tree root, size, mode and hash."""

    path: str
    size: int
    mode: int
    digest: str

    @property
    def executable(self) -> bool:
        """Whether any execute bit is set."""
        return bool(self.mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))


@dataclass(frozen=True, slots=True)
class TreeDiff:
    """Paths added, modified and deleted between two trees (or a tree and a folder)."""

    added: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether anything differs."""
        return bool(self.added or self.modified or self.deleted)


@dataclass(frozen=True, slots=True)
class Tree:
    """An immutable, sorted set of entries."""

    entries: tuple[TreeEntry, ...]
    _by_path: Mapping[str, TreeEntry] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, entries: Iterable[TreeEntry]) -> Tree:
        """Make a tree from entries in any order; duplicate paths are an error."""
        ordered = tuple(sorted(entries, key=lambda entry: entry.path))
        by_path = {entry.path: entry for entry in ordered}
        if len(by_path) != len(ordered):
            raise StoreError("a tree cannot list the same path twice")
        return cls(ordered, by_path)

    def __iter__(self) -> Iterator[TreeEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, path: str) -> TreeEntry | None:
        """The entry at ``path`` or ``None``."""
        return self._by_path.get(path)

    @property
    def size(self) -> int:
        """Total bytes of all files."""
        return sum(entry.size for entry in self.entries)

    def to_bytes(self) -> bytes:
        """Canonical serialisation."""
        body = {
            "format": _FORMAT,
            "entries": [[e.path, e.size, e.mode, e.digest] for e in self.entries],
        }
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    @property
    def digest(self) -> str:
        """The hash of the canonical serialisation: the identity of this tree."""
        return hash_bytes(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> Tree:
        """Parse bytes written by :meth:`to_bytes`."""
        try:
            body = json.loads(data)
            if body.get("format") != _FORMAT:
                raise ValueError(f"unknown format {body.get('format')!r}")
            entries = [TreeEntry(str(p), int(s), int(m), str(d)) for p, s, m, d in body["entries"]]
            for entry in entries:
                if entry.size < 0 or not _DIGEST.fullmatch(entry.digest):
                    raise ValueError(f"bad entry for {entry.path!r}")
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            raise StoreError(f"not a loopml tree manifest ({exc}); run `loopml fsck`") from None
        return cls.build(entries)

    @staticmethod
    def looks_like_tree(data: bytes) -> bool:
        """Cheap check used by fsck and gc to decide whether a blob should be parsed as a tree."""
        return data[:40].startswith(b'{"format":"' + _FORMAT.encode())

    def diff(self, other: Tree) -> TreeDiff:
        """What changed going from ``self`` to ``other``."""
        added = tuple(e.path for e in other.entries if e.path not in self._by_path)
        deleted = tuple(e.path for e in self.entries if other.get(e.path) is None)
        modified = tuple(
            e.path
            for e in other.entries
            if (old := self._by_path.get(e.path)) is not None
            and (old.digest != e.digest or old.executable != e.executable)
        )
        return TreeDiff(added, modified, deleted)
