"""Contract tests: one file, run against every object backend (DESIGN section 9).

Every test takes a ``Harness``: an ``ObjectStore`` over one backend, plus a way to damage a stored
object behind the store's back (the file for the local folder, a raw PUT for S3).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from loopml.store.errors import CorruptObjectError, ObjectNotFoundError
from loopml.store.hashing import hash_bytes, hash_file, new_hasher
from loopml.store.objects.fsspec_backend import FsspecObjectBackend
from loopml.store.objects.local import LocalObjectBackend
from loopml.store.objects.packs import PackWriter
from loopml.store.objects.protocol import ObjectBackend
from loopml.store.objects.store import ObjectStore

BACKENDS = ["local", pytest.param("s3", marks=pytest.mark.s3)]
# Small enough that a few hundred KiB exercise the "large object" paths of copy_to.
SMALL_OBJECT_BYTES = 64 * 1024


@dataclass
class Harness:
    """A store under test and a way to overwrite one of its objects' stored bytes."""

    kind: str
    store: ObjectStore
    overwrite: Callable[[str, bytes], None]

    @property
    def backend(self) -> ObjectBackend:
        return self.store.backend


def _local(root: Path) -> Harness:
    backend = LocalObjectBackend(root, durable=False)

    def overwrite(digest: str, data: bytes) -> None:
        path = backend.loose_path(digest)
        path.chmod(0o644)  # objects are written read-only
        path.write_bytes(data)

    return Harness("local", ObjectStore(backend, small_object_bytes=SMALL_OBJECT_BYTES), overwrite)


def _s3(bucket: str, endpoint: str, prefix: str = "objects") -> Harness:
    backend = FsspecObjectBackend(f"{bucket}/{prefix}", storage_options={"endpoint_url": endpoint})

    def overwrite(digest: str, data: bytes) -> None:
        backend.fs.pipe_file(f"{backend.root}/{digest[:2]}/{digest[2:]}", data)

    return Harness("s3", ObjectStore(backend, small_object_bytes=SMALL_OBJECT_BYTES), overwrite)


def second_view(harness: Harness) -> ObjectStore:
    """Another client of the same storage, as another process or a teammate would have."""
    backend = harness.backend
    if isinstance(backend, LocalObjectBackend):
        return ObjectStore(LocalObjectBackend(backend.root))
    assert isinstance(backend, FsspecObjectBackend)
    options = {"endpoint_url": backend.fs.endpoint_url, "skip_instance_cache": True}
    return ObjectStore(FsspecObjectBackend(backend.url, storage_options=options))


