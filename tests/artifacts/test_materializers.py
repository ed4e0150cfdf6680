"""Materializers: each built-in round-trips its values, deterministically; users add their own;
pickle is opt-in and only ever loads what this workspace signed."""

from __future__ import annotations

import math
import os
import pickle
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.artifacts import (
    ArtifactError,
    UnsafeLoadError,
    UnsupportedTypeError,
    materializer,
    materializer_by_name,
    materializer_for,
    registry,
)
from loopml.store.workspace import Workspace, init_workspace


@pytest.fixture(autouse=True)
def _no_user_materializers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_user", {})


def roundtrip(workspace: Workspace, value: Any, **options: Any) -> tuple[str, str, Any]:
    """(materializer name, digest, loaded value) — loaded through the name, as outputs are."""
    chosen = materializer_for(value, workspace_dir=workspace.dir, **options)
    digest = chosen.save(value, workspace.objects)
    loader = materializer_by_name(chosen.name, workspace_dir=workspace.dir)
    if hasattr(loader, "cache_dir"):
        loader.cache_dir = workspace.cache_dir("outputs")
    return chosen.name, digest, loader.load(digest, workspace.objects)


def read_only(path: Path) -> bool:
    return path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) == 0


# --- JSON --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1, "b": [1.5, None, True, "x"], "c": {"d": -0.5}},
        [1, [2, [3, "four"]], {}],
        42,
        2.5,
        "text",
        None,
        False,
        10**30,
        {"__float__": "nan"},  # looks like the NaN encoding, but is a user's dict
        {"__float__": 1, "x": 2},
        [{"__dict__": {"__float__": "inf"}}],
    ],
)
def test_json_round_trips(workspace: Workspace, value: Any) -> None:
    name, _, loaded = roundtrip(workspace, value)
    assert name == "json"
    assert loaded == value and type(loaded) is type(value)


def test_json_keeps_nan_and_infinity(workspace: Workspace) -> None:
    value = {"nan": float("nan"), "inf": float("inf"), "ninf": -math.inf, "list": [math.nan, 1.0]}
    name, _, loaded = roundtrip(workspace, value)
    assert name == "json"
    assert math.isnan(loaded["nan"]) and math.isnan(loaded["list"][0])
    assert loaded["inf"] == math.inf and loaded["ninf"] == -math.inf
    assert loaded["list"][1] == 1.0
    assert math.isnan(roundtrip(workspace, math.nan)[2])


def test_json_is_canonical(workspace: Workspace) -> None:
    one = roundtrip(workspace, {"a": 1, "b": 2})
    other = roundtrip(workspace, {"b": 2, "a": 1})
    assert one[1] == other[1]
    assert roundtrip(workspace, (1, 2))[2] == [1, 2]  # tuples come back as lists


def test_numpy_scalars_are_json_numbers(workspace: Workspace) -> None:
    value = {
        "n": np.int64(3),
        "u": np.uint8(7),
        "ok": np.bool_(True),
        "f": np.float32(0.5),
        "nan": np.float64("nan"),
        "scores": [np.int32(1), np.float16(2.0)],
    }
    name, _, loaded = roundtrip(workspace, value)
    assert name == "json"
    assert {k: loaded[k] for k in ("n", "u", "ok", "f", "scores")} == {
        "n": 3,
        "u": 7,
        "ok": True,
        "f": 0.5,
        "scores": [1, 2.0],
    }
    assert type(loaded["n"]) is int and type(loaded["ok"]) is bool
    assert math.isnan(loaded["nan"])
    assert roundtrip(workspace, np.int64(5))[2] == 5
    with pytest.raises(UnsupportedTypeError):
        materializer_for({"z": np.complex128(1j)})  # not a JSON number


# --- Parquet and .npy ----------------------------------------------------------------------------


