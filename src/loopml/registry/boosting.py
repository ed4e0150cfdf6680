"""XGBoost and LightGBM models in their libraries' own text formats: no pickle, no skops.

A stored model is a small zip archive (sorted members, fixed timestamps, no compression, so the
same model always gives the same bytes and digest) holding

- ``loopml-model.json``: the format number, the library, the scikit-learn wrapper class (one of
  a fixed list), its parameters (plain JSON values only) and, for LightGBM, the fitted
  attributes the wrapper needs to predict (classes, objective, feature counts);
- the booster itself, as the library writes it: XGBoost's JSON model (``booster.json``, what
  ``Booster.save_raw("json")`` gives) or LightGBM's text model (``booster.txt``, what
  ``Booster.model_to_string()`` gives). Either file loads on its own in the library too.

Loading builds the wrapper from the listed class and the parameters, and hands the booster to
the library's own parser: nothing in the archive can name a type or a function to call.
Why not skops: skops restores these wrappers through their ``__getstate__`` (XGBoost's memory
snapshot, which XGBoost does not promise to load across versions), and trusting the libraries'
types by prefix lets a crafted archive call any function in them.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from typing import Any

from loopml.artifacts.errors import UnsafeLoadError
from loopml.registry.errors import RegistryError, UnsupportedModelError
from loopml.registry.flavors import SavedModel, installed_version
from loopml.store.objects.store import ObjectStore

__all__ = ["LightGBMFlavor", "XGBoostFlavor"]

FORMAT = 1
_META = "loopml-model.json"
_EPOCH = (1980, 1, 1, 0, 0, 0)

# Parameters used only while training: kept when they are plain values, stored as None when
# they are not (a callback, a custom metric, a RandomState), since prediction never reads them.
_TRAINING_ONLY = frozenset(
    {"callbacks", "eval_metric", "feature_weights", "random_state", "class_weight"}
)


def _plain(value: Any) -> bool:
    """Whether ``value`` survives a JSON round trip unchanged (NaN and infinities included)."""
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _normalise(value: Any) -> Any:
    """NumPy scalars as Python ones, tuples as lists, so that ``_plain`` can judge them."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    if isinstance(value, tuple | list):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    return value


def _plain_params(model: Any) -> dict[str, Any]:
    """``model.get_params()`` as plain JSON values; refuses what prediction would need."""
    params: dict[str, Any] = {}
    for key, raw in model.get_params(deep=False).items():
        value = _normalise(raw)
        if _plain(value):
            params[key] = value
        elif key in _TRAINING_ONLY:
            params[key] = None
        else:
            raise UnsupportedModelError(
                f"the {type(model).__name__} parameter {key!r} is a {type(raw).__name__}, "
                "which cannot be stored without pickle; use a built-in setting (e.g. a named "
                "objective), or register a flavour with loopml.registry.register_flavor"
            )
    return params


def _dump_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def _pack(members: Mapping[str, bytes]) -> bytes:
    """A zip whose bytes depend on ``members`` alone."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as target:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            target.writestr(info, members[name])
    return out.getvalue()


def _unpack(data: bytes, library: str, booster_member: str) -> tuple[dict[str, Any], bytes]:
    """The metadata and the booster's bytes, after checking the archive is one of ours."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            meta = json.loads(archive.read(_META))
            booster = archive.read(booster_member)
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise RegistryError(
            f"the stored {library} model is not an archive loopml wrote ({exc}); "
            "log the model again"
        ) from exc
    if not isinstance(meta, dict) or meta.get("library") != library:
        raise RegistryError(f"the stored model is not a {library} model; log the model again")
    if meta.get("format") != FORMAT:
        raise RegistryError(
            f"the stored {library} model has format {meta.get('format')!r}, this loopml reads "
            f"format {FORMAT}; upgrade loopml to load it"
        )
    params = meta.get("params")
    if not isinstance(params, dict) or not _plain(params):
        raise RegistryError(f"the stored {library} model's parameters are not plain values")
    return meta, booster


class _BoostingFlavor:
    """What the XGBoost and LightGBM flavours share: the class list, framework and store."""

    name: str
    booster_member: str
    # Class name → module of the scikit-learn wrappers this flavour stores and rebuilds.
    classes: Mapping[str, str]

    def handles(self, model: object) -> bool:
        """One of the listed wrapper classes exactly (a subclass may behave differently)."""
        kind = type(model)
        return self.classes.get(kind.__qualname__) == kind.__module__

    def framework(self, model: object) -> tuple[str, str]:
        """``("xgboost", "3.2.0")`` and the like."""
        return self.name, installed_version(self.name)

    def save(self, model: Any, store: ObjectStore) -> SavedModel:
        """The deterministic archive of ``model``."""
        if not self.handles(model):
            raise UnsupportedModelError(
                f"the {self.name} flavour stores {', '.join(sorted(self.classes))}, "
                f"not a {type(model).__qualname__}"
            )
        if not getattr(model, "__sklearn_is_fitted__", lambda: False)():
            raise UnsupportedModelError(
                f"this {type(model).__name__} is not fitted; fit it before log_model"
            )
        meta = {
            "format": FORMAT,
            "library": self.name,
            "class": type(model).__qualname__,
            "params": _plain_params(model),
            **self._fitted(model),
        }
        data = _pack({_META: _dump_json(meta), self.booster_member: self._booster(model)})
        digest = store.add_bytes(data)
        return SavedModel(digest, len(data))

    def load(self, digest: str, store: ObjectStore, options: Mapping[str, Any]) -> Any:
        """The wrapper, rebuilt from the listed class and the library's own model file."""
        meta, booster = _unpack(store.read_bytes(digest), self.name, self.booster_member)
        name = meta.get("class")
        if not isinstance(name, str) or name not in self.classes:
            raise UnsafeLoadError(
                f"the stored {self.name} model names the class {name!r}, which is not one "
                f"loopml rebuilds ({', '.join(sorted(self.classes))})"
            )
        import importlib

        cls = getattr(importlib.import_module(self.classes[name]), name)
        return self._rebuild(cls, meta, booster)

    def _fitted(self, model: Any) -> dict[str, Any]:
        """Fitted attributes the wrapper needs beyond its booster (JSON values)."""
        return {}

    def _booster(self, model: Any) -> bytes:
        raise NotImplementedError

    def _rebuild(self, cls: Any, meta: Mapping[str, Any], booster: bytes) -> Any:
        raise NotImplementedError


