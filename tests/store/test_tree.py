"""Tree manifests: canonical serialisation, parsing, diff."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.store.errors import StoreError
from loopml.store.hashing import hash_bytes
from loopml.store.tree import Tree, TreeDiff, TreeEntry


def entry(path: str, content: bytes = b"", mode: int = 0o644) -> TreeEntry:
    return TreeEntry(path, len(content), mode, hash_bytes(content or path.encode()))


ENTRIES = [
    entry("b.txt", b"bee"),
    entry("a/z.csv", b"1,2\n"),
    entry("a/b.csv", b"3,4\n"),
    entry("run.sh", b"#!/bin/sh\n", 0o755),
    entry("ünï cødé/文件.txt", b"unicode"),
]

entries_strategy = st.lists(
    st.builds(
        TreeEntry,
        path=st.text(min_size=1, max_size=20),
        size=st.integers(min_value=0, max_value=2**40),
        mode=st.sampled_from([0o644, 0o755, 0o600, 0o100644]),
        digest=st.binary(min_size=32, max_size=32).map(bytes.hex),
    ),
    max_size=30,
    unique_by=lambda e: e.path,
)


def test_same_entries_in_any_order_give_the_same_digest() -> None:
    reference = Tree.build(ENTRIES)
    for seed in range(10):
        shuffled = ENTRIES[:]
        random.Random(seed).shuffle(shuffled)
        tree = Tree.build(shuffled)
        assert tree == reference
        assert tree.to_bytes() == reference.to_bytes()
        assert tree.digest == reference.digest == hash_bytes(reference.to_bytes())
    assert [e.path for e in reference] == sorted(e.path for e in ENTRIES)


def test_serialisation_is_compact_and_versioned() -> None:
    data = Tree.build(ENTRIES[:1]).to_bytes()
    assert data.startswith(b'{"format":"loopml-tree/1","entries":[["b.txt",3,420,"')
    assert b" " not in data and b"\n" not in data
    assert Tree.looks_like_tree(data)
    assert Tree.looks_like_tree(Tree.build([]).to_bytes())
    assert not Tree.looks_like_tree(b'{"format":"other"}')
    assert "文件".encode() in Tree.build(ENTRIES).to_bytes()  # UTF-8, not \\u escapes


def test_round_trip_and_lookup() -> None:
    tree = Tree.build(ENTRIES)
    again = Tree.from_bytes(tree.to_bytes())
    assert again == tree
    assert again.digest == tree.digest
    assert len(again) == len(ENTRIES)
    assert again.get("a/z.csv") == ENTRIES[1]
    assert again.get("missing") is None
    assert again.size == sum(e.size for e in ENTRIES)
    script = again.get("run.sh")
    assert script is not None and script.executable
    assert not ENTRIES[0].executable


def test_different_content_mode_or_path_changes_the_digest() -> None:
    base = Tree.build(ENTRIES).digest
    changed = [TreeEntry("b.txt", 3, 0o644, hash_bytes(b"other")), *ENTRIES[1:]]
    assert Tree.build(changed).digest != base
    chmod = [TreeEntry("b.txt", 3, 0o755, ENTRIES[0].digest), *ENTRIES[1:]]
    assert Tree.build(chmod).digest != base
    moved = [TreeEntry("c.txt", 3, 0o644, ENTRIES[0].digest), *ENTRIES[1:]]
    assert Tree.build(moved).digest != base


def test_duplicate_paths_are_refused() -> None:
    with pytest.raises(StoreError, match="twice"):
        Tree.build([entry("x"), entry("x", b"other")])


def test_diff() -> None:
    old = Tree.build([entry("same"), entry("edited", b"v1"), entry("gone"), entry("chmod", b"c")])
    new = Tree.build(
        [entry("same"), entry("edited", b"v2"), entry("added"), entry("chmod", b"c", 0o755)]
    )
    diff = old.diff(new)
    assert diff == TreeDiff(added=("added",), modified=("chmod", "edited"), deleted=("gone",))
    assert diff.changed
    reverse = new.diff(old)
    assert (reverse.added, reverse.deleted) == (("gone",), ("added",))
    assert not old.diff(old).changed
    assert not TreeDiff().changed
    # A mode change that keeps the executable bit is not a change of content.
    assert (
        not Tree.build([entry("f", b"x", 0o644)])
        .diff(Tree.build([entry("f", b"x", 0o600)]))
        .changed
    )


GOOD = Tree.build(ENTRIES[:2]).to_bytes()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[]",
        b"null",
        b'{"entries": []}',
        b'{"format": "loopml-tree/2", "entries": []}',
        b'{"format": "loopml-tree/1"}',
        b'{"format": "loopml-tree/1", "entries": 5}',
        b'{"format": "loopml-tree/1", "entries": [5]}',
        b'{"format": "loopml-tree/1", "entries": [["a", 1, 420]]}',
        b'{"format": "loopml-tree/1", "entries": [["a", "big", 420, "' + b"0" * 64 + b'"]]}',
        b'{"format": "loopml-tree/1", "entries": [["a", -1, 420, "' + b"0" * 64 + b'"]]}',
        b'{"format": "loopml-tree/1", "entries": [["a", 1, 420, "../../../etc/passwd"]]}',
        b'{"format": "loopml-tree/1", "entries": [["a", 1, 420, "' + b"A" * 64 + b'"]]}',
        b'{"format": "loopml-tree/1", "entries": [["a", 1, 420, "' + b"0" * 64 + b'"], '
        b'["a", 2, 420, "' + b"1" * 64 + b'"]]}',
        b'{"format": "loopml-tree/1", "entries": ' + b"[" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
        GOOD[:-1],
        GOOD[: len(GOOD) // 2],
    ],
)
def test_malformed_bytes_raise_store_error(data: bytes) -> None:
    with pytest.raises(StoreError):
        Tree.from_bytes(data)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_raise_store_error(data: bytes) -> None:
    try:
        Tree.from_bytes(data)
    except StoreError:
        pass


@settings(max_examples=100, deadline=None)
@given(entries=entries_strategy, seed=st.integers())
def test_canonical_form_is_order_independent(entries: list[TreeEntry], seed: int) -> None:
    tree = Tree.build(entries)
    shuffled = entries[:]
    random.Random(seed).shuffle(shuffled)
    assert Tree.build(shuffled).to_bytes() == tree.to_bytes()
    parsed = Tree.from_bytes(tree.to_bytes())
    assert parsed == tree
    assert parsed.to_bytes() == tree.to_bytes()
    body = json.loads(tree.to_bytes())
    assert [row[0] for row in body["entries"]] == sorted(e.path for e in entries)


@settings(max_examples=100, deadline=None)
@given(old=entries_strategy, new=entries_strategy)
def test_diff_accounts_for_every_path(old: list[TreeEntry], new: list[TreeEntry]) -> None:
    a, b = Tree.build(old), Tree.build(new)
    diff = a.diff(b)
    old_paths, new_paths = {e.path for e in old}, {e.path for e in new}
    assert set(diff.added) == new_paths - old_paths
    assert set(diff.deleted) == old_paths - new_paths
    by_old, by_new = {e.path: e for e in old}, {e.path: e for e in new}
    assert set(diff.modified) == {
        p
        for p in old_paths & new_paths
        if by_old[p].digest != by_new[p].digest or by_old[p].executable != by_new[p].executable
    }
    if a.to_bytes() == b.to_bytes():
        assert not diff.changed
