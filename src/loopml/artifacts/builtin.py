"""The built-in materializers: JSON, Parquet, NumPy, skops, paths, and opt-in pickle."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from loopml.artifacts.errors import ArtifactError, UnsafeLoadError
from loopml.store.objects.store import ObjectStore

__all__ = [
    "FileMaterializer",
    "JsonMaterializer",
    "NumpyMaterializer",
    "ParquetMaterializer",
    "PathMaterializer",
    "PickleMaterializer",
    "SkopsMaterializer",
]

_JSON_TYPES = (dict, list, tuple, str, int, float, bool, type(None))


def _numpy_scalar(value: Any) -> bool:
    """A NumPy bool, integer or float scalar (``np.int64(3)``, what ``arr.sum()`` returns)."""
    return (
        type(value).__module__ == "numpy"
        and getattr(value, "shape", None) == ()
        and getattr(getattr(value, "dtype", None), "kind", "") in ("b", "i", "u", "f")
    )


def _json_safe(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_safe(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_json_safe(v) for v in value)
    return isinstance(value, _JSON_TYPES) or _numpy_scalar(value)


_MARKERS = ({"__float__"}, {"__dict__"})


def _encode_floats(value: Any) -> Any:
    # JSON has no NaN or infinity; spell them so that they round-trip exactly. A user's dict
    # that looks like one of these spellings is wrapped in {"__dict__": ...} to stay a dict.
    # NumPy scalars are stored as the Python numbers they equal.
    if _numpy_scalar(value):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if isinstance(value, dict):
        encoded = {k: _encode_floats(v) for k, v in value.items()}
        return {"__dict__": encoded} if set(value) in _MARKERS else encoded
    if isinstance(value, list | tuple):
        return [_encode_floats(v) for v in value]
    return value


def _decode_floats(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        if set(value) == {"__dict__"} and isinstance(value["__dict__"], dict):
            return {k: _decode_floats(v) for k, v in value["__dict__"].items()}
        return {k: _decode_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_floats(v) for v in value]
    return value


class JsonMaterializer:
    """Dicts, lists and scalars as canonical JSON (sorted keys, no whitespace).

    NumPy bool, integer and float scalars are accepted and load as Python numbers.
    """

    name = "json"

    def handles(self, value: object) -> bool:
        """JSON-representable values with string keys."""
        return _json_safe(value)

    def save(self, value: Any, store: ObjectStore) -> str:
        """Canonical JSON bytes."""
        data = json.dumps(
            _encode_floats(value), sort_keys=True, separators=(",", ":"), allow_nan=False
        )
        return store.add_bytes(data.encode("utf-8"))

    def load(self, digest: str, store: ObjectStore) -> Any:
        """The value (tuples come back as lists)."""
        return _decode_floats(json.loads(store.read_bytes(digest)))


class ParquetMaterializer:
    """pandas DataFrames as Parquet."""

    name = "parquet"

    def handles(self, value: object) -> bool:
        """A pandas DataFrame."""
        return type(value).__module__.startswith("pandas") and type(value).__name__ == "DataFrame"

    def save(self, value: Any, store: ObjectStore) -> str:
        """Parquet bytes (pyarrow, no compression-level randomness)."""
        buffer = io.BytesIO()
        value.to_parquet(buffer, engine="pyarrow", index=True)
        return store.add_bytes(buffer.getvalue())

    def load(self, digest: str, store: ObjectStore) -> Any:
        """The DataFrame."""
        import pandas as pd

        return pd.read_parquet(io.BytesIO(store.read_bytes(digest)), engine="pyarrow")


class NumpyMaterializer:
    """NumPy arrays as ``.npy`` (object arrays are refused: they would need pickle)."""

    name = "npy"

    def handles(self, value: object) -> bool:
        """A NumPy array."""
        return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"

    def save(self, value: Any, store: ObjectStore) -> str:
        """``.npy`` bytes, never pickled."""
        import numpy as np

        if value.dtype == object:
            raise ArtifactError(
                "a NumPy array of Python objects cannot be stored safely; convert it to a "
                "numeric or string dtype, or opt in with @step(pickle=True)"
            )
        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return store.add_bytes(buffer.getvalue())

    def load(self, digest: str, store: ObjectStore) -> Any:
        """The array."""
        import numpy as np

        return np.load(io.BytesIO(store.read_bytes(digest)), allow_pickle=False)


class SkopsMaterializer:
    """scikit-learn (and XGBoost/LightGBM scikit-learn API) models as normalised skops."""

    name = "skops"

    def handles(self, value: object) -> bool:
        """An estimator from scikit-learn, XGBoost or LightGBM."""
        module = type(value).__module__.split(".")[0]
        return module in ("sklearn", "xgboost", "lightgbm") and hasattr(value, "get_params")

    def save(self, value: Any, store: ObjectStore) -> str:
        """A deterministic skops archive."""
        from loopml.artifacts.skops_format import dumps_normalised

        return store.add_bytes(dumps_normalised(value))

    def load(self, digest: str, store: ObjectStore) -> Any:
        """The model, loaded without pickle."""
        from loopml.artifacts.skops_format import loads_trusted

        return loads_trusted(store.read_bytes(digest))


class PathMaterializer:
    """A ``pathlib.Path`` folder as a tree; loads as a read-only local folder."""

    name = "path"

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = cache_dir

    def handles(self, value: object) -> bool:
        """A Path to a folder."""
        return isinstance(value, Path) and value.is_dir()

    def save(self, value: Any, store: ObjectStore) -> str:
        """A tree of the folder (small files packed)."""
        return _save_tree(Path(value), store)

    def load(self, digest: str, store: ObjectStore) -> Any:
        """A read-only copy under the cache folder."""
        return _materialise(digest, store, self.cache_dir)


class FileMaterializer(PathMaterializer):
    """A ``pathlib.Path`` file as a one-entry tree (keeping its name); loads as a file path."""

    name = "file"

    def handles(self, value: object) -> bool:
        """A Path to a file."""
        return isinstance(value, Path) and value.is_file()

    def load(self, digest: str, store: ObjectStore) -> Any:
        """The read-only copy of the file."""
        root = _materialise(digest, store, self.cache_dir)
        return root / next(iter(store.get_tree(digest))).path


def _save_tree(root: Path, store: ObjectStore) -> str:
    from loopml.store.tree import Tree, TreeEntry

    if not root.exists():
        raise ArtifactError(f"the step returned {root}, which does not exist")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    entries = []
    with store.batch() as batch:
        for file in files:
            stored = batch.add_file(file)
            relative = file.name if root.is_file() else file.relative_to(root).as_posix()
            mode = 0o755 if os.access(file, os.X_OK) else 0o644
            entries.append(TreeEntry(relative, stored.size, mode, stored.digest))
        return batch.add_bytes(Tree.build(entries).to_bytes())


def _materialise(digest: str, store: ObjectStore, cache_dir: Path | None) -> Path:
    import tempfile

    tree = store.get_tree(digest)
    base = cache_dir or Path(tempfile.gettempdir()) / "loopml-outputs"
    root = base / digest
    if not root.exists():
        staging = base / f".{digest}.{os.getpid()}"
        _remove_tree(staging)  # left by an interrupted earlier attempt of this pid
        for entry in tree:
            parts = Path(entry.path).parts
            if entry.path.startswith("/") or ".." in parts:
                raise ArtifactError(f"tree entry {entry.path!r} would leave its folder")
            store.export_file(entry.digest, staging / entry.path, mode=entry.mode & 0o555)
        staging.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(staging, root)
        except OSError:
            _remove_tree(staging)  # another process materialised the same tree first
    return root


def _remove_tree(path: Path) -> None:
    """Remove a folder whose files (and maybe folders) are read-only; nothing if absent."""
    import shutil
    import stat

    if not path.exists():
        return
    for folder, _dirs, _files in os.walk(path):
        os.chmod(folder, stat.S_IRWXU)
    shutil.rmtree(path, ignore_errors=True)


class PickleMaterializer:
    """Opt-in pickle, signed with this workspace's secret key.

    loopml never unpickles what it did not write: every blob carries an HMAC of its payload
    made with a key that never leaves ``.loopml/``, and loading checks it first.
    """

    name = "pickle"
    _MAGIC = b"LMPKL1"

    def __init__(self, key: bytes) -> None:
        self._key = key

    def handles(self, value: object) -> bool:
        """Anything (used only when a step opts in)."""
        return True

    def save(self, value: Any, store: ObjectStore) -> str:
        """Signed pickle bytes."""
        import pickle

        payload = pickle.dumps(value, protocol=5)
        tag = hmac.new(self._key, payload, hashlib.sha256).digest()
        return store.add_bytes(self._MAGIC + tag + payload)

    def load(self, digest: str, store: ObjectStore) -> Any:
        """The value, after checking the signature."""
        import pickle

        data = store.read_bytes(digest)
        tag, payload = data[6:38], data[38:]
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()
        if not data.startswith(self._MAGIC) or not hmac.compare_digest(tag, expected):
            raise UnsafeLoadError(
                f"object {digest[:12]} is a pickle this workspace did not write; loopml never "
                "unpickles foreign data — run the step here to produce it"
            )
        return pickle.loads(payload)