def make_harness(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    if kind == "local":
        return _local(tmp_path / f"objects-{os.urandom(4).hex()}")
    bucket = request.getfixturevalue("s3_bucket")
    endpoint = request.getfixturevalue("s3_server")
    return _s3(bucket, endpoint, prefix=f"objects-{os.urandom(4).hex()}")


@pytest.fixture(params=BACKENDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    """An empty store over the backend under test."""
    return make_harness(str(request.param), tmp_path, request)


def _blob(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


# -- put / has / open ------------------------------------------------------------------------


def test_round_trip(harness: Harness, tmp_path: Path) -> None:
    store = harness.store
    data = b"hello, objects"
    digest = store.add_bytes(data)
    assert digest == hash_bytes(data)
    assert store.has(digest)
    assert harness.backend.has(digest)
    assert store.read_bytes(digest) == data
    with store.open(digest) as handle:
        assert handle.read() == data
    assert harness.backend.size(digest) == len(data)

    source = tmp_path / "file.bin"
    source.write_bytes(b"from a file")
    stored = store.add_file(source)
    assert (stored.digest, stored.size) == (hash_bytes(b"from a file"), 11)
    out = tmp_path / "out" / "copy.bin"
    store.export_file(stored.digest, out, mode=0o640)
    assert out.read_bytes() == b"from a file"
    assert out.stat().st_mode & 0o777 == 0o640
    assert sorted(harness.backend.iter_digests()) == sorted({digest, stored.digest})


def test_empty_object(harness: Harness) -> None:
    digest = harness.store.add_bytes(b"")
    assert digest == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    assert harness.store.read_bytes(digest) == b""
    assert harness.store.verify(digest)


def test_same_content_stored_once(harness: Harness, tmp_path: Path) -> None:
    store = harness.store
    data = _blob(5000)
    first = store.add_bytes(data)
    assert store.add_bytes(data) == first
    harness.backend.put_bytes(first, data)  # a put of what is there is a no-op
    path = tmp_path / "same.bin"
    path.write_bytes(data)
    assert store.add_file(path).digest == first
    other = store.add_bytes(b"something else")
    assert sorted(harness.backend.iter_digests()) == sorted([first, other])


def test_missing(harness: Harness) -> None:
    store = harness.store
    a = store.add_bytes(b"a")
    b = store.add_bytes(b"b")
    absent = hash_bytes(b"never stored")
    assert store.missing([a, b, absent]) == {absent}
    assert store.missing([a, b]) == set()
    assert store.missing([]) == set()
    assert store.missing(iter([absent])) == {absent}


def test_large_object_streams_in_and_out(harness: Harness, tmp_path: Path) -> None:
    size = 20 * 1024 * 1024 + 123
    source = tmp_path / "large.bin"
    with open(source, "wb") as out:
        rng = random.Random(7)
        remaining = size
        while remaining:
            chunk = min(remaining, 4 * 1024 * 1024)
            out.write(rng.randbytes(chunk))
            remaining -= chunk
    expected = hash_file(source)

    stored = harness.store.add_file(source)
    assert (stored.digest, stored.size) == (expected, size)
    assert harness.backend.size(expected) == size

    hasher = new_hasher(size)
    read = 0
    with harness.store.open(expected) as handle:
        while piece := handle.read(1024 * 1024):
            assert len(piece) <= 1024 * 1024
            hasher.update(piece)
            read += len(piece)
    assert (hasher.hexdigest(), read) == (expected, size)

    copy = tmp_path / "exported.bin"
    harness.store.export_file(expected, copy)
    assert copy.stat().st_size == size
    assert hash_file(copy) == expected
    assert not list(tmp_path.glob(".*loopml-tmp"))


# -- verification ------------------------------------------------------------------------------


def test_read_bytes_of_tampered_object_raises(harness: Harness) -> None:
    data = _blob(3000, seed=1)
    digest = harness.store.add_bytes(data)
    damaged = bytearray(data)
    damaged[1234] ^= 0x01
    harness.overwrite(digest, bytes(damaged))

    with pytest.raises(CorruptObjectError) as caught:
        harness.store.read_bytes(digest)
    assert caught.value.digest == digest
    assert digest[:16] in str(caught.value)
    assert not harness.store.verify(digest)


def test_streaming_reader_raises_at_eof_on_tamper(harness: Harness) -> None:
    data = _blob(200_000, seed=2)
    digest = harness.store.add_bytes(data)
    harness.overwrite(digest, data[:-1] + bytes([data[-1] ^ 0xFF]))

    with harness.store.open(digest) as handle:
        assert handle.read(1000) == data[:1000]  # nothing is known before the end
        with pytest.raises(CorruptObjectError) as caught:
            handle.read()
        assert caught.value.digest == digest
        with pytest.raises(CorruptObjectError):
            handle.read()  # a caller that retries does not get a clean EOF


def test_truncated_object_is_corrupt(harness: Harness, tmp_path: Path) -> None:
    data = _blob(10_000, seed=3)
    digest = harness.store.add_bytes(data)
    harness.overwrite(digest, data[:5000])
    with pytest.raises(CorruptObjectError):
        harness.store.read_bytes(digest)
    destination = tmp_path / "export" / "dest.bin"
    with pytest.raises(CorruptObjectError):
        harness.store.export_file(digest, destination)
    assert list(destination.parent.iterdir()) == []  # neither the file nor its temporary


def test_missing_object_raises_not_found(harness: Harness, tmp_path: Path) -> None:
    absent = hash_bytes(b"absent")
    assert not harness.store.has(absent)
    with pytest.raises(ObjectNotFoundError) as caught:
        harness.store.read_bytes(absent)
    assert caught.value.digest == absent
    with pytest.raises(ObjectNotFoundError):
        harness.store.open(absent)
    with pytest.raises(ObjectNotFoundError):
        harness.backend.size(absent)
    with pytest.raises(ObjectNotFoundError):
        harness.store.export_file(absent, tmp_path / "x")
    assert not harness.store.verify(absent)


def test_delete(harness: Harness) -> None:
    keep = harness.store.add_bytes(b"keep")
    gone = harness.store.add_bytes(b"gone")
    harness.backend.delete(gone)
    assert not harness.store.has(gone)
    assert harness.store.missing([keep, gone]) == {gone}
    assert list(harness.backend.iter_digests()) == [keep]
    with pytest.raises(ObjectNotFoundError):
        harness.store.read_bytes(gone)
    harness.backend.delete(gone)  # deleting what is not there is fine
    assert harness.store.read_bytes(keep) == b"keep"
    assert harness.store.add_bytes(b"gone") == gone  # and it can come back
    assert harness.store.read_bytes(gone) == b"gone"


def test_sees_what_other_clients_wrote_and_deleted(harness: Harness) -> None:
    store = harness.store
    old = store.add_bytes(b"old")
    new = hash_bytes(b"new")
    assert store.missing([old, new]) == {new}  # a listing, which must not be cached
    assert store.has(old)

    other = second_view(harness)
    other.backend.delete(old)
    assert other.add_bytes(b"new") == new

    assert store.missing([old, new]) == {old}
    assert not store.has(old)
    assert store.has(new)
    assert store.read_bytes(new) == b"new"
    with pytest.raises(ObjectNotFoundError):
        store.read_bytes(old)
    assert list(store.backend.iter_digests()) == [new]


def test_put_file_on_backend(harness: Harness, tmp_path: Path) -> None:
    path = tmp_path / "p.bin"
    data = _blob(70_000, seed=4)
    path.write_bytes(data)
    digest = hash_bytes(data)
    harness.backend.put_file(digest, path)
    harness.backend.put_file(digest, path)
    assert harness.store.read_bytes(digest) == data
    assert list(harness.backend.iter_digests()) == [digest]


# -- copying between backends ------------------------------------------------------------------

DIRECTIONS = [
    pytest.param(("local", "s3"), marks=pytest.mark.s3, id="local-to-s3"),
    pytest.param(("s3", "local"), marks=pytest.mark.s3, id="s3-to-local"),
    pytest.param(("local", "local"), id="local-to-local"),
]


@pytest.fixture(params=DIRECTIONS)
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Harness, Harness]:
    """A (source, target) pair of empty stores."""
    source_kind, target_kind = request.param
    return (
        make_harness(source_kind, tmp_path, request),
        make_harness(target_kind, tmp_path, request),
    )


class Sent:
    """Records every object a copy writes to the target, whichever way it is written."""

    def __init__(self, target: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
        self.digests: list[str] = []
        backend = target.backend
        put_bytes, put_file = backend.put_bytes, backend.put_file

        def spy_bytes(digest: str, data: bytes) -> None:
            self.digests.append(digest)
            put_bytes(digest, data)

        def spy_file(digest: str, path: Path) -> None:
            self.digests.append(digest)
            put_file(digest, path)

        monkeypatch.setattr(backend, "put_bytes", spy_bytes)
        monkeypatch.setattr(backend, "put_file", spy_file)
        pack_add = PackWriter.add

        def spy_pack(writer: PackWriter, digest: str, data: bytes) -> None:
            self.digests.append(digest)
            pack_add(writer, digest, data)

        monkeypatch.setattr(PackWriter, "add", spy_pack)


def _fill(store: ObjectStore, count: int, large: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    digests = [store.add_bytes(rng.randbytes(rng.randint(0, 3000))) for _ in range(count)]
    digests += [store.add_bytes(rng.randbytes(SMALL_OBJECT_BYTES + 1 + i)) for i in range(large)]
    return list(dict.fromkeys(digests))


def test_copy_sends_only_missing_objects(
    pair: tuple[Harness, Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = pair
    digests = _fill(source.store, 40, large=3, seed=10)
    already = digests[::3]
    for digest in already:
        target.store.add_bytes(source.store.read_bytes(digest))

    todo = target.store.missing(digests)
    assert todo == set(digests) - set(already)
    sent = Sent(target, monkeypatch)
    seen: list[tuple[str, int]] = []
    count = source.store.copy_to(
        target.store, sorted(todo), jobs=4, on_object=lambda d, n: seen.append((d, n))
    )

    assert count == len(todo)
    assert sorted(sent.digests) == sorted(todo)
    assert sorted(d for d, _ in seen) == sorted(todo)
    assert dict(seen) == {d: source.backend.size(d) for d in todo}
    assert target.store.missing(digests) == set()
    for digest in digests:
        assert target.store.read_bytes(digest) == source.store.read_bytes(digest)


def test_copy_resumes_with_only_the_rest(
    pair: tuple[Harness, Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = pair
    digests = _fill(source.store, 30, large=2, seed=11)
    first_half = digests[: len(digests) // 2]
    source.store.copy_to(target.store, first_half)  # "interrupted" after these

    rest = target.store.missing(digests)
    assert rest == set(digests) - set(first_half)
    sent = Sent(target, monkeypatch)
    source.store.copy_to(target.store, sorted(rest), jobs=3)
    assert sorted(sent.digests) == sorted(rest)
    assert target.store.missing(digests) == set()
    assert all(target.store.verify(d) for d in digests)


def test_copy_interrupted_by_an_error_then_resumed(
    pair: tuple[Harness, Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = pair
    digests = _fill(source.store, 20, large=2, seed=12)
    calls = 0
    real_size = source.backend.size

    def failing_size(digest: str) -> int:
        nonlocal calls
        calls += 1
        if calls == 7:
            raise OSError("connection reset")
        return real_size(digest)

    monkeypatch.setattr(source.backend, "size", failing_size)
    with pytest.raises(OSError, match="connection reset"):
        source.store.copy_to(target.store, digests, jobs=1)
    monkeypatch.setattr(source.backend, "size", real_size)

    landed = set(digests) - target.store.missing(digests)
    for digest in landed:
        assert target.store.verify(digest)  # whatever landed, landed whole
    rest = target.store.missing(digests)
    source.store.copy_to(target.store, sorted(rest))
    assert target.store.missing(digests) == set()
    assert all(target.store.verify(d) for d in digests)


@pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
def test_copy_verifies_what_it_sends(pair: tuple[Harness, Harness], large: bool) -> None:
    source, target = pair
    good = source.store.add_bytes(b"fine")
    data = _blob(SMALL_OBJECT_BYTES * 2 if large else 500, seed=13)
    bad = source.store.add_bytes(data)
    source.overwrite(bad, data[:-1] + b"!")

    with pytest.raises(CorruptObjectError) as caught:
        source.store.copy_to(target.store, [bad], jobs=1)
    assert caught.value.digest == bad
    assert not target.store.has(bad)
    source.store.copy_to(target.store, [good])
    assert target.store.read_bytes(good) == b"fine"
