"""Pack files of the local backend: many small objects in one file plus a checksummed index."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from loopml.store.errors import CorruptObjectError, StoreError
from loopml.store.fsck import check_store
from loopml.store.gc import collect_garbage
from loopml.store.hashing import hash_bytes
from loopml.store.objects.local import LocalObjectBackend
from loopml.store.objects.packs import PACK_MAGIC, read_index
from loopml.store.objects.store import ObjectStore
from loopml.store.workspace import Workspace


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(LocalObjectBackend(tmp_path / "objects", durable=False))


def local(store: ObjectStore) -> LocalObjectBackend:
    backend = store.backend
    assert isinstance(backend, LocalObjectBackend)
    return backend


def blobs(count: int, tag: str = "") -> list[bytes]:
    return [f"{tag}small object {i}\n".encode() * (1 + i % 7) for i in range(count)]


def packs(backend: LocalObjectBackend) -> tuple[list[str], list[str]]:
    names = (
        sorted(p.name for p in backend.packs_dir.iterdir()) if backend.packs_dir.is_dir() else []
    )
    return [n for n in names if n.endswith(".pack")], [n for n in names if n.endswith(".idx")]


def flip(path: Path, offset: int) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_batch_of_small_objects_is_one_pack(store: ObjectStore) -> None:
    backend = local(store)
    data = blobs(2000)
    with store.batch() as batch:
        digests = [batch.add_bytes(item) for item in data]
        assert not store.has(digests[0])  # nothing is visible before the batch commits

    pack_files, index_files = packs(backend)
    assert len(pack_files) == len(index_files) == 1
    assert list(backend.iter_loose()) == []
    assert [p.name for p in backend.root.iterdir() if len(p.name) == 2] == []
    assert len(read_index(backend.packs_dir / index_files[0]).entries) == 2000
    assert sorted(backend.iter_digests()) == sorted(digests)
    assert store.missing(digests) == set()
    for digest, item in zip(digests, data, strict=True):
        assert store.read_bytes(digest) == item
    with store.open(digests[5]) as handle:
        assert handle.read() == data[5]
    assert backend.size(digests[5]) == len(data[5])


def test_a_batch_sends_large_files_loose_and_dedups(store: ObjectStore, tmp_path: Path) -> None:
    backend = local(store)
    small, large = tmp_path / "small.txt", tmp_path / "large.bin"
    small.write_bytes(b"tiny")
    large.write_bytes(os.urandom(store.small_object_bytes + 1))
    before = store.add_bytes(b"already loose")
    with store.batch() as batch:
        assert batch.add_file(small).digest == hash_bytes(b"tiny")
        assert batch.add_file(small).size == 4
        big = batch.add_file(large)
        assert batch.add_bytes(b"already loose") == before
    assert sorted(d for d, _ in backend.iter_loose()) == sorted([before, big.digest])
    (index,) = backend.pack_indexes()
    assert list(index.entries) == [hash_bytes(b"tiny")]


def test_a_batch_of_known_objects_writes_no_pack(store: ObjectStore) -> None:
    backend = local(store)
    with store.batch() as batch:
        digests = [batch.add_bytes(item) for item in blobs(10)]
    with store.batch() as batch:
        assert [batch.add_bytes(item) for item in blobs(10)] == digests
    assert len(packs(backend)[0]) == 1


def test_tampered_pack_byte_fails_only_that_object(store: ObjectStore) -> None:
    backend = local(store)
    data = blobs(50)
    with store.batch() as batch:
        digests = [batch.add_bytes(item) for item in data]
    (index,) = backend.pack_indexes()
    offset, _ = index.entries[digests[17]]
    flip(index.pack_path, offset + 3)

    with pytest.raises(CorruptObjectError) as caught:
        store.read_bytes(digests[17])
    assert caught.value.digest == digests[17]
    with store.open(digests[17]) as handle, pytest.raises(CorruptObjectError):
        handle.read()
    assert not store.verify(digests[17])
    for digest, item in zip(digests, data, strict=True):
        if digest != digests[17]:
            assert store.read_bytes(digest) == item


def test_exception_inside_a_batch_keeps_earlier_objects(store: ObjectStore) -> None:
    backend = local(store)
    with store.batch() as batch:
        earlier = [batch.add_bytes(item) for item in blobs(20, "a")]
    with pytest.raises(RuntimeError, match="boom"), store.batch() as batch:
        doomed = [batch.add_bytes(item) for item in blobs(20, "b")]
        raise RuntimeError("boom")

    assert store.missing(earlier) == set()
    assert store.missing(doomed) == set(doomed)
    assert len(packs(backend)[0]) == 1
    assert backend.leftovers(older_than=0) == []  # the aborted pack was removed
    for digest, item in zip(earlier, blobs(20, "a"), strict=True):
        assert store.read_bytes(digest) == item


def _kill_minus_nine_leftovers(backend: LocalObjectBackend, digest_of_new: str) -> list[Path]:
    """What a process killed mid-write leaves: a temporary pack, a pack with no index yet, a
    temporary index, a temporary loose object and a copy's scratch folder."""
    backend.packs_dir.mkdir(parents=True, exist_ok=True)
    body = PACK_MAGIC + b"half-written object"
    tmp_pack = backend.packs_dir / "tmp-pack-0000000000000000000000000000dead.pack"
    tmp_pack.write_bytes(body)
    orphan = backend.packs_dir / "pack-0000000000000000000000000000beef.pack"
    orphan.write_bytes(body)
    tmp_index = backend.packs_dir / "tmp-pack-0000000000000000000000000000beef.idx"
    tmp_index.write_bytes(b"LMIDX1\n\x00partial")
    backend.tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp_object = backend.tmp_dir / "obj-0000"
    tmp_object.write_bytes(b"half a loose object")
    scratch = backend.tmp_dir / "xfer-abc"
    scratch.mkdir()
    (scratch / digest_of_new).write_bytes(b"part of a large object")
    made = [tmp_pack, orphan, tmp_index, tmp_object, scratch]
    old = time.time() - 7200
    for path in made:
        os.utime(path, (old, old))
    return made


