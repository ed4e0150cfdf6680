"""Model flavours: how a kind of model is stored and loaded, behind one small Protocol.

The built-in ``skops`` flavour stores scikit-learn estimators and pipelines as deterministic
skops archives, with the serializers of ``loopml.artifacts``: two identical models give the same
bytes, hence the same digest. Loading never unpickles: skops refuses types it does not know,
except those the flavour found in the model when it was logged (recorded with the version, e.g.
``functools.partial`` inside a histogram gradient booster). XGBoost and LightGBM estimators
(their scikit-learn API) have flavours of their own, ``xgboost`` and ``lightgbm``, which store
the booster in the library's own text format (see :mod:`loopml.registry.boosting`).

Other frameworks plug in with :func:`register_flavor`; the loaded object must have ``predict``
(and may have ``predict_proba``).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from loopml.registry.errors import RegistryError, UnsupportedModelError
from loopml.store.objects.store import ObjectStore

__all__ = [
    "ModelFlavor",
    "SavedModel",
    "SkopsFlavor",
    "flavor_by_name",
    "flavor_for",
    "register_flavor",
]


@dataclass(frozen=True, slots=True)
class SavedModel:
    """What a flavour stored: the object's digest and size, and what loading it needs."""

    digest: str
    size: int
    options: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class ModelFlavor(Protocol):
    """Stores one kind of model as an object in the store and loads it back.

    ``save`` should be deterministic, so that the same model gives the same digest.
    ``options`` must be JSON-serialisable; they are stored with the model version.
    """

    name: str

    def handles(self, model: object) -> bool:
        """Whether this flavour can store ``model``."""
        ...

    def framework(self, model: object) -> tuple[str, str]:
        """The framework's distribution name and its installed version."""
        ...

    def save(self, model: Any, store: ObjectStore) -> SavedModel:
        """Store ``model``."""
        ...

    def load(self, digest: str, store: ObjectStore, options: Mapping[str, Any]) -> Any:
        """The model stored under ``digest``: an object with ``predict``."""
        ...


# Top-level module of the model's class → the distribution whose version is recorded.
_DISTRIBUTIONS = {"sklearn": "scikit-learn", "xgboost": "xgboost", "lightgbm": "lightgbm"}
# Other distributions that install the same import package (XGBoost's CPU-only wheel).
_ALTERNATIVES = {"xgboost": ("xgboost-cpu",)}


def installed_version(distribution: str) -> str:
    """The installed version of ``distribution`` (or of a CPU-only build of it), or ``unknown``."""
    for name in (distribution, *_ALTERNATIVES.get(distribution, ())):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


class SkopsFlavor:
    """scikit-learn estimators and pipelines as normalised skops archives.

    It also takes a lone XGBoost or LightGBM estimator when asked by name, though
    :func:`flavor_for` gives those their own flavours first.
    """

    name = "skops"

    def handles(self, model: object) -> bool:
        """An estimator (or pipeline) from one of the three frameworks."""
        from loopml.artifacts.builtin import SkopsMaterializer

        return SkopsMaterializer().handles(model)

    def framework(self, model: object) -> tuple[str, str]:
        """``("scikit-learn", "1.5.2")`` and the like."""
        root = type(model).__module__.split(".")[0]
        distribution = _DISTRIBUTIONS.get(root, root)
        return distribution, installed_version(distribution)

    def save(self, model: Any, store: ObjectStore) -> SavedModel:
        """A deterministic archive, and the types outside the default trust list it holds."""
        import skops.io

        from loopml.artifacts.skops_format import dumps_normalised

        try:
            data = dumps_normalised(model)
        except Exception as exc:  # skops raises many kinds for objects it cannot store
            raise UnsupportedModelError(
                f"skops cannot store this {type(model).__name__} ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); register a flavour for it "
                "with loopml.registry.register_flavor"
            ) from exc
        found = skops.io.get_untrusted_types(data=data)
        # Recorded exactly, from the model loopml itself just saved: loading trusts these names
        # and nothing else outside scikit-learn's classes.
        trusted = sorted(found)
        digest = store.add_bytes(data)
        return SavedModel(digest, len(data), {"trusted": trusted} if trusted else {})

    def load(self, digest: str, store: ObjectStore, options: Mapping[str, Any]) -> Any:
        """The estimator, loaded without pickle."""
        from loopml.artifacts.skops_format import loads_trusted

        trusted = [str(t) for t in options.get("trusted", ())]
        return loads_trusted(store.read_bytes(digest), trusted=trusted)


_user_flavors: list[ModelFlavor] = []


def register_flavor(flavor: ModelFlavor) -> ModelFlavor:
    """Add a flavour; it is asked before the built-in ones (and before earlier registrations).

    A model stored with it can only be loaded in a process that registered it too.
    """
    if not isinstance(flavor, ModelFlavor):
        raise RegistryError(
            f"{type(flavor).__name__} is not a model flavour: it needs name, handles, "
            "framework, save and load"
        )
    _user_flavors[:] = [f for f in _user_flavors if f.name != flavor.name]
    _user_flavors.insert(0, flavor)
    return flavor


def _builtins() -> list[ModelFlavor]:
    from loopml.registry.boosting import LightGBMFlavor, XGBoostFlavor

    return [XGBoostFlavor(), LightGBMFlavor(), SkopsFlavor()]


def flavor_for(model: object) -> ModelFlavor:
    """The flavour that stores ``model``: registered ones first, then the built-ins."""
    for flavor in [*_user_flavors, *_builtins()]:
        if flavor.handles(model):
            return flavor
    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    raise UnsupportedModelError(
        f"no model flavour stores a {kind}; scikit-learn, XGBoost and LightGBM models are "
        "built in, others need loopml.registry.register_flavor(...)"
    )


def flavor_by_name(name: str) -> ModelFlavor:
    """The flavour a stored version names."""
    for flavor in [*_user_flavors, *_builtins()]:
        if flavor.name == name:
            return flavor
    raise UnsupportedModelError(
        f"this model was stored by the flavour {name!r}, which is not registered in this "
        "process; call loopml.registry.register_flavor(...) before loading it"
    )
