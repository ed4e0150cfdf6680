"""What every benchmark needs: timed child processes, medians, machine facts, results files.

A measurement is the wall-clock time of one child process, from just before it is started until
it has been waited for, taken with ``time.perf_counter``; the CPU time (user + system) of the
same child comes from ``getrusage(RUSAGE_CHILDREN)`` deltas, which is exact because children run
one at a time. Nothing is timed in-process: start-up is part of what a user waits for.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "bench"
WORK_DIR = BENCH_DIR / "work"
RESULTS_DIR = BENCH_DIR / "results"
PEERS_VENV = BENCH_DIR / ".venv-peers"
LOOPML_VENV = REPO_ROOT / ".venv"


class BenchError(RuntimeError):
    """A benchmark could not run (a command failed or gave an unexpected answer)."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One timed run of one command.

    ``other_cpu_s`` is the CPU time the rest of the machine used meanwhile (all CPUs busy time
    from /proc/stat, less this command's own): on a shared 2-core machine it tells a clean
    sample from one that other work slowed down.
    """

    wall_s: float
    cpu_s: float
    output: str
    other_cpu_s: float = 0.0


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def busy_cpu_s() -> float:
    """Seconds of CPU time the whole machine has spent busy since boot (0 if unknown)."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return 0.0
    # cpu user nice system idle iowait irq softirq steal ...
    values = [int(v) for v in fields[1:9]]
    busy = sum(values) - values[3] - values[4]
    return busy / _CLOCK_TICKS


QUIET_LOAD = 0.3  # CPUs that other processes may keep busy while a sample is taken
_quiet_budget = {"left_s": 600.0}


def set_quiet_budget(seconds: float) -> None:
    """How long, in all, the run may wait for the machine to go quiet (0: never wait)."""
    _quiet_budget["left_s"] = max(0.0, seconds)


def wait_until_quiet(window_s: float = 0.5, max_wait_s: float = 30.0) -> float:
    """Wait until other processes use under ``QUIET_LOAD`` CPUs; returns the load last seen.

    Others may share this machine (test suites of other work); a sample taken under their load
    measures them as much as the tool. Each wait is bounded, and so is the sum of all waits (a
    machine that never goes quiet still gets benchmarked, and the samples say how loaded it was).
    """
    started = time.monotonic()
    deadline = started + min(max_wait_s, _quiet_budget["left_s"])
    load = 0.0
    while True:
        before = busy_cpu_s()
        time.sleep(window_s)
        load = (busy_cpu_s() - before) / window_s
        if load < QUIET_LOAD or time.monotonic() >= deadline:
            break
    waited = time.monotonic() - started - window_s
    _quiet_budget["left_s"] = max(0.0, _quiet_budget["left_s"] - max(0.0, waited))
    return load


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    discard_stdout: bool = False,
    check: bool = True,
    quiet: bool = False,
) -> Sample:
    """Run ``argv`` to completion and time it; raise ``BenchError`` if it fails.

    Output is captured through a pipe (so tools print their plain, non-terminal form, with no
    progress bars); ``discard_stdout`` sends stdout to /dev/null instead (for ``cat``).
    ``quiet`` first waits for the rest of the machine to go (nearly) idle.
    """
    if quiet:
        wait_until_quiet()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine_before = busy_cpu_s()
    started = time.perf_counter()
    proc = subprocess.run(
        [os.fspath(a) for a in argv],
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL if discard_stdout else subprocess.PIPE,
        stderr=subprocess.STDOUT if not discard_stdout else subprocess.PIPE,
        check=False,
    )
    wall = time.perf_counter() - started
    machine_busy = busy_cpu_s() - machine_before
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    raw = proc.stdout if not discard_stdout else proc.stderr
    output = (raw or b"").decode("utf-8", "replace")
    if check and proc.returncode != 0:
        shown = " ".join(os.fspath(a) for a in argv)
        raise BenchError(
            f"`{shown}` exited {proc.returncode} in {cwd or os.getcwd()}:\n{output[-4000:]}"
        )
    return Sample(wall, cpu, output, max(0.0, machine_busy - cpu))


@dataclass
class Series:
    """Repeated samples of one command in one scenario."""

    samples: list[Sample] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, sample: Sample) -> Sample:
        self.samples.append(sample)
        return sample

    @property
    def median_s(self) -> float:
        return statistics.median(s.wall_s for s in self.samples)

    def summary(self) -> dict[str, Any]:
        walls = [s.wall_s for s in self.samples]
        cpus = [s.cpu_s for s in self.samples]
        others = [s.other_cpu_s / s.wall_s if s.wall_s else 0.0 for s in self.samples]
        return {
            "median_s": round(statistics.median(walls), 4),
            "min_s": round(min(walls), 4),
            "max_s": round(max(walls), 4),
            "samples_s": [round(w, 4) for w in walls],
            "cpu_median_s": round(statistics.median(cpus), 4),
            "cpu_samples_s": [round(c, 4) for c in cpus],
            # CPUs the rest of the machine kept busy during each sample (0 = it was idle).
            "other_load_samples": [round(o, 2) for o in others],
            **self.extra,
        }