def test_dataframes_are_parquet(workspace: Workspace) -> None:
    frame = pd.DataFrame(
        {
            "i": [1, 2, 3],
            "f": [0.5, float("nan"), 2.0],
            "s": ["a", None, "c"],
            "t": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]),
            "c": pd.Categorical(["x", "y", "x"]),
        },
        index=pd.Index([10, 20, 30], name="id"),
    )
    name, digest, loaded = roundtrip(workspace, frame)
    assert name == "parquet"
    pd.testing.assert_frame_equal(loaded, frame)
    assert workspace.objects.read_bytes(digest)[:4] == b"PAR1"
    assert roundtrip(workspace, frame.copy())[1] == digest  # same frame, same bytes


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype="float32").reshape(3, 4),
        np.asfortranarray(np.arange(6, dtype="int64").reshape(2, 3)),
        np.array([True, False]),
        np.array(["a", "bc"]),
        np.array(3.5),
        np.array([np.nan, np.inf]),
    ],
)
def test_arrays_are_npy(workspace: Workspace, array: np.ndarray) -> None:
    name, digest, loaded = roundtrip(workspace, array)
    assert name == "npy"
    assert loaded.dtype == array.dtype and loaded.shape == array.shape
    np.testing.assert_array_equal(loaded, array)
    assert workspace.objects.read_bytes(digest)[:6] == b"\x93NUMPY"


def test_object_arrays_are_refused(workspace: Workspace) -> None:
    with pytest.raises(ArtifactError, match=r"@step\(pickle=True\)"):
        roundtrip(workspace, np.array([{"a": 1}, None], dtype=object))


# --- scikit-learn through skops ------------------------------------------------------------------


def _fit(kind: str) -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    if kind == "forest":
        return RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)


@pytest.mark.parametrize("kind", ["forest", "pipeline"])
def test_identically_fit_models_give_the_same_digest(workspace: Workspace, kind: str) -> None:
    first, second = _fit(kind), _fit(kind)
    name, digest, loaded = roundtrip(workspace, first)
    assert name == "skops"
    assert roundtrip(workspace, second)[1] == digest
    assert roundtrip(workspace, first)[1] == digest  # saving again changes nothing either
    assert type(loaded) is type(first)
    sample = np.random.default_rng(1).normal(size=(10, 3))
    np.testing.assert_array_equal(loaded.predict_proba(sample), first.predict_proba(sample))


def _double(x: Any) -> Any:
    return x * 2


def test_skops_refuses_types_it_does_not_trust(workspace: Workspace) -> None:
    from sklearn.preprocessing import FunctionTransformer

    model = FunctionTransformer(_double).fit(np.ones((2, 2)))
    chosen = materializer_for(model)
    digest = chosen.save(model, workspace.objects)
    with pytest.raises(UnsafeLoadError, match="_double"):
        chosen.load(digest, workspace.objects)


# --- files and folders -------------------------------------------------------------------------


def test_a_file_path_is_stored_with_its_name_and_loads_read_only(workspace: Workspace) -> None:
    source = Path("report.csv")
    source.write_bytes(b"a,b\n1,2\n")
    name, digest, loaded = roundtrip(workspace, source)
    assert name == "file"
    assert isinstance(loaded, Path) and loaded.name == "report.csv"
    assert loaded.read_bytes() == b"a,b\n1,2\n"
    assert read_only(loaded)
    assert roundtrip(workspace, source)[1] == digest


def test_a_folder_is_stored_as_a_tree_and_loads_read_only(workspace: Workspace) -> None:
    folder = Path("model_dir")
    (folder / "nested" / "deeper").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(os.urandom(1000))
    (folder / "nested" / "deeper" / "config.json").write_text('{"a": 1}')
    tool = folder / "run.sh"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o755)

    name, digest, loaded = roundtrip(workspace, folder)
    assert name == "path"
    assert workspace.objects.get_tree(digest) is not None
    files = {p.relative_to(loaded).as_posix() for p in loaded.rglob("*") if p.is_file()}
    assert files == {"weights.bin", "nested/deeper/config.json", "run.sh"}
    for relative in files:
        assert (loaded / relative).read_bytes() == (folder / relative).read_bytes()
        assert read_only(loaded / relative)
    assert os.access(loaded / "run.sh", os.X_OK)
    assert not (loaded / "weights.bin").stat().st_mode & stat.S_IXUSR

    again = roundtrip(workspace, folder)
    assert again[1] == digest and again[2] == loaded  # one copy per content


