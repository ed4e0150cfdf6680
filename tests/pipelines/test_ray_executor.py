"""The Ray executor: steps as Ray tasks, artifacts by hash through the object store.

One Ray head is started for the session with the CLI (no dashboard, a small object store, a
temporary home and temp dir) and stopped at the end — by its own process tree, not
``ray stop``, which would stop every Ray cluster of this user on the machine (another xdist
worker's, or someone else's). One test starts a local cluster through ``ray.init``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import pickle
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pytest

from loopml.pipelines.errors import PipelineError, StepFailedError
from loopml.pipelines.execute import ArgSpec, StepTask, TaskResult
from loopml.pipelines.ray_executor import RayPool, _is_local
from loopml.pipelines.runner import RunOptions
from loopml.store.errors import MissingExtraError
from loopml.store.workspace import Workspace

# Ray 2.60 emits no warnings here, so none are filtered: warnings stay errors.
pytestmark = pytest.mark.ray

RAY_BIN = Path(sys.executable).with_name("ray")

FLOW = '''
"""A pipeline that lives in the test's workspace, imported by name in Ray's workers."""

import os

import numpy as np
import pandas as pd

from loopml import pipeline, step


def _check(df):
    if (df["x"] < 0).any():
        raise ValueError(f"negative x in row {int((df['x'] < 0).idxmax())}")
    return df


@step
def make(n: int, sign: int = 1) -> pd.DataFrame:
    return pd.DataFrame({"x": sign * np.arange(n, dtype="int64"), "y": np.arange(n) * 0.5})


@step
def total(df: pd.DataFrame) -> dict:
    df = _check(df)
    return {"rows": len(df), "sum": float(df["y"].sum())}


@step(cache=False)
def where(df: pd.DataFrame) -> dict:
    import ray

    inside = ray.is_initialized()
    context = ray.get_runtime_context() if inside else None
    return {
        "pid": os.getpid(),
        "ray": inside,
        "worker_id": context.get_worker_id() if context else None,
        "task_id": context.get_task_id() if context else None,
        "pythonpath": os.environ.get("PYTHONPATH", ""),
    }


@step(timeout=1)
def slow(df: pd.DataFrame) -> int:
    import time

    time.sleep(30)
    return 0


@pipeline
def flow(n: int = 100, sign: int = 1):
    df = make(n, sign=sign)
    return total(df), where(df)


@pipeline
def too_slow(n: int = 3):
    return slow(make(n))
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass(frozen=True)
class RayHome:
    """The session's temporary Ray home (with an auth token) and temp folders."""

    base: Path

    @property
    def home(self) -> Path:
        return self.base / "home"

    def env(self) -> dict[str, str]:
        return {
            "HOME": str(self.home),
            # Ray reads the mode once per process (at import); with "token" set later this
            # process would still connect without one. The token in the home is for a process
            # that started out in token mode.
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
            # ray.init's local cluster keeps its sessions here, not in /tmp/ray.
            "RAY_TMPDIR": str(self.base / "l"),
        }


