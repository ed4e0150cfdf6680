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

__all__ = ["dumps_normalised", "loads_trusted"]

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


def loads_trusted(data: bytes, trusted: list[str] | None = None) -> Any:
    """Load a skops archive, allowing scikit-learn's own types and ``trusted`` extras only.

    skops refuses types it does not know as safe; anything outside scikit-learn, NumPy, SciPy
    and the listed ``trusted`` names is refused with the list of what was found.
    """
    import skops.io

    found = skops.io.get_untrusted_types(data=data)
    allowed_prefixes = ("sklearn.", "numpy.", "scipy.", "xgboost.", "lightgbm.")
    extra = set(trusted or ())
    unknown = [t for t in found if not t.startswith(allowed_prefixes) and t not in extra]
    if unknown:
        raise UnsafeLoadError(
            "the stored model uses types loopml does not trust by default: "
            + ", ".join(sorted(unknown))
            + "; pass them as trusted=[...] if you wrote this model"
        )
    return skops.io.loads(data, trusted=found)
