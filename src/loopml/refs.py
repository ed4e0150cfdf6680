"""``NAME@REF`` references, parsed the same way for datasets, models and runs (DESIGN section 9).

A reference is a name, optionally followed by ``@`` and one of: ``latest``; a version ``v3`` or
``3``; an alias or tag; or a hash prefix. Parsing only classifies the text; resolving it against
stored records is the job of the layer that owns them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from loopml.errors import InvalidReferenceError, UserInputError

__all__ = [
    "Ref",
    "RefKind",
    "parse_ref",
    "validate_label",
    "validate_name",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_VERSION_RE = re.compile(r"^[vV]?([0-9]+)$")
_HEX_RE = re.compile(r"^[0-9a-f]{4,64}$")


class RefKind(Enum):
    """What the text after ``@`` looks like."""

    LATEST = "latest"
    VERSION = "version"
    LABEL = "label"  # an alias or tag, which may also be a hash prefix when it is hex


@dataclass(frozen=True, slots=True)
class Ref:
    """A parsed reference: ``name`` plus what follows ``@``."""

    name: str
    kind: RefKind
    version: int | None = None
    label: str | None = None
    explicit: bool = True  # False when the text had no ``@`` part

    @property
    def could_be_hash(self) -> bool:
        """Whether the label is hex long enough to be a hash prefix."""
        return self.label is not None and bool(_HEX_RE.match(self.label))

    def __str__(self) -> str:
        if self.kind is RefKind.LATEST:
            return f"{self.name}@latest"
        if self.kind is RefKind.VERSION:
            return f"{self.name}@v{self.version}"
        return f"{self.name}@{self.label}"


def validate_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a valid name for a dataset, model or experiment, else raise."""
    if not _NAME_RE.match(name):
        raise UserInputError(
            f"invalid {what} {name!r}: use letters, digits, '.', '_' or '-' "
            "(no '/', spaces or '@'), starting with a letter or digit, at most 128 characters"
        )
    return name


def validate_label(label: str, what: str = "tag") -> str:
    """Return ``label`` if it can be an alias or tag: a name that does not look like a version."""
    validate_name(label, what)
    if _VERSION_RE.match(label) or label.lower() == "latest":
        raise UserInputError(
            f"invalid {what} {label!r}: it looks like a version reference; choose a word such as "
            "'prod' or 'baseline'"
        )
    return label


def parse_ref(text: str, default: RefKind = RefKind.LATEST) -> Ref:
    """Parse ``NAME``, ``NAME@latest``, ``NAME@v3``, ``NAME@3``, ``NAME@tag`` or ``NAME@abc12``."""
    if text.count("@") > 1:
        raise InvalidReferenceError(f"invalid reference {text!r}: use NAME@REF with a single '@'")
    name, sep, rest = text.partition("@")
    try:
        validate_name(name)
    except UserInputError as exc:
        raise InvalidReferenceError(f"invalid reference {text!r}: {exc}") from None
    if not sep:
        return Ref(name=name, kind=default, explicit=False)
    if not rest:
        raise InvalidReferenceError(
            f"invalid reference {text!r}: nothing after '@'; "
            "use @latest, @v3, a tag or a hash prefix"
        )
    if rest.lower() == "latest":
        return Ref(name=name, kind=RefKind.LATEST)
    version = _VERSION_RE.match(rest)
    if version:
        number = int(version.group(1))
        if number < 1:
            raise InvalidReferenceError(f"invalid reference {text!r}: versions start at v1")
        # All-digit text may also be a hash prefix ("@1234abcd" minus letters); keep it.
        label = rest if rest.isdigit() else None
        return Ref(name=name, kind=RefKind.VERSION, version=number, label=label)
    if not _NAME_RE.match(rest):
        raise InvalidReferenceError(
            f"invalid reference {text!r}: {rest!r} is not a version, tag or hash prefix"
        )
    return Ref(name=name, kind=RefKind.LABEL, label=rest)