def test_a_stale_partial_copy_never_leaks_into_a_loaded_folder(workspace: Workspace) -> None:
    folder = Path("out")
    folder.mkdir()
    (folder / "real.txt").write_text("real")
    chosen = materializer_for(folder)
    digest = chosen.save(folder, workspace.objects)
    cache = workspace.cache_dir("outputs")
    stale = cache / f".{digest}.{os.getpid()}"  # an interrupted earlier attempt of this pid
    stale.mkdir()
    (stale / "junk.txt").write_text("half-written")
    (stale / "junk.txt").chmod(0o444)

    loader = materializer_by_name("path")
    loader.cache_dir = cache  # type: ignore[attr-defined]
    loaded = loader.load(digest, workspace.objects)
    assert sorted(p.name for p in loaded.iterdir()) == ["real.txt"]
    assert not stale.exists()


def test_a_missing_path_is_a_clear_error(workspace: Workspace) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        materializer_for(Path("nowhere/out.csv"))


# --- users' materializers and unknown types ------------------------------------------------------


class Point:
    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y


class Point3(Point):
    pass


def test_a_user_materializer_handles_its_type_and_subtypes(workspace: Workspace) -> None:
    @materializer(Point)
    class PointFormat:
        def save(self, value: Point) -> bytes:
            return f"{value.x},{value.y}".encode()

        def load(self, data: bytes) -> Point:
            x, y = data.decode().split(",")
            return Point(float(x), float(y))

    name, digest, loaded = roundtrip(workspace, Point(1.0, -2.5))
    assert name == f"user:{__name__}.Point"
    assert isinstance(loaded, Point) and (loaded.x, loaded.y) == (1.0, -2.5)
    assert workspace.objects.read_bytes(digest) == b"1.0,-2.5"
    assert materializer_for(Point3(0, 0)).name == name


def test_a_user_materializer_comes_before_the_built_ins(workspace: Workspace) -> None:
    class Settings(dict[str, int]):
        pass

    @materializer(Settings)
    class SettingsFormat:
        def save(self, value: Settings) -> bytes:
            return repr(sorted(value.items())).encode()

        def load(self, data: bytes) -> Settings:
            return Settings(eval(data.decode()))

    name, _, loaded = roundtrip(workspace, Settings(a=1))
    assert name.startswith("user:") and isinstance(loaded, Settings) and loaded == {"a": 1}


def test_a_user_materializer_must_return_bytes(workspace: Workspace) -> None:
    @materializer(Point)
    class Wrong:
        def save(self, value: Point) -> str:
            return "not bytes"

        def load(self, data: bytes) -> Point:
            raise AssertionError

    with pytest.raises(UnsupportedTypeError, match="must return bytes"):
        roundtrip(workspace, Point(0, 0))


def test_an_unknown_type_is_refused_with_the_fix(workspace: Workspace) -> None:
    with pytest.raises(UnsupportedTypeError) as caught:
        materializer_for(Point(0, 0))
    message = str(caught.value)
    assert f"no materializer for {__name__}.Point" in message
    assert "@loopml.materializer(YourType)" in message and "@step(pickle=True)" in message
    with pytest.raises(UnsupportedTypeError, match=r"register it with @loopml.materializer"):
        materializer_by_name("user:somewhere.Gone")


# --- opt-in pickle -------------------------------------------------------------------------------