def test_leftovers_of_a_killed_writer_are_ignored_reported_and_collected(
    workspace: Workspace,
) -> None:
    store = workspace.objects
    backend = local(store)
    with store.batch() as batch:
        kept = [batch.add_bytes(item) for item in blobs(30)]
    pinned = store.add_bytes(b"pinned so gc has a root")
    workspace.metadata.run_write(
        lambda conn: conn.exec_driver_sql(
            "INSERT INTO pins (hash, reason, created_at) VALUES (?, 'test', 0)", (pinned,)
        )
    )
    new = hash_bytes(b"half-written object")
    made = _kill_minus_nine_leftovers(backend, new)

    fresh = ObjectStore(LocalObjectBackend(backend.root))
    assert not fresh.has(new)
    assert fresh.missing(kept) == set()
    assert all(fresh.verify(d) for d in kept)
    assert len(local(fresh).pack_indexes()) == 1
    assert sorted(backend.leftovers(older_than=0)) == sorted(made)
    assert sorted(backend.leftovers(older_than=3600)) == sorted(made)
    assert backend.leftovers(older_than=3 * 3600) == []

    report = check_store(workspace)
    assert report.ok
    assert sorted(report.leftovers) == sorted(made)

    dry = collect_garbage(workspace, dry_run=True, grace_seconds=0)
    assert sorted(dry.leftovers) == sorted(made)
    assert all(p.exists() for p in made)

    report_gc = collect_garbage(workspace, dry_run=False, grace_seconds=3600)
    assert sorted(report_gc.leftovers) == sorted(made)
    assert not any(p.exists() for p in made)
    assert backend.leftovers(older_than=0) == []
    assert store.missing([*kept, pinned]) == set()  # kept: unreachable, but younger than grace
    assert all(store.verify(d) for d in kept)


def test_index_checksum_tamper_is_detected(workspace: Workspace) -> None:
    store = workspace.objects
    with store.batch() as batch:
        digests = [batch.add_bytes(item) for item in blobs(10)]
    (index_path,) = local(store).packs_dir.glob("pack-*.idx")
    flip(index_path, 20)  # inside the first entry's digest

    with pytest.raises(StoreError, match="fails its checksum"):
        read_index(index_path)
    fresh = ObjectStore(LocalObjectBackend(local(store).root))
    with pytest.raises(StoreError, match=index_path.name):
        fresh.has(digests[0])
    with pytest.raises(StoreError, match=index_path.name):
        fresh.read_bytes(digests[0])

    report = check_store(workspace)
    assert not report.ok
    assert any(p.kind == "damaged" and index_path.name in p.location for p in report.problems)
    with pytest.raises(StoreError):
        collect_garbage(workspace, dry_run=False, grace_seconds=0)
    assert index_path.exists()


def test_truncated_index_and_missing_pack(store: ObjectStore) -> None:
    backend = local(store)
    with store.batch() as batch:
        digest = batch.add_bytes(b"x" * 100)
    (index,) = backend.pack_indexes()
    index.pack_path.unlink()
    fresh = ObjectStore(LocalObjectBackend(backend.root))
    with pytest.raises(StoreError, match="missing"):
        fresh.read_bytes(digest)
    index.index_path.write_bytes(index.index_path.read_bytes()[:20])
    with pytest.raises(StoreError, match="truncated"):
        read_index(index.index_path)


