"""Garbage-collection roots: every stored record that points at an object.

Each later table that references objects (runs, step outputs, model versions) adds its column
here, so ``gc`` can never remove what a record still points to.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from loopml.store.errors import StoreError
from loopml.store.tree import Tree

if TYPE_CHECKING:
    from loopml.store.metadata import MetadataStore
    from loopml.store.objects.store import ObjectStore

__all__ = ["ROOT_COLUMNS", "reachable_objects", "root_digests"]

# (table, column, what it is) — the column holds an object digest.
ROOT_COLUMNS: list[tuple[str, str, str]] = [
    ("dataset_versions", "hash", "dataset version"),
    ("pins", "hash", "pin"),
    ("run_artifacts", "digest", "run artifact"),
    ("runs", "manifest_hash", "run manifest"),
    ("runs", "environment_hash", "run environment"),
    ("step_outputs", "digest", "step output"),
    ("model_versions", "digest", "model version"),
]


def root_digests(metadata: MetadataStore) -> Iterator[tuple[str, str]]:
    """``(digest, what)`` for every root recorded in the metadata store."""
    from sqlalchemy import column, select, table

    with metadata.read() as conn:
        for table_name, column_name, what in ROOT_COLUMNS:
            query: Any = select(column(column_name)).select_from(table(table_name)).distinct()
            for (digest,) in conn.execute(query):
                if digest:
                    yield str(digest), what


def reachable_objects(
    metadata: MetadataStore, objects: ObjectStore, *, strict: bool = False
) -> tuple[set[str], list[tuple[str, str]]]:
    """Every digest a root reaches (trees expanded), and roots whose object is missing.

    With ``strict`` (gc), a root that cannot be read or parsed raises ``StoreError``: the
    objects it lists are unknown, and deleting them could destroy that version for good.
    """
    reachable: set[str] = set()
    missing: list[tuple[str, str]] = []
    for digest, what in root_digests(metadata):
        if digest in reachable:
            continue
        reachable.add(digest)
        if not objects.has(digest):
            missing.append((digest, what))
            continue
        try:
            data = objects.read_bytes(digest)
        except StoreError as exc:
            if strict:
                raise StoreError(
                    f"{what} {digest[:12]} cannot be read ({type(exc).__name__}), so what it "
                    "reaches is unknown and nothing was removed; run `loopml fsck` and restore it"
                ) from None
            continue  # corrupt: fsck reports it
        tree = None
        if Tree.looks_like_tree(data):
            with contextlib.suppress(StoreError):  # verified bytes that merely look like one
                tree = Tree.from_bytes(data)
        if tree is not None:
            for entry in tree:
                reachable.add(entry.digest)
                if not objects.has(entry.digest):
                    missing.append((entry.digest, f"file {entry.path} of {what} {digest[:12]}"))
    return reachable, missing