@dataclass(frozen=True, slots=True)
class Goal:
    """A target from the issue, checked against a measured value."""

    text: str
    value: float
    op: str  # ">=" or "<="
    target: float

    @property
    def met(self) -> bool:
        return self.value >= self.target if self.op == ">=" else self.value <= self.target

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "value": round(self.value, 3), "met": self.met}


def fresh_dir(parent: Path, name: str) -> Path:
    """A new, empty folder ``parent/name-N`` (never reused, so no tool sees an old cache)."""
    parent.mkdir(parents=True, exist_ok=True)
    for index in range(10_000):
        path = parent / f"{name}-{index}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise BenchError(f"no free folder name for {name} under {parent}")


def remove_tree(path: Path) -> None:
    """Delete a folder that tools may have made read-only in places."""
    if not path.exists():
        return

    def make_writable(func: Any, target: str, _exc: Any) -> None:
        os.chmod(os.path.dirname(target), 0o755)
        if os.path.isdir(target):
            os.chmod(target, 0o755)
        else:
            os.chmod(target, 0o644)
        func(target)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=make_writable)
    else:
        shutil.rmtree(path, onerror=make_writable)


def settle() -> None:
    """Flush dirty pages to disk between measurements, untimed, so one run's write-back is never
    paid by the next one."""
    os.sync()


def read_through(path: Path) -> None:
    """Read a file end to end so that it is in the page cache (the "warm" state every tool and
    baseline starts from; dropping the page cache needs root privileges we do not assume)."""
    with open(path, "rb", buffering=0) as handle:
        buffer = bytearray(8 * 1024 * 1024)
        while handle.readinto(buffer):
            pass


def _command_output(argv: Sequence[str], cwd: Path | None = None) -> str | None:
    try:
        proc = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_commit() -> dict[str, Any]:
    """The loopml commit benchmarked, and whether the tree had uncommitted changes."""
    commit = _command_output(["git", "rev-parse", "HEAD"], REPO_ROOT)
    status = _command_output(["git", "status", "--porcelain", "--untracked-files=no"], REPO_ROOT)
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def machine_info() -> dict[str, Any]:
    """Facts about the machine that numbers depend on."""
    memory = None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    cpu_model = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model,
        "memory_bytes": memory,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "filesystem": _command_output(["stat", "-f", "-c", "%T", str(WORK_DIR.parent)]),
        "hostname": platform.node(),
    }


def write_results(name: str, payload: Mapping[str, Any]) -> Path:
    """Write ``bench/results/NAME.json`` atomically; returns its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def log(message: str) -> None:
    """Progress line on stderr, timestamped, flushed at once (the run takes minutes)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- in-process timings reported by a child -----------------------------------------------------

RESULT_PREFIX = "BENCH-RESULT "


def child_result(sample: Sample) -> dict[str, Any]:
    """The ``BENCH-RESULT {json}`` line a child script printed last (raises if there is none)."""
    for line in reversed(sample.output.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    raise BenchError(f"the child printed no result line:\n{sample.output[-4000:]}")


@dataclass
class Timed:
    """Repeated measurements of one thing, each a number of seconds a child timed in-process.

    Every value comes from its own child process (``process``: that child's wall time, CPU time
    and the CPUs other processes kept busy meanwhile, as in ``Series``); ``details`` keeps what
    else each child reported.
    """

    values: list[float] = field(default_factory=list)
    processes: list[Sample] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, value: float, process: Sample, detail: Mapping[str, Any] | None = None) -> None:
        self.values.append(value)
        self.processes.append(process)
        self.details.append(dict(detail or {}))

    @property
    def median_s(self) -> float:
        return statistics.median(self.values)

    def median_of(self, key: str) -> float:
        """Median of one numeric field the children reported."""
        return statistics.median(float(d[key]) for d in self.details)

    def summary(self, digits: int = 6) -> dict[str, Any]:
        walls = [p.wall_s for p in self.processes]
        others = [p.other_cpu_s / p.wall_s if p.wall_s else 0.0 for p in self.processes]
        return {
            "median_s": round(self.median_s, digits),
            "min_s": round(min(self.values), digits),
            "max_s": round(max(self.values), digits),
            "samples_s": [round(v, digits) for v in self.values],
            "process_wall_s": [round(w, 3) for w in walls],
            "process_cpu_s": [round(p.cpu_s, 3) for p in self.processes],
            # CPUs the rest of the machine kept busy while each child ran (0 = it was idle).
            "other_load_samples": [round(o, 2) for o in others],
            **self.extra,
        }