def test_repack_one_keeps_survivors_readable(store: ObjectStore) -> None:
    backend = local(store)
    data = blobs(100)
    with store.batch() as batch:
        digests = [batch.add_bytes(item) for item in data]
    (index,) = backend.pack_indexes()
    keep = set(digests[::3])

    assert backend.repack_one(index, keep=keep) == len(digests) - len(keep)
    assert not index.pack_path.exists()
    assert not index.index_path.exists()
    (new_index,) = backend.pack_indexes()
    assert set(new_index.entries) == keep
    assert store.missing(digests) == set(digests) - keep
    for digest, item in zip(digests, data, strict=True):
        if digest in keep:
            assert store.read_bytes(digest) == item
    assert backend.repack_one(new_index, keep=keep) == 0  # nothing to drop: untouched
    assert new_index.index_path.exists()

    backend.delete(digests[0])  # a packed object is deleted by rewriting its pack
    assert not store.has(digests[0])
    assert all(store.verify(d) for d in keep - {digests[0]})
    survivor = next(iter(keep - {digests[0]}))
    (last,) = backend.pack_indexes()
    assert backend.repack_one(last, keep=set()) == len(keep) - 1
    assert backend.pack_indexes() == []
    assert not store.has(survivor)
    assert packs(backend) == ([], [])


def test_concurrent_batches_from_two_threads(store: ObjectStore) -> None:
    backend = local(store)
    shared = blobs(100, "shared")
    results: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker(name: str) -> None:
        try:
            barrier.wait()
            with store.batch() as batch:
                own = [batch.add_bytes(item) for item in blobs(500, name)]
                both = [batch.add_bytes(item) for item in shared]
            results[name] = own + both
            assert store.missing(results[name]) == set()  # its own commit is visible at once
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("t1", "t2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    everything = set(results["t1"]) | set(results["t2"])
    assert len(everything) == 1100
    assert set(backend.iter_digests()) == everything
    assert len(packs(backend)[1]) == 2
    fresh = ObjectStore(LocalObjectBackend(backend.root))
    assert fresh.missing(everything) == set()
    assert all(fresh.verify(d) for d in everything)


def test_threads_adding_to_one_batch(store: ObjectStore) -> None:
    data = blobs(400)
    with store.batch() as batch:
        threads = [
            threading.Thread(target=lambda part=part: [batch.add_bytes(d) for d in part])
            for part in (data[::2], data[1::2], data)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    (index,) = local(store).pack_indexes()
    assert len(index.entries) == 400
    assert all(store.read_bytes(hash_bytes(d)) == d for d in data)


def test_a_pack_committed_in_the_same_timestamp_tick_is_seen(store: ObjectStore) -> None:
    """On file systems with coarse timestamps, two changes can leave the same folder mtime."""
    backend = local(store)
    other = ObjectStore(LocalObjectBackend(backend.root, durable=False))
    with other.batch() as batch:
        first = batch.add_bytes(b"first")
    tick = time.time_ns()
    os.utime(backend.packs_dir, ns=(tick, tick))
    assert store.has(first)  # lists the folder and remembers its mtime

    with other.batch() as batch:
        second = batch.add_bytes(b"second")
    os.utime(backend.packs_dir, ns=(tick, tick))  # same tick as the listing above
    deadline = time.monotonic() + 2
    while not store.has(second) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.has(second)
    assert store.read_bytes(second) == b"second"

    with store.batch() as batch:  # this store's own commit is visible at once
        third = batch.add_bytes(b"third")
    os.utime(backend.packs_dir, ns=(tick, tick))
    assert store.has(third)
    backend.delete(third)
    os.utime(backend.packs_dir, ns=(tick, tick))
    assert not store.has(third)


def test_adding_a_stored_object_freshens_it(store: ObjectStore) -> None:
    """gc's grace period protects objects by age, so re-adding old content makes it young."""
    backend = local(store)
    loose = store.add_bytes(b"loose")
    with store.batch() as batch:
        packed = batch.add_bytes(b"packed")
    (index,) = backend.pack_indexes()
    old = time.time() - 86400
    os.utime(backend.loose_path(loose), (old, old))
    os.utime(index.index_path, (old, old))

    assert store.add_bytes(b"loose") == loose
    with store.batch() as batch:
        assert batch.add_bytes(b"packed") == packed
    assert backend.loose_path(loose).stat().st_mtime > old + 3600
    assert index.index_path.stat().st_mtime > old + 3600
    assert len(packs(backend)[0]) == 1
