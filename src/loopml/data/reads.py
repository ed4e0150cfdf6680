"""Which dataset versions this process has read, for run manifests and lineage.

Tracking subscribes with :func:`on_read`; the data layer only announces reads and knows
nothing of runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from loopml.data.model import DatasetVersion

__all__ = ["note_read", "on_read", "reads_so_far"]

_lock = threading.Lock()
_reads: dict[str, DatasetVersion] = {}
_listeners: list[Callable[[str, DatasetVersion], None]] = []


def note_read(name: str, version: DatasetVersion) -> None:
    """Announce that ``version`` of ``name`` was read."""
    with _lock:
        _reads[f"{name}@v{version.number}"] = version
        listeners = list(_listeners)
    for listener in listeners:
        listener(name, version)


def on_read(listener: Callable[[str, DatasetVersion], None]) -> Callable[[], None]:
    """Call ``listener`` on every later read; returns a function that unsubscribes it."""
    with _lock:
        _listeners.append(listener)

    def unsubscribe() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return unsubscribe


def reads_so_far() -> dict[str, DatasetVersion]:
    """Every version read in this process, keyed by ``name@vN``."""
    with _lock:
        return dict(_reads)
