"""Contract files: YAML a person can read and edit, and read back without surprises.

Reading uses a safe loader where only ``true``/``false`` are booleans (YAML 1.1 also turns
``yes``, ``no``, ``on`` and ``off`` into booleans, which would silently change allowed values
such as a ``no`` category). Writing puts a short guide on top, keeps keys in a fixed order, and
writes value lists on one line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from loopml.errors import UserInputError
from loopml.validation.errors import ContractFormatError

__all__ = ["HEADER", "dump_contract", "parse", "read_text"]

HEADER = """\
# loopml data contract. Edit freely; check data with: loopml validate DATA --contract FILE
# columns: NAME: {type: int|float|bool|string|category|datetime, nullable, max_null_share,
#          min, max (int, float, datetime), allowed: [values], unique}
# rows: {min, max}     checks: - {name: NAME, expression: "price >= cost"}
# Expressions may use column names, constants, + - * / // % **, comparisons, and/or/not.
"""

_BOOL_TAG = "tag:yaml.org,2002:bool"


class _Loader(yaml.SafeLoader):
    """SafeLoader whose only booleans are true and false (in any case)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class _FlowList(list[Any]):
    """A list written on one line: ``allowed: [a, b, c]``."""


class _Dumper(yaml.SafeDumper):
    """SafeDumper with one-line value lists and the usual two-space indentation."""


def _represent_flow(dumper: yaml.SafeDumper, data: _FlowList) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


_Dumper.add_representer(_FlowList, _represent_flow)


def dump_contract(data: dict[str, Any]) -> str:
    """The YAML text of a contract's dict form (``Contract.to_dict``), with the guide on top."""
    columns = {}
    for name, spec in data["columns"].items():
        spec = dict(spec)
        if "allowed" in spec:
            spec["allowed"] = _FlowList(spec["allowed"])
        columns[name] = spec
    body = yaml.dump(
        {**data, "columns": columns},
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )
    return HEADER + body


def parse(text: str, source: str) -> Any:
    """Parse YAML text; a syntax error names the file and line."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ContractFormatError(f"{where}: not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ContractFormatError(f"{source}: not valid YAML: {exc}") from None


def read_text(path: str | os.PathLike[str]) -> str:
    """A contract file's text; a missing or unreadable file is the user's to fix."""
    file = Path(path)
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserInputError(f"no contract file {file}") from None
    except IsADirectoryError:
        raise UserInputError(f"{file} is a folder, not a contract file") from None
    except UnicodeDecodeError:
        raise ContractFormatError(f"{file}: not a text (UTF-8) file") from None
    except OSError as exc:
        raise UserInputError(f"cannot read {file}: {exc.strerror}") from None
