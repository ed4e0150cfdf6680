"""Deterministic skops archives.

skops names the members of its zip archive after Python object ids and stamps them with the
current time, so the same model saved twice gives different bytes. Renumbering the ids in order
of first appearance and rewriting the zip with fixed timestamps and sorted members makes the
bytes a function of the model alone; the result still loads with ``skops.io.loads``.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

from loopml.artifacts.errors import UnsafeLoadError

__all__ = ["BOOSTING_TYPES", "SAFE_NAMES", "dumps_normalised", "loads_trusted"]

# XGBoost's and LightGBM's scikit-learn wrappers and boosters, by exact name. Trusting the two
# libraries by prefix would let a crafted archive call any function in them with arguments of
# its choosing (skops builds some objects by calling what the archive names); a class of this
# list at worst parses a model. The registry stores these models in the libraries' own formats
# (``loopml.registry.boosting``); the list is for a pipeline step's output or a pipeline that
# ends in one.
BOOSTING_TYPES = frozenset(
    {
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBClassifier",
        "xgboost.sklearn.XGBRegressor",
        "xgboost.sklearn.XGBRanker",
        "xgboost.sklearn.XGBRFClassifier",
        "xgboost.sklearn.XGBRFRegressor",
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRegressor",
        "lightgbm.sklearn.LGBMRanker",
        "collections.OrderedDict",  # in a fitted LightGBM wrapper's state
    }
)

_ID = re.compile(r'("__id__": )(\d+)|("file": ")(\d+)(\.npy")')
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _renumber(schema: str) -> tuple[str, dict[str, str]]:
    mapping: dict[str, str] = {}

    def new(old: str) -> str:
        if old not in mapping:
            mapping[old] = str(len(mapping) + 1)
        return mapping[old]

    def replace(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return f"{match.group(1)}{new(match.group(2))}"
        return f"{match.group(3)}{new(match.group(4))}{match.group(5)}"

    return _ID.sub(replace, schema), mapping


def dumps_normalised(value: Any) -> bytes:
    """``skops.io.dumps`` with ids renumbered and zip metadata fixed."""
    import skops.io

    raw = skops.io.dumps(value)
    source = zipfile.ZipFile(io.BytesIO(raw))
    schema, mapping = _renumber(source.read("schema.json").decode("utf-8"))
    members: dict[str, bytes] = {"schema.json": schema.encode("utf-8")}
    for info in source.infolist():
        if info.filename == "schema.json":
            continue
        stem, dot, suffix = info.filename.partition(".")
        name = f"{mapping.get(stem, stem)}{dot}{suffix}"
        members[name] = source.read(info)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as target:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            target.writestr(info, members[name])
    return out.getvalue()


# Names outside scikit-learn's classes that fitted estimators routinely contain. Each is either a
# plain value type or takes no action when skops calls it with the archive's arguments.
SAFE_NAMES = frozenset(
    {
        "builtins.slice",
        "collections.OrderedDict",
        "functools.partial",
        "numpy.dtype",
        "numpy.random.mtrand.RandomState",
        "numpy.random._generator.Generator",
        "numpy.random._mt19937.MT19937",
        "numpy.random._pcg64.PCG64",
        "numpy.random.bit_generator.SeedSequence",
        "scipy.sparse._csr.csr_matrix",
        "scipy.sparse._csc.csc_matrix",
        "scipy.sparse._csr.csr_array",
        "scipy.sparse._csc.csc_array",
        "sklearn.utils.validation.check_array",
    }
)


def _is_sklearn_class(name: str) -> bool:
    """Whether ``name`` is a class of scikit-learn (whose constructors only store parameters).

    A function is never trusted by prefix: skops calls what an archive names with arguments of
    the archive's choosing, and a library function (``numpy.load`` with ``allow_pickle``) can
    do anything. Only scikit-learn's modules are imported to find out.
    """
    import importlib

    if not name.startswith("sklearn."):
        return False
    module_name, _, attribute = name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        return False
    return isinstance(found, type)


def loads_trusted(data: bytes, trusted: list[str] | None = None) -> Any:
    """Load a skops archive, allowing scikit-learn's classes and a few known value types only.

    Also allowed: the XGBoost and LightGBM estimators of ``BOOSTING_TYPES`` and the ``trusted``
    names (those recorded when loopml itself saved the archive). Anything else, functions of
    trusted libraries included, is refused with the list of what was found.
    """
    import skops.io

    found = skops.io.get_untrusted_types(data=data)
    extra = BOOSTING_TYPES | SAFE_NAMES | set(trusted or ())
    unknown = [t for t in found if t not in extra and not _is_sklearn_class(t)]
    if unknown:
        raise UnsafeLoadError(
            "the stored model uses types loopml does not trust by default: "
            + ", ".join(sorted(unknown))
            + "; pass them as trusted=[...] if you wrote this model"
        )
    return skops.io.loads(data, trusted=found)
