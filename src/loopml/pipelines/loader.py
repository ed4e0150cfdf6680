"""``path/to/flow.py:fn`` → the pipeline object, imported under its dotted module name.

The file maps to a module through its chain of packages (folders with ``__init__.py``), as
pytest does: the first folder above the chain goes on ``sys.path``, so a step defined in
``flows/churn.py`` inside package ``flows`` is ``flows.churn:features`` from the CLI and from an
import alike — one identity, one cache.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from loopml.errors import UserInputError

__all__ = ["load_target", "module_name_for"]


def module_name_for(path: Path) -> tuple[str, Path]:
    """The dotted module name of a file and the folder to put on ``sys.path``."""
    path = path.resolve()
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.append(folder.name)
        folder = folder.parent
    return ".".join(reversed(parts)), folder


def load_target(target: str) -> Any:
    """Import ``FILE.py:NAME`` or ``module.path:NAME`` and return the object."""
    location, sep, attribute = target.rpartition(":")
    if not sep or not location or not attribute:
        raise UserInputError(f"{target!r} should look like path/to/flow.py:pipeline_name")
    if location.endswith(".py"):
        file = Path(location)
        if not file.is_file():
            raise UserInputError(f"{location} does not exist")
        module_name, root = module_name_for(file)
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
    else:
        module_name = location
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserInputError(f"cannot import {module_name}: {exc}") from None
    if location.endswith(".py"):
        loaded_from = getattr(module, "__file__", None)
        if loaded_from is None or Path(loaded_from).resolve() != Path(location).resolve():
            raise UserInputError(
                f"{location} imports as module {module_name!r}, but that name is already taken "
                f"by {loaded_from or 'a built-in module'}; rename the file"
            )
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise UserInputError(f"{module_name} has no {attribute!r}")
        value = getattr(value, part)
    return value
