"""The Ray executor: each step a Ray task; inputs and outputs pass by hash through the store.

Tasks carry a ``StepTask`` (hashes and literal values only); the worker loads inputs from the
object store and writes outputs back, so no artifact is ever pickled through Ray. A cluster
that is not this machine must reach the same stores: a local-folder object store (or a
SQLite database) with a remote cluster is refused with a clear error.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import Future
from typing import Any

from loopml.pipelines.errors import PipelineError
from loopml.pipelines.execute import StepTask, TaskResult, run_task
from loopml.store.errors import MissingExtraError
from loopml.store.workspace import Workspace

__all__ = ["RayPool"]


def _is_local(address: str | None) -> bool:
    return address in (None, "", "local") or bool(
        address and address.split(":")[0] in ("127.0.0.1", "localhost")
    )


class RayPool:
    """Submits step tasks to Ray (a local ``ray.init`` or an existing cluster's address)."""

    def __init__(self, workspace: Workspace, address: str | None) -> None:
        try:
            import ray
        except ImportError:
            raise MissingExtraError("the ray executor", "ray") from None
        address = address or os.environ.get("RAY_ADDRESS")
        if not _is_local(address):
            if workspace.objects_are_local:
                raise PipelineError(
                    "a local-folder object store cannot be read by a remote Ray cluster; set "
                    "LOOPML_OBJECTS_URL=s3://bucket/prefix (and a shared LOOPML_DATABASE_URL) "
                    "or use --executor local"
                )
            if workspace.settings.database_url.startswith("sqlite"):
                raise PipelineError(
                    "a SQLite metadata store cannot be reached from a remote Ray cluster; set "
                    "LOOPML_DATABASE_URL to PostgreSQL or use --executor local"
                )
        self._ray: Any = ray
        self._started = False
        if not ray.is_initialized():
            path = os.pathsep.join(p for p in sys.path if p)
            ray.init(
                address=address if address not in (None, "", "local") else None,
                include_dashboard=False,
                ignore_reinit_error=True,
                log_to_driver=False,
                runtime_env={
                    "env_vars": {"PYTHONPATH": path, "LOOPML_WORKSPACE": str(workspace.root)}
                },
            )
            self._started = True
        # loopml retries steps itself (with backoff); Ray must not run a task twice.
        self._remote = ray.remote(max_retries=0)(run_task)

    def submit(self, task: StepTask) -> Future[TaskResult]:
        """Run the task on the cluster."""
        future: Future[TaskResult] = self._remote.remote(task).future()
        return future

    def shutdown(self) -> None:
        """Disconnect if this pool connected."""
        if self._started:
            self._ray.shutdown()
