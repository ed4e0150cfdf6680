"""The background writer: ``log_metric`` appends to a buffer and returns; a thread batches.

One writer serves every active run of the process. It flushes every ``flush_interval`` seconds
(so a ``kill -9`` loses at most that much), when a run ends, when asked, and at interpreter exit.
The buffer is bounded: past ``max_pending`` items a logging call waits for the writer instead
of growing memory without limit. The same thread sends heartbeats for the active runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from loopml.tracking.errors import TrackingError
from loopml.tracking.model import Metric
from loopml.tracking.store import TrackingStore

__all__ = ["BackgroundWriter"]


@dataclass
class _Pending:
    params: list[tuple[str, str]] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    tags: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.params) + len(self.metrics) + len(self.tags)


class BackgroundWriter:
    """Buffers tracking data per run and writes it in batches from one daemon thread."""

    def __init__(
        self,
        store: TrackingStore,
        *,
        flush_interval: float = 0.5,
        heartbeat_interval: float = 10.0,
        max_pending: int = 200_000,
    ) -> None:
        self._store = store
        self._flush_interval = flush_interval
        self._heartbeat_interval = heartbeat_interval
        self._max_pending = max_pending
        self._pending: dict[str, _Pending] = {}
        self._count = 0
        self._active: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._drained = threading.Condition(self._lock)
        self._io_lock = threading.Lock()
        self._error: BaseException | None = None
        self._stopping = False
        self._last_beat = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="loopml-writer", daemon=True)
        self._thread.start()

    # -- called by the logging API -------------------------------------------------------------

    def add(
        self,
        run_id: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        metrics: Sequence[Metric] = (),
        tags: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Queue items for ``run_id``; waits only when the buffer is full."""
        self._raise_pending_error()
        size = len(params) + len(metrics) + len(tags)
        with self._lock:
            while self._count + size > self._max_pending and self._count and not self._stopping:
                self._wake.notify()
                self._drained.wait(timeout=1.0)
            pending = self._pending.get(run_id)
            if pending is None:
                pending = self._pending[run_id] = _Pending()
            pending.params.extend(params)
            pending.metrics.extend(metrics)
            pending.tags.extend(tags)
            self._count += size

    def add_metric(self, run_id: str, metric: Metric) -> None:
        """Queue one point: the hot path of ``log_metric``."""
        if self._error is not None:
            self._raise_pending_error()
        if self._count >= self._max_pending:
            self.add(run_id, metrics=(metric,))
            return
        with self._lock:
            pending = self._pending.get(run_id)
            if pending is None:
                pending = self._pending[run_id] = _Pending()
            pending.metrics.append(metric)
            self._count += 1

    def activate(self, run_id: str) -> None:
        """Start sending heartbeats for a run."""
        with self._lock:
            self._active.add(run_id)

    def deactivate(self, run_id: str) -> None:
        """Stop sending heartbeats for a run."""
        with self._lock:
            self._active.discard(run_id)

    def flush(self, run_id: str | None = None) -> None:
        """Write what is buffered (for one run, or all) before returning."""
        self._drain(run_id)
        self._raise_pending_error()

    def close(self) -> None:
        """Flush everything and stop the thread (idempotent)."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=60)
        self._drain(None)

    @property
    def pending(self) -> int:
        """Items not yet written."""
        return self._count

    # -- the thread ----------------------------------------------------------------------------

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            if isinstance(error, TrackingError):
                raise error
            raise TrackingError(
                f"writing tracking data failed in the background: {error}"
            ) from error

    def _take(self, run_id: str | None) -> dict[str, _Pending]:
        with self._lock:
            if run_id is None:
                taken, self._pending = self._pending, {}
                self._count = 0
            else:
                one = self._pending.pop(run_id, None)
                taken = {run_id: one} if one is not None else {}
                self._count -= sum(len(p) for p in taken.values())
            self._drained.notify_all()
            return taken

    def _drain(self, run_id: str | None) -> None:
        with self._io_lock:
            for rid, pending in self._take(run_id).items():
                try:
                    self._store.log_batch(
                        rid, params=pending.params, metrics=pending.metrics, tags=pending.tags
                    )
                except BaseException as exc:  # surfaced to the user on their next call
                    self._error = exc

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._stopping:
                    self._wake.wait(timeout=self._flush_interval)
                stopping = self._stopping
                active = list(self._active)
            self._drain(None)
            now = time.monotonic()
            if active and now - self._last_beat >= self._heartbeat_interval:
                self._last_beat = now
                try:
                    with self._io_lock:
                        self._store.heartbeat(active)
                except Exception as exc:
                    self._error = exc
            if stopping:
                return
