"""Walking a tracked file or folder into (relative path, absolute path, stat) records."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from loopml.errors import UserInputError

__all__ = ["ScannedFile", "check_readable", "scan_path"]

_IGNORED_NAMES = frozenset({".git", ".loopml", "__pycache__", ".DS_Store"})


@dataclass(frozen=True, slots=True)
class ScannedFile:
    """One regular file found under a tracked path."""

    relative: str  # posix path relative to the tracked folder (the file name for a file)
    absolute: str
    stat: os.stat_result

    @property
    def mode(self) -> int:
        """Permission bits as stored in a tree (0o755 for executables, else 0o644)."""
        return 0o755 if self.stat.st_mode & stat.S_IXUSR else 0o644


def _stat_file(path: str, shown: str) -> os.stat_result:
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserInputError(f"{shown} is a symlink loop; remove or fix the link") from None
        if exc.errno == errno.ENOENT:
            raise UserInputError(f"{shown} is a broken symlink; remove or fix the link") from None
        raise UserInputError(f"cannot read {shown}: {exc.strerror}") from None
    return st


def scan_path(target: Path, shown: str | None = None) -> tuple[str, list[ScannedFile]]:
    """Return ``("file" | "dir", files)`` for a tracked path, sorted by relative path.

    Symlinks to files are followed (their content is versioned); symlinks to folders are not
    followed, which also makes a loop of folder links impossible to walk into.
    """
    shown = shown or str(target)
    try:
        top = os.lstat(target)
    except FileNotFoundError:
        raise UserInputError(f"{shown} does not exist; check the path") from None
    if stat.S_ISLNK(top.st_mode):
        top = _stat_file(str(target), shown)
    if stat.S_ISREG(top.st_mode):
        st = _stat_file(str(target), shown)
        return "file", [ScannedFile(target.name, str(target), st)]
    if not stat.S_ISDIR(top.st_mode):
        raise UserInputError(f"{shown} is neither a file nor a folder")
    files: list[ScannedFile] = []
    stack = [(str(target), "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except PermissionError:
            raise UserInputError(
                f"cannot list {shown}/{prefix}: permission denied; fix it with chmod u+rx"
            ) from None
        for entry in entries:
            if entry.name in _IGNORED_NAMES:
                continue
            relative = f"{prefix}{entry.name}"
            if entry.is_symlink():
                resolved = _stat_file(entry.path, f"{shown}/{relative}")
                if stat.S_ISDIR(resolved.st_mode):
                    raise UserInputError(
                        f"{shown}/{relative} is a symlink to a folder; loopml versions files, "
                        "so replace the link with the folder or remove it"
                    )
                files.append(ScannedFile(relative, entry.path, resolved))
            elif entry.is_dir(follow_symlinks=False):
                stack.append((entry.path, relative + "/"))
            elif entry.is_file(follow_symlinks=False):
                files.append(ScannedFile(relative, entry.path, entry.stat(follow_symlinks=False)))
            else:
                raise UserInputError(
                    f"{shown}/{relative} is not a regular file (a pipe, socket or device); "
                    "move it out of the tracked folder"
                )
    files.sort(key=lambda f: f.relative)
    return "dir", files


def check_readable(files: list[ScannedFile], shown_root: str) -> None:
    """Fail before anything is written if any of ``files`` cannot be opened for reading."""
    for item in files:
        if not os.access(item.absolute, os.R_OK):
            raise UserInputError(
                f"cannot read {shown_root}/{item.relative}: permission denied; "
                "fix it with chmod u+r or move it out of the tracked folder"
            )