class XGBoostFlavor(_BoostingFlavor):
    """XGBoost's scikit-learn wrappers; the booster as XGBoost's JSON model."""

    name = "xgboost"
    booster_member = "booster.json"
    classes = {
        name: "xgboost.sklearn"
        for name in (
            "XGBClassifier",
            "XGBRegressor",
            "XGBRanker",
            "XGBRFClassifier",
            "XGBRFRegressor",
        )
    }

    def _booster(self, model: Any) -> bytes:
        return bytes(model.get_booster().save_raw(raw_format="json"))

    def _rebuild(self, cls: Any, meta: Mapping[str, Any], booster: bytes) -> Any:
        model = cls(**meta["params"])
        # XGBoost's own loader: the objective, classes and categories come from the model file.
        model.load_model(bytearray(booster))
        return model


class LightGBMFlavor(_BoostingFlavor):
    """LightGBM's scikit-learn wrappers; the booster as LightGBM's text model."""

    name = "lightgbm"
    booster_member = "booster.txt"
    classes = {
        name: "lightgbm.sklearn" for name in ("LGBMClassifier", "LGBMRegressor", "LGBMRanker")
    }

    def _booster(self, model: Any) -> bytes:
        # Every iteration, not only up to the best one (the default): the best iteration is
        # stored with the fitted attributes and restored on the booster, as training left it.
        text: str = model.booster_.model_to_string(num_iteration=-1)
        return text.encode("utf-8")

    def _fitted(self, model: Any) -> dict[str, Any]:
        objective = model._objective
        if not isinstance(objective, str):
            raise UnsupportedModelError(
                f"this {type(model).__name__} was trained with a custom objective function, "
                "which cannot be stored without pickle; register a flavour for it with "
                "loopml.registry.register_flavor"
            )
        best_score = _normalise({name: dict(scores) for name, scores in model._best_score.items()})
        fitted: dict[str, Any] = {
            "objective": objective,
            "n_features": int(model._n_features),
            "n_features_in": int(model._n_features_in),
            "fitted_with_feature_names": bool(model._fitted_with_feature_names),
            "best_iteration": int(model._best_iteration),
            "best_score": best_score if _plain(best_score) else {},
        }
        classes = getattr(model, "_classes", None)
        if classes is not None:
            values = _normalise(list(classes))
            if classes.dtype.kind not in "biuUO" or not _plain(values):
                raise UnsupportedModelError(
                    f"this {type(model).__name__} has class labels of dtype {classes.dtype}; "
                    "loopml stores integer, boolean and string labels"
                )
            fitted["classes"] = values
            fitted["classes_dtype"] = classes.dtype.str
        return {"fitted": fitted}

    def _rebuild(self, cls: Any, meta: Mapping[str, Any], booster: bytes) -> Any:
        import lightgbm
        import numpy as np

        fitted = meta.get("fitted")
        if not isinstance(fitted, dict):
            raise RegistryError("the stored lightgbm model lacks its fitted attributes")
        model = cls(**meta["params"])
        model._Booster = lightgbm.Booster(model_str=booster.decode("utf-8"))
        model._Booster.best_iteration = int(fitted["best_iteration"])
        model._Booster.best_score = fitted["best_score"]
        model._objective = str(fitted["objective"])
        model._n_features = int(fitted["n_features"])
        model._n_features_in = int(fitted["n_features_in"])
        model._fitted_with_feature_names = bool(fitted["fitted_with_feature_names"])
        model._best_iteration = int(fitted["best_iteration"])
        model._best_score = fitted["best_score"]
        if "classes" in fitted:
            from sklearn.preprocessing import LabelEncoder

            classes = np.asarray(fitted["classes"], dtype=np.dtype(str(fitted["classes_dtype"])))
            encoder = LabelEncoder().fit(classes)
            model._le = encoder
            model._classes = encoder.classes_
            model._n_classes = len(encoder.classes_)
            model._class_map = {c: i for i, c in enumerate(encoder.classes_)}
        model.fitted_ = True
        return model