@pytest.fixture(scope="session")
def ray_home() -> Iterator[RayHome]:
    """A short folder (Ray's unix socket paths are limited to 107 bytes) holding a home, so
    Ray writes nothing under ``~``."""
    base = Path(tempfile.mkdtemp(prefix="lmray-", dir="/tmp"))
    (base / "home" / ".ray").mkdir(parents=True)
    (base / "home" / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    try:
        yield RayHome(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for proc in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
    return out


def _stop_tree(head: subprocess.Popen[bytes]) -> None:
    """Stop ``ray start --block`` (it stops the processes it started), then anything left of
    its process tree, by pid."""
    try:
        tree = [psutil.Process(head.pid), *psutil.Process(head.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    head.terminate()
    try:
        head.wait(timeout=30)
    except subprocess.TimeoutExpired:
        head.kill()
        head.wait(timeout=10)
    for proc in _alive(tree):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    _, still = psutil.wait_procs(_alive(tree), timeout=10)
    assert not _alive(still), f"Ray processes outlived the session: {still}"


@pytest.fixture(scope="session")
def ray_cluster(ray_home: RayHome) -> Iterator[str]:
    """One Ray head for the session (CLI, loopback, 2 CPUs, no dashboard, 80 MB object store);
    yields its address ``127.0.0.1:PORT``."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPML_", "RAY_"))}
    env.update(ray_home.env())
    log_path = ray_home.base / "head.log"
    args = [
        str(RAY_BIN),
        "start",
        "--head",
        "--block",
        "--port",
        str(port),
        "--node-ip-address",
        "127.0.0.1",
        "--num-cpus",
        "2",
        "--include-dashboard=false",
        "--object-store-memory",
        "80000000",
        "--temp-dir",
        str(ray_home.base / "t"),
        "--disable-usage-stats",
    ]
    with log_path.open("wb") as log:
        head = subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C goes to pytest, which stops it
        )
    try:
        deadline = time.monotonic() + 90
        while b"Ray runtime started" not in log_path.read_bytes():
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start failed:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        _stop_tree(head)


@pytest.fixture
def ray_env(ray_home: RayHome, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process talks to Ray with the session's home and token; no RAY_ADDRESS leaks in;
    whatever Ray does to the environment is undone."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("RAY_")}
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    for key, value in ray_home.env().items():
        monkeypatch.setenv(key, value)
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()
    for key in [k for k in os.environ if k.startswith("RAY_") and k not in saved]:
        del os.environ[key]


@pytest.fixture
def flow(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The pipeline module, as a package inside the test's workspace (not on the workers' own
    path: the pool must pass it on)."""
    package = f"rayflows_{uuid.uuid4().hex[:8]}"
    folder = workspace.root / package
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "pipes.py").write_text(textwrap.dedent(FLOW))
    monkeypatch.syspath_prepend(str(workspace.root))
    try:
        yield importlib.import_module(f"{package}.pipes")
    finally:
        for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
            del sys.modules[name]


def _digests(run: Any, *names: str) -> dict[str, list[str]]:
    return {n: [o.digest for o in run.step(n).outputs] for n in names}


def _assert_in_ray_worker(where: dict[str, Any], workspace: Workspace) -> None:
    assert where["ray"] is True
    assert where["pid"] != os.getpid()
    assert where["worker_id"] and where["task_id"]
    assert str(workspace.root) in where["pythonpath"].split(os.pathsep)


# --- no cluster needed -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "local"),
    [
        (None, True),
        ("", True),
        ("local", True),
        ("auto", True),
        ("127.0.0.1:6379", True),
        ("127.0.1.1:6379", True),
        ("localhost:6379", True),
        ("[::1]:6379", True),
        ("ray://127.0.0.1:10001", True),
        ("10.1.2.3:6379", False),
        ("ray://10.1.2.3:10001", False),
        ("head.example.com:6379", False),
        ("[2001:db8::1]:6379", False),
    ],
)
def test_which_addresses_count_as_this_machine(address: str | None, local: bool) -> None:
    assert _is_local(address) is local


@pytest.fixture
def no_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to connect Ray fails the test."""
    import ray

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the pool connected to Ray before checking the stores")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


@pytest.mark.usefixtures("no_connect")
@pytest.mark.parametrize("address", ["10.1.2.3:6379", "ray://10.1.2.3:10001"])
def test_remote_cluster_with_local_folder_store_is_a_clear_error(
    workspace: Workspace, address: str
) -> None:
    import ray

    with pytest.raises(PipelineError, match="local-folder object store") as info:
        RayPool(workspace, address)
    assert "LOOPML_OBJECTS_URL=s3://" in str(info.value)
    assert address in str(info.value)
    assert not ray.is_initialized()


@pytest.mark.usefixtures("no_connect")
def test_remote_cluster_from_ray_address_env_is_checked_too(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "10.1.2.3:6379")
    with pytest.raises(PipelineError, match="local-folder object store"):
        RayPool(workspace, None)


@pytest.mark.usefixtures("no_connect")
def test_remote_cluster_with_sqlite_metadata_is_a_clear_error(workspace: Workspace) -> None:
    shared_objects = Workspace.open(workspace.root, objects_url="s3://bucket/prefix")
    try:
        with pytest.raises(PipelineError, match="SQLite metadata database"):
            RayPool(shared_objects, "10.1.2.3:6379")
    finally:
        shared_objects.close()


@pytest.mark.usefixtures("no_connect")
def test_pipeline_on_remote_cluster_with_local_store_fails_before_any_step(
    flow: ModuleType, workspace: Workspace
) -> None:
    options = RunOptions(executor="ray", ray_address="10.1.2.3:6379")
    with pytest.raises(PipelineError, match="local-folder object store"):
        flow.flow.run({"n": 5}, workspace=workspace, options=options)


def test_nodes_on_other_machines_with_local_store_are_refused(workspace: Workspace) -> None:
    """``auto`` or a loopback head may still have nodes elsewhere: checked after connecting."""
    here = {"Alive": True, "NodeManagerHostname": socket.gethostname()}
    gone = {"Alive": False, "NodeManagerHostname": "old-node"}
    pool = RayPool.__new__(RayPool)
    pool._workspace = workspace
    pool._ray = SimpleNamespace(nodes=lambda: [here, gone])
    pool._check_nodes_are_here("auto")
    pool._ray = SimpleNamespace(
        nodes=lambda: [here, gone, {**here, "NodeManagerHostname": "gpu-7"}]
    )
    with pytest.raises(PipelineError, match=r"local-folder object store") as info:
        pool._check_nodes_are_here("auto")
    assert "gpu-7" in str(info.value) and "old-node" not in str(info.value)


def test_missing_ray_names_the_extra(
    flow: ModuleType, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'loopml\[ray\]'"):
        RayPool(workspace, None)
    with pytest.raises(MissingExtraError, match=r"pip install 'loopml\[ray\]'"):
        flow.flow.run({"n": 5}, workspace=workspace, options=RunOptions(executor="ray"))


# --- the session's cluster ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("ray_env")
def test_existing_cluster_matches_local_executor(
    flow: ModuleType, workspace: Workspace, ray_cluster: str
) -> None:
    import ray

    local = flow.flow.run({"n": 50}, workspace=workspace)
    assert local.step("where").outputs
    local_total, local_where = local.outputs
    assert local_where["ray"] is False and local_where["pid"] == os.getpid()

    options = RunOptions(executor="ray", ray_address=ray_cluster, cache=False)
    remote = flow.flow.run({"n": 50}, workspace=workspace, options=options)

    assert remote.status == "finished"
    assert [s.status for s in remote.steps] == ["ran", "ran", "ran"]
    assert _digests(remote, "make", "total") == _digests(local, "make", "total")
    remote_total, remote_where = remote.outputs
    assert remote_total == local_total == {"rows": 50, "sum": 612.5}
    _assert_in_ray_worker(remote_where, workspace)
    assert not ray.is_initialized(), "the pool must disconnect what it connected"


@pytest.mark.usefixtures("ray_env")
def test_artifacts_pass_by_hash_not_through_ray(
    flow: ModuleType,
    workspace: Workspace,
    ray_cluster: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[StepTask] = []
    original = RayPool.submit

    class Recorder:
        def __init__(self, remote: Any) -> None:
            self.inner = remote

        def remote(self, task: StepTask) -> Any:
            sent.append(task)
            return self.inner.remote(task)

    def spy(self: RayPool, task: StepTask) -> Future[TaskResult]:
        if not isinstance(self._remote, Recorder):
            self._remote = Recorder(self._remote)  # type: ignore[assignment]
        return original(self, task)

    monkeypatch.setattr(RayPool, "submit", spy)
    n = 200_000
    big = pd.DataFrame({"x": np.arange(n, dtype="int64"), "y": np.arange(n) * 0.5})
    assert len(pickle.dumps(big)) > 3_000_000

    options = RunOptions(executor="ray", ray_address=ray_cluster)
    run = flow.flow.run({"n": n}, workspace=workspace, options=options)

    assert {t.node for t in sent} == {"make", "total", "where"}
    made = run.step("make").outputs[0]
    for task in sent:
        assert len(pickle.dumps(task)) < 20_000, task.node
        for arg in task.arguments:
            assert not isinstance(arg.value, pd.DataFrame | pd.Series | np.ndarray)
    consumed = [a for t in sent if t.node == "total" for a in t.arguments]
    assert consumed == [ArgSpec("df", "output", digest=made.digest, materializer=made.materializer)]
    produced = {o.digest for s in run.steps for o in s.outputs}
    assert workspace.objects.missing(produced) == set()
    assert run.outputs[0] == {"rows": n, "sum": float(big["y"].sum())}


@pytest.mark.usefixtures("ray_env")
def test_step_failure_in_a_worker_reports_the_users_traceback(
    flow: ModuleType, workspace: Workspace, ray_cluster: str
) -> None:
    options = RunOptions(executor="ray", ray_address=ray_cluster)
    with pytest.raises(StepFailedError, match="negative x in row 1") as info:
        flow.flow.run({"n": 4, "sign": -1}, workspace=workspace, options=options)
    error = info.value
    assert error.node == "total"
    trace = error.user_traceback
    assert "pipes.py" in trace and "in _check" in trace and "in total" in trace
    assert "ValueError: negative x in row 1" in trace
    assert "site-packages/ray" not in trace and "loopml/pipelines" not in trace
    run = error.pipeline_run  # type: ignore[attr-defined]
    assert run.step("total").status == "failed"
    assert run.step("make").status == "ran"


@pytest.mark.usefixtures("ray_env")
def test_step_timeout_applies_in_a_worker(
    flow: ModuleType, workspace: Workspace, ray_cluster: str
) -> None:
    options = RunOptions(executor="ray", ray_address=ray_cluster)
    started = time.monotonic()
    with pytest.raises(StepFailedError, match="timeout of 1 s"):
        flow.too_slow.run({}, workspace=workspace, options=options)
    assert time.monotonic() - started < 20


@pytest.mark.usefixtures("ray_env")
def test_an_existing_connection_is_used_and_kept(
    flow: ModuleType, workspace: Workspace, ray_cluster: str
) -> None:
    import ray

    ray.init(address=ray_cluster, log_to_driver=False)
    run = flow.flow.run({"n": 7}, workspace=workspace, options=RunOptions(executor="ray"))
    _assert_in_ray_worker(run.outputs[1], workspace)
    assert ray.is_initialized(), "a connection the caller made is the caller's to close"

    pool = RayPool(workspace, None)
    refused = pool.submit(
        StepTask(str(workspace.root), "__main__:make", "make", "run-id", arguments=())
    ).result(timeout=5)
    pool.shutdown()
    assert refused.error is not None and "defined in the script being run" in refused.error
    assert ray.is_initialized()


# --- a local cluster through ray.init ----------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("ray_env")
def test_local_ray_init(flow: ModuleType, workspace: Workspace) -> None:
    import ray

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    run = flow.flow.run({"n": 20}, workspace=workspace, options=RunOptions(executor="ray"))
    assert run.status == "finished"
    assert run.outputs[0] == {"rows": 20, "sum": 95.0}
    _assert_in_ray_worker(run.outputs[1], workspace)
    assert not ray.is_initialized()
    started = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    _, alive = psutil.wait_procs(_alive(started), timeout=15)
    for proc in _alive(alive):  # not expected; stop them so nothing outlives the test
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGKILL)
    assert not _alive(alive), f"ray.shutdown left processes: {alive}"