class _Exploit:
    """Unpickling this writes a file: what loading foreign pickles would let anyone do."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path(self.target).write_text, ("pwned",))


@pytest.fixture
def other_workspace(tmp_path: Path) -> Iterator[Workspace]:
    ws, _ = init_workspace(tmp_path / "elsewhere")
    try:
        yield ws
    finally:
        ws.close()


def test_pickle_only_on_request_and_signed(workspace: Workspace) -> None:
    value = Point(3, 4)
    with pytest.raises(UnsupportedTypeError):
        materializer_for(value, workspace_dir=workspace.dir)
    name, _, loaded = roundtrip(workspace, value, allow_pickle=True)
    assert name == "pickle"
    assert isinstance(loaded, Point) and (loaded.x, loaded.y) == (3, 4)
    key = workspace.dir / "pickle.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
    assert materializer_for([1], allow_pickle=True).name == "json"  # only a fallback
    with pytest.raises(UnsupportedTypeError, match="needs a workspace"):
        materializer_by_name("pickle")


def test_workers_making_the_signing_key_at_once_agree_on_one(tmp_path: Path) -> None:
    import threading

    folder = tmp_path / "fresh"
    folder.mkdir()
    start = threading.Barrier(8)
    keys: list[bytes] = []

    def make() -> None:
        start.wait()
        keys.append(registry._workspace_key(folder))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8 and set(keys) == {(folder / "pickle.key").read_bytes()}
    assert [p.name for p in folder.iterdir()] == ["pickle.key"]  # no staging file left


def test_a_pickle_from_another_workspace_is_refused(
    workspace: Workspace, other_workspace: Workspace, tmp_path: Path
) -> None:
    target = tmp_path / "pwned.txt"
    theirs = materializer_by_name("pickle", workspace_dir=other_workspace.dir)
    digest = theirs.save(_Exploit(str(target)), other_workspace.objects)
    copied = workspace.objects.add_bytes(other_workspace.objects.read_bytes(digest))
    assert copied == digest

    ours = materializer_by_name("pickle", workspace_dir=workspace.dir)
    with pytest.raises(UnsafeLoadError, match="did not write"):
        ours.load(digest, workspace.objects)
    assert not target.exists()  # refused before unpickling anything


@pytest.mark.parametrize("forgery", ["plain", "tampered", "short"])
def test_unsigned_or_altered_pickles_are_refused(
    workspace: Workspace, tmp_path: Path, forgery: str
) -> None:
    target = tmp_path / "pwned.txt"
    ours = materializer_by_name("pickle", workspace_dir=workspace.dir)
    if forgery == "plain":
        data = pickle.dumps(_Exploit(str(target)))
    elif forgery == "short":
        data = b"LMPKL1"
    else:
        signed = workspace.objects.read_bytes(ours.save({"ok": 1}, workspace.objects))
        payload = pickle.dumps(_Exploit(str(target)))
        data = signed[:38] + payload
    digest = workspace.objects.add_bytes(data)
    with pytest.raises(UnsafeLoadError):
        ours.load(digest, workspace.objects)
    assert not target.exists()


def test_a_skops_archive_calling_a_library_function_is_refused(tmp_path: Path) -> None:
    """``numpy.load`` with ``allow_pickle`` would unpickle a file: functions are never trusted."""
    import io
    import json
    import zipfile

    import skops.io

    from loopml.artifacts.skops_format import loads_trusted

    planted = tmp_path / "planted.npy"
    np.save(planted, np.array([1, 2, 3]))
    args = skops.io.dumps((str(planted), None, True))
    state = json.loads(zipfile.ZipFile(io.BytesIO(args)).read("schema.json"))
    schema = {
        "__class__": "load",
        "__module__": "numpy",
        "__loader__": "ConstructorFromReduceNode",
        "content": {k: v for k, v in state.items() if k not in ("protocol", "_skops_version")},
        "__id__": 1,
        "protocol": state["protocol"],
        "_skops_version": state["_skops_version"],
    }
    crafted = io.BytesIO()
    with zipfile.ZipFile(crafted, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    with pytest.raises(UnsafeLoadError, match=r"numpy\.load"):
        loads_trusted(crafted.getvalue())


def test_fitted_scikit_learn_models_load_without_extra_trust() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from loopml.artifacts.skops_format import dumps_normalised, loads_trusted

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.random(60), "p": pd.Categorical(rng.choice(["x", "y"], 60))})
    label = rng.integers(0, 2, 60)
    models = [
        Pipeline(
            [
                (
                    "prepare",
                    ColumnTransformer([("p", OneHotEncoder(), ["p"])], remainder="passthrough"),
                ),
                ("forest", RandomForestClassifier(n_estimators=3, random_state=0)),
            ]
        ),
        HistGradientBoostingClassifier(max_iter=3, categorical_features="from_dtype"),
    ]
    for model in models:
        model.fit(frame, label)
        loaded = loads_trusted(dumps_normalised(model))
        assert (loaded.predict(frame) == model.predict(frame)).all()
