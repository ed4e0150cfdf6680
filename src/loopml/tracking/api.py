"""Reading runs back: ``get_run``, ``search_runs`` and the ``Run`` handle."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopml.store.workspace import Workspace
from loopml.tracking.model import Metric, RunInfo

if TYPE_CHECKING:
    import pandas as pd

    from loopml.tracking.sql_store import SqlTrackingStore

__all__ = ["Run", "get_run", "search_runs"]


def _store(workspace: Workspace | None) -> tuple[SqlTrackingStore, Workspace]:
    from loopml.tracking.fluent import _session

    session = _session(workspace)
    return session.store, session.workspace


@dataclass(frozen=True)
class Run:
    """A recorded run: its info (params, latest metrics, tags, artifacts) and its history."""

    info: RunInfo
    _store: Any

    @property
    def id(self) -> str:
        """The run id."""
        return self.info.id

    @property
    def params(self) -> dict[str, str]:
        """Parameters (strings)."""
        return self.info.params

    @property
    def metrics(self) -> dict[str, float]:
        """Latest value of each metric."""
        return self.info.metrics

    @property
    def tags(self) -> dict[str, str]:
        """Tags."""
        return self.info.tags

    @property
    def status(self) -> str:
        """running, finished, failed, crashed or killed."""
        return self.info.status.value

    def metric_history(self, key: str) -> list[Metric]:
        """Every point of ``key`` in step order, each with ``.step``, ``.value``, ``.timestamp``."""
        return list(self._store.metric_history(self.info.id, key))


def get_run(run_id: str, *, workspace: Workspace | None = None) -> Run:
    """The run with this id (or unique id prefix)."""
    from loopml.tracking.fluent import _all_active

    store, _ = _store(workspace)
    for active in list(_all_active):
        if active.id.startswith(run_id):
            active._session.writer.flush(active.id)
    return Run(store.get_run(run_id), store)


def search_runs(
    experiment: str | Sequence[str] | None = None,
    filter: str | None = None,
    order_by: Sequence[str] | None = None,
    max_results: int = 1000,
    *,
    include_deleted: bool = False,
    workspace: Workspace | None = None,
) -> pd.DataFrame:
    """Runs as a DataFrame: ``run_id``, ``experiment``, ``name``, ``status``, ``start_time``,
    ``end_time``, ``parent_run_id``, ``params.*``, ``metrics.*`` (latest) and ``tags.*``.

    ``filter`` uses MLflow's syntax (``metrics.acc > 0.9 and params.depth = '8'``); filtering
    and sorting happen in SQL.
    """
    from loopml.tracking.search import search_runs as run_search

    store, _ = _store(workspace)
    names = [experiment] if isinstance(experiment, str) else experiment
    return run_search(
        store,
        experiments_=names,
        filter_string=filter,
        order_by=order_by,
        max_results=max_results,
        include_deleted=include_deleted,
    )
