"""BLAKE3 hashing of bytes and files, and hashing while copying."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import BinaryIO, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopml.store.hashing import (
    CHUNK_BYTES,
    DIGEST_HEX_LEN,
    copy_and_hash,
    hash_bytes,
    hash_file,
    new_hasher,
)

EMPTY = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
MIB = 1024 * 1024
# Around the thresholds where hashing switches strategy: mmap from 1 MiB, threads from 4 MiB.
EDGE_SIZES = [0, 1, 1023, 1024, 1025, MIB - 1, MIB, MIB + 1, 4 * MIB - 1, 4 * MIB, 4 * MIB + 1]
_POOL = random.Random(1).randbytes(CHUNK_BYTES + 3 * MIB)


def test_blake3_test_vector_for_empty_input(tmp_path: Path) -> None:
    assert hash_bytes(b"") == EMPTY
    assert new_hasher().hexdigest() == EMPTY
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert hash_file(empty) == EMPTY
    assert copy_and_hash(io.BytesIO(b""), io.BytesIO()) == (EMPTY, 0)


def test_digest_shape() -> None:
    digest = hash_bytes(b"abc")
    assert len(digest) == DIGEST_HEX_LEN
    assert digest == digest.lower()
    int(digest, 16)
    assert hash_bytes(bytearray(b"abc")) == hash_bytes(memoryview(b"abc")) == digest


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_hash_file_matches_hash_bytes_at_thresholds(tmp_path: Path, size: int) -> None:
    data = _POOL[:size]
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    expected = hash_bytes(data)
    assert hash_file(path) == expected
    assert hash_file(str(path)) == expected
    assert new_hasher(size).update(data).hexdigest() == expected  # threaded or not: same hash


@pytest.mark.parametrize("size", [0, 5, 64 * 1024 + 1, MIB + 7, CHUNK_BYTES + 3])
@pytest.mark.parametrize("hint", ["none", "exact", "too_small", "too_large"])
def test_copy_and_hash_matches_at_thresholds(size: int, hint: str) -> None:
    data = _POOL[:size]
    size_hint = {"none": 0, "exact": size, "too_small": 1, "too_large": 10 * size + 1}[hint]
    out = io.BytesIO()
    assert copy_and_hash(io.BytesIO(data), out, size_hint) == (hash_bytes(data), size)
    assert out.getvalue() == data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=200_000), hint=st.integers(min_value=0, max_value=300_000))
def test_copy_and_hash_equals_hash_bytes(data: bytes, hint: int) -> None:
    out = io.BytesIO()
    assert copy_and_hash(io.BytesIO(data), out, hint) == (hash_bytes(data), len(data))
    assert out.getvalue() == data


class _Trickle(io.RawIOBase):
    """A raw reader that returns at most a few bytes per call, like a pipe or a socket."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self._data[self._pos : self._pos + min(self._step, len(buffer))]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=20_000), step=st.integers(min_value=1, max_value=5000))
def test_copy_and_hash_with_short_reads(data: bytes, step: int) -> None:
    out = io.BytesIO()
    source = cast(BinaryIO, _Trickle(data, step))
    assert copy_and_hash(source, out, len(data)) == (hash_bytes(data), len(data))
    assert out.getvalue() == data


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(size=st.sampled_from(EDGE_SIZES) | st.integers(min_value=0, max_value=5 * MIB))
def test_hash_file_equals_hash_bytes(tmp_path: Path, size: int) -> None:
    data = _POOL[:size]
    path = tmp_path / f"h-{size}.bin"
    path.write_bytes(data)
    assert hash_file(path) == hash_bytes(data)
    with open(path, "rb", buffering=0) as source:
        assert copy_and_hash(source, io.BytesIO(), size) == (hash_bytes(data), size)


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=5000), split=st.integers(min_value=0, max_value=5000))
def test_incremental_hash_equals_one_shot(data: bytes, split: int) -> None:
    hasher = new_hasher()
    hasher.update(data[:split])
    hasher.update(data[split:])
    assert hasher.hexdigest() == hash_bytes(data)
