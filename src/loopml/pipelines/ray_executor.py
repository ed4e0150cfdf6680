"""The Ray executor: each step a Ray task; inputs and outputs pass by hash through the store.

Tasks carry a ``StepTask`` (hashes and literal values only); the worker loads inputs from the
object store and writes outputs back, so no artifact is ever pickled through Ray. A cluster
that is not this machine must reach the same stores: a local-folder object store (or a
SQLite database) with a remote cluster is refused with a clear error, before connecting.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
import sys
import sysconfig
from concurrent.futures import Future
from typing import Any

from loopml.pipelines.errors import PipelineError
from loopml.pipelines.execute import StepTask, TaskResult, run_task
from loopml.store.errors import MissingExtraError
from loopml.store.workspace import Workspace

__all__ = ["RayPool"]

# Environment variables a worker on this machine needs to reach the same stores as the driver.
_LOCAL_ENV_PREFIXES = ("LOOPML_", "AWS_")


def _host_of(address: str) -> str:
    """The host part of ``host:port``, ``ray://host:port`` or ``[v6]:port``."""
    rest = address.split("://", 1)[1] if "://" in address else address
    rest = rest.split("/", 1)[0]
    if rest.startswith("["):
        return rest[1:].split("]", 1)[0]
    if rest.count(":") > 1:  # a bare IPv6 address
        return rest
    return rest.split(":", 1)[0]


def _is_local(address: str | None) -> bool:
    """Whether the cluster runs on this machine: a new local one, ``auto``, or loopback."""
    if address in (None, "", "local", "auto"):
        return True
    assert address is not None
    host = _host_of(address).strip().lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _interpreter_paths() -> set[str]:
    """The interpreter's own folders, which every worker finds without being told."""
    paths = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return {os.path.realpath(p) for p in paths}


def _user_paths() -> tuple[str, ...]:
    """The driver's import path without the interpreter's own folders (a remote worker may run
    another Python build): the project, editable installs, folders added at run time."""
    skip = _interpreter_paths()
    out: list[str] = []
    for entry in sys.path:
        path = os.path.abspath(entry or os.getcwd())
        real = os.path.realpath(path)
        base = os.path.basename(real)
        if (
            real in skip
            or base in ("site-packages", "dist-packages", "lib-dynload")
            or (base.startswith("python") and base.endswith(".zip"))
            or path in out
        ):
            continue
        out.append(path)
    return tuple(out)


def _refuse_local_stores(workspace: Workspace, address: str | None) -> None:
    if workspace.objects_are_local:
        raise PipelineError(
            f"the Ray cluster at {address} is not this machine, and its workers cannot read "
            f"the local-folder object store {workspace.settings.objects_url}; set "
            "LOOPML_OBJECTS_URL=s3://bucket/prefix (and a shared LOOPML_DATABASE_URL) "
            "or use --executor local"
        )
    if workspace.settings.database_url.startswith("sqlite"):
        raise PipelineError(
            f"the Ray cluster at {address} is not this machine, and its workers cannot reach "
            "the SQLite metadata database; set LOOPML_DATABASE_URL to PostgreSQL or use "
            "--executor local"
        )


class RayPool:
    """Submits step tasks to Ray (a local ``ray.init`` or an existing cluster's address).

    When Ray is already initialised in this process, that connection is used as it is.
    """

    def __init__(self, workspace: Workspace, address: str | None) -> None:
        try:
            import ray
        except ImportError:
            raise MissingExtraError("the ray executor", "ray") from None
        address = address or os.environ.get("RAY_ADDRESS") or None
        local = _is_local(address)
        if not local:
            # Before connecting: a remote cluster cannot use this machine's stores.
            _refuse_local_stores(workspace, address)
        self._ray: Any = ray
        self._workspace = workspace
        self._started = False
        self._pending: set[Any] = set()
        self._sys_path = _user_paths()
        env = {
            key: value
            for key, value in os.environ.items()
            if key.startswith(_LOCAL_ENV_PREFIXES if local else "LOOPML_")
        }
        env["PYTHONPATH"] = os.pathsep.join(self._sys_path)
        env["LOOPML_WORKSPACE"] = str(workspace.root)
        if not ray.is_initialized():
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
            )
            self._started = True
        try:
            if workspace.objects_are_local or workspace.settings.database_url.startswith("sqlite"):
                self._check_nodes_are_here(address)
        except BaseException:
            self.shutdown()
            raise
        # loopml retries steps itself (with backoff); Ray must not run a task twice. The
        # runtime environment goes on the task, so it also applies when the caller had
        # already connected Ray.
        self._remote = ray.remote(max_retries=0, runtime_env={"env_vars": env})(run_task)
        settings = workspace.settings
        self._overrides: dict[str, Any] = {
            "database_url": settings.database_url,
            "objects_url": settings.objects_url,
            "s3_endpoint_url": settings.s3_endpoint_url,
            "user": settings.user,
        }

    def _check_nodes_are_here(self, address: str | None) -> None:
        """With local stores, every node of the cluster must be this machine."""
        here = socket.gethostname()
        elsewhere = sorted(
            {
                str(node.get("NodeManagerHostname"))
                for node in self._ray.nodes()
                if node.get("Alive") and node.get("NodeManagerHostname") != here
            }
        )
        if elsewhere:
            _refuse_local_stores(self._workspace, f"{address or 'auto'} (nodes {elsewhere})")

    def submit(self, task: StepTask) -> Future[TaskResult]:
        """Run the task on the cluster; the future gives its ``TaskResult``."""
        if task.step_identity.startswith("__main__:"):
            refused: Future[TaskResult] = Future()
            refused.set_result(
                TaskResult(
                    (),
                    0,
                    0,
                    f"PipelineError: step {task.step_identity} is defined in the script being "
                    "run; Ray workers import steps by module, so move it into a module "
                    "(or run with `loopml run path/to/flow.py:pipeline`)",
                )
            )
            return refused
        task = dataclasses.replace(
            task,
            sys_path=self._sys_path,
            settings_overrides={**self._overrides, **task.settings_overrides},
        )
        ref = self._remote.remote(task)
        self._pending.add(ref)
        future: Future[TaskResult] = ref.future()
        future.add_done_callback(lambda _f: self._pending.discard(ref))
        return future

    def shutdown(self) -> None:
        """Cancel unfinished tasks; disconnect (or stop the local cluster) if this pool
        connected."""
        for ref in list(self._pending):
            try:
                self._ray.cancel(ref)
            except Exception:  # already finished or gone: nothing to cancel
                pass
        self._pending.clear()
        if self._started:
            self._started = False
            self._ray.shutdown()
