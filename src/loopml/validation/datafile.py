"""Reading the data a contract is checked against: a Parquet or CSV file.

A CSV file has no types. When a contract is given, its text and category columns are read as
text ("01234" stays "01234"); pandas infers the rest, and the safe-conversion rule judges them.
Without one (to infer a contract), the numbers' text settles what CSV loses: a column written
with leading zeros (zip codes) stays text, and whole numbers with gaps become ``Int64``.
Every failure is one line naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from loopml.validation.errors import DataFileError

if TYPE_CHECKING:
    import pandas as pd

    from loopml.validation.contract import Contract

__all__ = ["SUFFIXES", "read_data", "read_source"]

_ISO_DATETIME = (
    r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?(?:Z|[+-]\d{2}:?\d{2})?"
)

SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv"}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _types_from_text(frame: pd.DataFrame, file: Path, sep: str) -> pd.DataFrame:
    """Fix what CSV loses, from the values' own text: integer columns written with leading
    zeros ("00501") become text, float columns that only hold whole numbers written without a
    point (integers with gaps, which pandas reads as floats) become ``Int64``, and text
    columns of ISO 8601 dates and times become datetimes."""
    import pandas as pd

    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_string_dtype(values.dtype) and values.notna().any():
            present = values.dropna().astype("str")
            if present.str.fullmatch(_ISO_DATETIME).all():
                try:
                    frame[column] = pd.to_datetime(values, format="ISO8601")
                except (ValueError, TypeError, OverflowError):
                    pass  # mixed time zones or impossible dates: leave it text

    numeric = [
        c
        for c in frame.columns
        if pd.api.types.is_integer_dtype(frame[c].dtype)
        or (pd.api.types.is_float_dtype(frame[c].dtype) and frame[c].hasnans)
    ]
    if not numeric:
        return frame
    raw = pd.read_csv(file, sep=sep, usecols=numeric, dtype="str")
    for column in numeric:
        text = raw[column]
        if pd.api.types.is_integer_dtype(frame[column].dtype):
            if text.str.match(r"^[+-]?0\d").fillna(False).to_numpy(dtype=bool).any():
                frame[column] = text
        elif text.dropna().str.fullmatch(r"[+-]?\d+").all():
            frame[column] = text.astype("Int64")
    return frame


def read_data(path: str | os.PathLike[str], contract: Contract | None = None) -> pd.DataFrame:
    """Load ``path`` (``.parquet``/``.pq``, ``.csv`` or ``.tsv``) into a DataFrame."""
    import pandas as pd

    file = Path(path)
    kind = SUFFIXES.get(file.suffix.lower())
    if not file.exists():
        raise DataFileError(f"no such file: {file}")
    if kind is None:
        raise DataFileError(
            f"{file}: expected a .parquet, .pq, .csv or .tsv file, not {file.suffix or 'no suffix'}"
        )
    if not file.is_file() and kind != "parquet":
        raise DataFileError(f"{file} is a folder, not a {kind.upper()} file")
    try:
        if kind == "parquet":
            return pd.read_parquet(file)
        dtypes = {}
        if contract is not None:
            dtypes = {
                spec.name: "str" for spec in contract.columns if spec.type in ("string", "category")
            }
        sep = "\t" if kind == "tsv" else ","
        header = pd.read_csv(file, sep=sep, nrows=0)
        present = {str(c) for c in header.columns}
        frame = pd.read_csv(
            file, sep=sep, dtype={k: v for k, v in dtypes.items() if k in present} or None
        )
        if contract is None:
            frame = _types_from_text(frame, file, sep)
        return frame
    except (OSError, ValueError, UnicodeDecodeError, ImportError) as exc:
        raise DataFileError(f"cannot read {file} as {kind.upper()}: {_first_line(exc)}") from None
    except Exception as exc:  # pyarrow's ArrowInvalid and pandas' parser errors, among others
        if type(exc).__module__.split(".")[0] in ("pyarrow", "pandas"):
            raise DataFileError(
                f"cannot read {file} as {kind.upper()}: {_first_line(exc)}"
            ) from None
        raise


def read_source(text: str, contract: Contract | None = None) -> tuple[str, pd.DataFrame]:
    """A file path, or a dataset version (``sales@v3``, or ``sales`` when no such file exists):
    (what was read, the frame). A version's files are read like single files and stacked."""
    import pandas as pd

    path = Path(text)
    if path.exists() or ("@" not in text and SUFFIXES.get(path.suffix.lower()) is not None):
        return str(path), read_data(path, contract)
    from loopml.data.api import get
    from loopml.data.versioning import resolve
    from loopml.store.workspace import Workspace

    with Workspace.open() as workspace:
        label = resolve(workspace, text)[1].label
        local = get(label, workspace=workspace)
        files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
        readable = [f for f in files if f.suffix.lower() in SUFFIXES]
        if not readable:
            raise DataFileError(f"{label} holds no .parquet, .pq, .csv or .tsv file")
        frames = [read_data(f, contract) for f in readable]
    return label, frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
