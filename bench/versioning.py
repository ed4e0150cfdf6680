"""Data versioning: ``loopml data add`` / ``data status`` against DVC, and against cat/cp/b3sum.

Scenarios (sizes of the full run; ``--quick`` shrinks them):

``big-file-add``       ``data add`` of one 1 GiB file, next to ``cat``, ``cp``, ``cp`` + fsync
                       and ``b3sum`` of the same file on the same filesystem.
``many-files-add``     ``data add`` of a folder of 10,000 files of 10 KiB (100 folders of 100).
``many-files-status``  ``data status`` of that folder with nothing changed.
``many-files-readd``   ``data add`` of that folder again after one file was rewritten.

Method, the same for every tool:

- each tool runs as its real command-line program, a child process of this one, in a fresh
  workspace folder under ``bench/work/`` (DVC: ``git init`` + ``dvc init``, analytics off and
  otherwise its defaults; its site cache and global/system config folders point into the run
  folder so that nothing outside the run is read or left behind);
- inputs are made from seeded pseudo-random bytes, so every run versions the same content;
- everything starts warm: inputs are in the page cache (written just before, then read through)
  and the first round of every scenario is a discarded warm-up. Dropping the page cache needs
  privileges a benchmark should not assume, so no cold-cache numbers are taken;
- dirty pages are flushed (``sync``, untimed) before and after every timed command, so no command
  pays for another's write-back, but each pays for the durability it asks for itself (loopml
  fsyncs its objects, DVC and ``cp`` do not: hence the extra ``cp + fsync`` baseline);
- the two tools alternate which goes first in each round; the number kept is the median.
- files are left 1 s to age after they are written and before they are first versioned, so that
  no stat cache has to distrust them as "racily clean" (written in the same clock tick as read).
"""

from __future__ import annotations

import random
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bench.harness import (
    LOOPML_VENV,
    PEERS_VENV,
    QUIET_LOAD,
    REPO_ROOT,
    WORK_DIR,
    BenchError,
    Goal,
    Sample,
    Series,
    fresh_dir,
    git_commit,
    log,
    machine_info,
    read_through,
    remove_tree,
    run,
    settle,
)

SCENARIOS = ("big-file-add", "many-files-add", "many-files-status", "many-files-readd")

# What the issue measured for DVC 3.67 on this kind of 2-core machine, for reference only; the
# ratios are always computed against DVC measured in the same run.
DVC_REFERENCE_S = {
    "big-file-add": 8.6,
    "many-files-add": 18.3,
    "many-files-status": 2.1,
    "many-files-readd": 3.3,
}

SEED_BIG = 20240101
SEED_MANY = 20240202
SEED_CHANGE = 20240303
CHUNK = 16 * 1024 * 1024
AGE_BEFORE_ADD_S = 1.0
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Config:
    """Sizes and repetitions of one run."""

    big_bytes: int
    big_reps: int
    n_files: int
    file_bytes: int
    reps: int
    warmup: bool = True
    quick: bool = False

    @classmethod
    def full(cls) -> Config:
        return cls(big_bytes=1024 * MIB, big_reps=3, n_files=10_000, file_bytes=10 * 1024, reps=5)

    @classmethod
    def small(cls) -> Config:
        return cls(
            big_bytes=128 * MIB, big_reps=3, n_files=2_000, file_bytes=10 * 1024, reps=3, quick=True
        )


# -- data ------------------------------------------------------------------------------------


def write_random_file(path: Path, size: int, seed: int) -> None:
    """``size`` seeded pseudo-random bytes at ``path`` (the same bytes for the same seed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with open(path, "wb") as handle:
        remaining = size
        while remaining:
            count = min(remaining, CHUNK)
            handle.write(rng.randbytes(count))
            remaining -= count


def tree_files(n_files: int) -> list[str]:
    """Relative paths of the many-files folder: 100 files per sub-folder."""
    return [f"d{i // 100:03d}/f{i:05d}.bin" for i in range(n_files)]


def write_tree(root: Path, n_files: int, file_bytes: int, seed: int) -> None:
    """The many-files folder: ``n_files`` distinct seeded files of ``file_bytes`` each."""
    rng = random.Random(seed)
    made: set[Path] = set()
    for relative in tree_files(n_files):
        path = root / relative
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        with open(path, "wb") as handle:
            handle.write(rng.randbytes(file_bytes))


# -- the tools ---------------------------------------------------------------------------------


class Tool(Protocol):
    name: str

    def version(self) -> str: ...

    def init(self, workspace: Path) -> None: ...

    def add(self, workspace: Path, target: str) -> Sample: ...

    def status(self, workspace: Path) -> Sample: ...

    def is_clean(self, output: str) -> bool: ...

    def notes(self) -> dict[str, Any]: ...


def _base_env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPML_", "DVC_", "GIT_"))}
    env.pop("CI", None)  # both tools change behaviour (DVC's updater) when CI is set
    env["LC_ALL"] = "C.UTF-8"
    return env


def _src_bytecode_state(package: Path) -> tuple[int, int]:
    """How many modules of ``package`` have no bytecode in ``__pycache__``, and how many have
    bytecode older than their source."""
    import importlib.util

    missing = stale = 0
    for source in package.rglob("*.py"):
        cached = Path(importlib.util.cache_from_source(str(source)))
        try:
            if cached.stat().st_mtime < source.stat().st_mtime:
                stale += 1
        except FileNotFoundError:
            missing += 1
    return missing, stale


class Loopml:
    """``.venv/bin/loopml``, the editable install of this checkout."""

    name = "loopml"

    def __init__(self, run_dir: Path, bytecode_cache: bool = True) -> None:
        self.exe = LOOPML_VENV / "bin" / "loopml"
        self.env = _base_env()
        # The editable install runs loopml from src/, which has no bytecode when
        # PYTHONDONTWRITEBYTECODE is set (as on these machines), so each command would compile
        # its modules again; DVC, installed by pip, has its bytecode. A cache outside the
        # source tree makes loopml start like an installed wheel does.
        # Bytecode that `make setup` compiled into src/ goes stale as soon as a module is edited
        # (other work edits src/ while benchmarks run): then it is not trusted either.
        missing, stale = _src_bytecode_state(REPO_ROOT / "src" / "loopml")
        self.bytecode = "present in src/ and up to date"
        if missing or stale:
            if bytecode_cache:
                self.env.pop("PYTHONDONTWRITEBYTECODE", None)
                self.env["PYTHONPYCACHEPREFIX"] = str(run_dir / "pycache")
                self.bytecode = (
                    f"src/ lacks bytecode for {missing} and has stale bytecode for {stale} "
                    "modules (PYTHONDONTWRITEBYTECODE); cached under the run folder with "
                    "PYTHONPYCACHEPREFIX, as an installed wheel would have it"
                )
            else:
                self.bytecode = (
                    f"src/ lacks bytecode for {missing} and has stale bytecode for {stale} "
                    "modules, and --no-bytecode-cache: those are compiled on every run"
                )

    def version(self) -> str:
        return run([self.exe, "--version"], env=self.env).output.strip()

    def init(self, workspace: Path) -> None:
        run([self.exe, "init"], cwd=workspace, env=self.env)

    def add(self, workspace: Path, target: str) -> Sample:
        return run([self.exe, "data", "add", target], cwd=workspace, env=self.env, quiet=True)

    def status(self, workspace: Path) -> Sample:
        return run([self.exe, "data", "status"], cwd=workspace, env=self.env, quiet=True)

    def is_clean(self, output: str) -> bool:
        lines = [line for line in output.splitlines() if line.strip()]
        return bool(lines) and all(line.endswith(": up to date") for line in lines)

    @staticmethod
    def files_read(output: str) -> int | None:
        found = re.search(r"(\d+) read\)", output)
        return int(found.group(1)) if found else None

    @staticmethod
    def object_path(workspace: Path, digest: str) -> Path:
        return workspace / ".loopml" / "objects" / digest[:2] / digest[2:]

    def notes(self) -> dict[str, Any]:
        return {
            "executable": str(self.exe),
            "storage": "copy into .loopml/objects (loose objects > 256 KiB, smaller ones packed), "
            "fsynced before the version is recorded",
            "bytecode": self.bytecode,
        }


class Dvc:
    """``bench/.venv-peers/bin/dvc`` (``make bench-setup``), in a git repository."""

    name = "dvc"

    def __init__(self, run_dir: Path) -> None:
        self.exe = PEERS_VENV / "bin" / "dvc"
        self.env = _base_env()
        # Defaults everywhere, but read and written inside this run: an empty global and system
        # config, and the site cache (where DVC 3 keeps its hash state DB) in the run folder.
        for var, folder in (
            ("DVC_SITE_CACHE_DIR", "dvc-site-cache"),
            ("DVC_GLOBAL_CONFIG_DIR", "dvc-global-config"),
            ("DVC_SYSTEM_CONFIG_DIR", "dvc-system-config"),
        ):
            path = run_dir / folder
            path.mkdir(parents=True, exist_ok=True)
            self.env[var] = str(path)
        self.env["DVC_NO_ANALYTICS"] = "1"  # also before `dvc config core.analytics false` runs
        self.env["GIT_AUTHOR_NAME"] = self.env["GIT_COMMITTER_NAME"] = "bench"
        self.env["GIT_AUTHOR_EMAIL"] = self.env["GIT_COMMITTER_EMAIL"] = "bench@localhost"
        self._cache_type: str | None = None

    def version(self) -> str:
        return run([self.exe, "--version"], env=self.env).output.strip()

    def init(self, workspace: Path) -> None:
        run(["git", "init", "-q"], cwd=workspace, env=self.env)
        run([self.exe, "init", "-q"], cwd=workspace, env=self.env)
        run([self.exe, "config", "core.analytics", "false"], cwd=workspace, env=self.env)
        if self._cache_type is None:
            shown = run(
                [self.exe, "config", "cache.type"], cwd=workspace, env=self.env, check=False
            ).output.strip()
            self._cache_type = shown or "default (reflink,copy)"

    def add(self, workspace: Path, target: str) -> Sample:
        return run([self.exe, "add", target], cwd=workspace, env=self.env, quiet=True)

    def status(self, workspace: Path) -> Sample:
        return run([self.exe, "status"], cwd=workspace, env=self.env, quiet=True)

    def is_clean(self, output: str) -> bool:
        return "up to date" in output

    def notes(self) -> dict[str, Any]:
        return {
            "executable": str(self.exe),
            "config": "defaults, core.analytics false (and DVC_NO_ANALYTICS=1)",
            "cache_type": self._cache_type,
            "cache_type_effective": "copy (ext4 has no reflink, so DVC's default "
            "reflink,copy falls back to copy)",
        }


def ordered(tools: Sequence[Tool], round_index: int) -> list[Tool]:
    """The tools, first one first in even rounds and last in odd ones."""
    return list(tools) if round_index % 2 == 0 else list(reversed(tools))


def _rounds(reps: int, warmup: bool) -> Iterable[tuple[int, bool]]:
    """(round index, whether it is kept); a warm-up round comes first and is not kept."""
    if warmup:
        yield 1, False
    for index in range(reps):
        yield index, True


# -- baselines -------------------------------------------------------------------------------


class HashBaseline:
    """``b3sum`` when Debian's package is installed, else the Python bindings in the peers venv."""

    def __init__(self) -> None:
        self.b3sum = shutil.which("b3sum")
        if self.b3sum:
            version = run([self.b3sum, "--version"]).output.strip()
            self.label = "b3sum"
            self.detail = f"{version} (Debian package; multi-threaded, mmap)"
        else:
            self.label = "blake3-py"
            self.detail = (
                "b3sum not installed: Python blake3 in bench/.venv-peers, "
                "update_mmap with max_threads=AUTO, including interpreter start-up"
            )

    def run(self, path: Path) -> tuple[Sample, str]:
        if self.b3sum:
            sample = run([self.b3sum, path], quiet=True)
        else:
            code = (
                "import sys; from blake3 import blake3; h = blake3(max_threads=blake3.AUTO); "
                "h.update_mmap(sys.argv[1]); print(h.hexdigest())"
            )
            sample = run([PEERS_VENV / "bin" / "python", "-c", code, path], quiet=True)
        return sample, sample.output.split()[0]


# -- scenarios ---------------------------------------------------------------------------------


@dataclass
class ScenarioResult:
    name: str
    description: str
    tools: dict[str, Series]
    baselines: dict[str, Series]
    goals: list[Goal]
    notes: dict[str, Any]

    def speedup(self) -> float:
        return self.tools["dvc"].median_s / self.tools["loopml"].median_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "tools": {name: series.summary() for name, series in self.tools.items()},
            "baselines": {name: series.summary() for name, series in self.baselines.items()},
            "ratios": {
                "dvc/loopml": round(self.speedup(), 3),
                **{
                    f"loopml/{name}": round(self.tools["loopml"].median_s / series.median_s, 3)
                    for name, series in self.baselines.items()
                },
            },
            "dvc_reference_s": DVC_REFERENCE_S.get(self.name),
            # The same speed-up against the DVC time the issue measured (not this run's).
            "dvc_reference/loopml": round(
                DVC_REFERENCE_S.get(self.name, 0.0) / self.tools["loopml"].median_s, 3
            ),
            "goals": [goal.as_dict() for goal in self.goals],
            "met": all(goal.met for goal in self.goals),
            **({"notes": self.notes} if self.notes else {}),
        }


def big_file(cfg: Config, tools: Sequence[Tool], run_dir: Path) -> ScenarioResult:
    """``data add`` of one large file, with the plain file tools on the same file beside it."""
    size_text = f"{cfg.big_bytes // MIB} MiB"
    log(f"big-file-add: writing a seeded {size_text} file")
    src_dir = fresh_dir(run_dir, "big-src")
    src = src_dir / "big.bin"
    write_random_file(src, cfg.big_bytes, SEED_BIG)
    settle()
    hasher = HashBaseline()
    baselines = {
        "cat": Series(),
        "cp": Series(),
        "cp+fsync": Series(),
        hasher.label: Series(extra={"detail": hasher.detail}),
    }
    results = {tool.name: Series() for tool in tools}
    digest = ""
    try:
        for index, kept in _rounds(cfg.big_reps, cfg.warmup):
            log(f"big-file-add: round {index + 1 if kept else 'warm-up'}")
            read_through(src)
            timed: dict[str, Sample] = {}
            timed["cat"] = run(["cat", src], discard_stdout=True, quiet=True)
            copy = src_dir / "copy.bin"
            timed["cp"] = run(["cp", src, copy], quiet=True)
            settle()
            copy.unlink()
            settle()
            timed["cp+fsync"] = run(
                ["sh", "-c", 'cp "$1" "$2" && sync "$2"', "sh", src, copy], quiet=True
            )
            copy.unlink()
            settle()
            timed[hasher.label], digest = hasher.run(src)
            for tool in ordered(tools, index):
                workspace = fresh_dir(run_dir, f"{tool.name}-big")
                try:
                    tool.init(workspace)
                    target = workspace / "big.bin"
                    shutil.copyfile(src, target)
                    settle()
                    read_through(target)
                    sample = tool.add(workspace, "big.bin")
                    settle()
                    if isinstance(tool, Loopml):
                        stored = Loopml.object_path(workspace, digest)
                        if not stored.is_file() or stored.stat().st_size != cfg.big_bytes:
                            raise BenchError(f"loopml did not store the object {digest}: {stored}")
                    elif not (workspace / "big.bin.dvc").is_file():
                        raise BenchError(f"dvc add wrote no big.bin.dvc:\n{sample.output}")
                    if kept:
                        results[tool.name].add(sample)
                finally:
                    remove_tree(workspace)
            if kept:
                for name, sample in timed.items():
                    baselines[name].add(sample)
    finally:
        remove_tree(src_dir)
    loopml_s = results["loopml"].median_s
    goals = [
        Goal("dvc/loopml >= 3", results["dvc"].median_s / loopml_s, ">=", 3.0),
        Goal("loopml/cp <= 1.3", loopml_s / baselines["cp"].median_s, "<=", 1.3),
    ]
    return ScenarioResult(
        "big-file-add",
        f"add one {size_text} file",
        results,
        baselines,
        goals,
        {"blake3_digest": digest},
    )


def many_files(
    cfg: Config, tools: Sequence[Tool], run_dir: Path, selected: set[str]
) -> list[ScenarioResult]:
    """Add a folder of many small files, check its status, change one file and add again."""
    shape = f"{cfg.n_files:,} files of {cfg.file_bytes // 1024} KiB"
    out: list[ScenarioResult] = []
    kept_ws: dict[str, Path] = {}
    try:
        # -- add -------------------------------------------------------------------------------
        timing_add = "many-files-add" in selected
        add_series = {tool.name: Series() for tool in tools}
        reads: dict[str, list[int | None]] = {tool.name: [] for tool in tools}
        rounds = list(_rounds(cfg.reps, cfg.warmup)) if timing_add else [(0, False)]
        for index, kept in rounds:
            label = index + 1 if kept else ("warm-up" if timing_add else "setup")
            log(f"many-files: add, round {label}")
            for tool in ordered(tools, index):
                if tool.name in kept_ws:
                    remove_tree(kept_ws.pop(tool.name))
                workspace = fresh_dir(run_dir, f"{tool.name}-many")
                kept_ws[tool.name] = workspace
                tool.init(workspace)
                write_tree(workspace / "data", cfg.n_files, cfg.file_bytes, SEED_MANY)
                settle()
                time.sleep(AGE_BEFORE_ADD_S)
                sample = tool.add(workspace, "data")
                settle()
                if kept:
                    add_series[tool.name].add(sample)
                    if isinstance(tool, Loopml):
                        reads[tool.name].append(Loopml.files_read(sample.output))
        if timing_add:
            add_series["loopml"].extra["files_read"] = reads["loopml"]
            loopml_s = add_series["loopml"].median_s
            out.append(
                ScenarioResult(
                    "many-files-add",
                    f"add a folder of {shape}",
                    add_series,
                    {},
                    [
                        Goal(
                            "dvc/loopml >= 5",
                            add_series["dvc"].median_s / loopml_s,
                            ">=",
                            5.0,
                        )
                    ],
                    {},
                )
            )

        # -- status, nothing changed -----------------------------------------------------------
        if "many-files-status" in selected:
            status_series = {tool.name: Series() for tool in tools}
            for tool in tools:
                first = tool.status(kept_ws[tool.name])
                if not tool.is_clean(first.output):
                    raise BenchError(f"{tool.name} status is not clean:\n{first.output[-2000:]}")
                status_series[tool.name].extra["first_after_add_s"] = round(first.wall_s, 4)
            for index, kept in _rounds(cfg.reps, cfg.warmup):
                log(f"many-files: status, round {index + 1 if kept else 'warm-up'}")
                for tool in ordered(tools, index):
                    sample = tool.status(kept_ws[tool.name])
                    if not tool.is_clean(sample.output):
                        raise BenchError(
                            f"{tool.name} status is not clean:\n{sample.output[-2000:]}"
                        )
                    if kept:
                        status_series[tool.name].add(sample)
            loopml_s = status_series["loopml"].median_s
            out.append(
                ScenarioResult(
                    "many-files-status",
                    f"status of {shape}, nothing changed",
                    status_series,
                    {},
                    [
                        Goal(
                            "dvc/loopml >= 5",
                            status_series["dvc"].median_s / loopml_s,
                            ">=",
                            5.0,
                        ),
                        Goal("loopml s <= 0.5", loopml_s, "<=", 0.5),
                    ],
                    {},
                )
            )

        # -- add again after one file changed --------------------------------------------------
        if "many-files-readd" in selected:
            victim = tree_files(cfg.n_files)[cfg.n_files // 2]
            readd_series = {tool.name: Series() for tool in tools}
            reads = {tool.name: [] for tool in tools}
            for index, kept in _rounds(cfg.reps, cfg.warmup):
                log(f"many-files: re-add, round {index + 1 if kept else 'warm-up'}")
                seed = SEED_CHANGE + (index + 1 if kept else 0)
                for tool in ordered(tools, index):
                    workspace = kept_ws[tool.name]
                    write_random_file(workspace / "data" / victim, cfg.file_bytes, seed)
                    settle()
                    sample = tool.add(workspace, "data")
                    settle()
                    if kept:
                        readd_series[tool.name].add(sample)
                        if isinstance(tool, Loopml):
                            reads[tool.name].append(Loopml.files_read(sample.output))
            readd_series["loopml"].extra["files_read"] = reads["loopml"]
            loopml_s = readd_series["loopml"].median_s
            out.append(
                ScenarioResult(
                    "many-files-readd",
                    f"add the folder of {shape} again after rewriting 1 file ({victim})",
                    readd_series,
                    {},
                    [
                        Goal(
                            "dvc/loopml >= 5",
                            readd_series["dvc"].median_s / loopml_s,
                            ">=",
                            5.0,
                        )
                    ],
                    {},
                )
            )
    finally:
        for workspace in kept_ws.values():
            remove_tree(workspace)
    return out


# -- the suite ---------------------------------------------------------------------------------


def run_suite(
    cfg: Config, selected: Sequence[str], *, bytecode_cache: bool = True
) -> dict[str, Any]:
    """Run the selected scenarios and return the results document."""
    run_dir = fresh_dir(WORK_DIR, "versioning")
    started = time.time()
    try:
        loopml = Loopml(run_dir, bytecode_cache)
        dvc = Dvc(run_dir)
        tools: list[Tool] = [loopml, dvc]
        versions = {tool.name: tool.version() for tool in tools}
        log(f"tools: {versions}; work folder {run_dir}")
        chosen = set(selected)
        scenarios: list[ScenarioResult] = []
        if "big-file-add" in chosen:
            scenarios.append(big_file(cfg, tools, run_dir))
        if chosen & {"many-files-add", "many-files-status", "many-files-readd"}:
            scenarios.extend(many_files(cfg, tools, run_dir, chosen))
    finally:
        remove_tree(run_dir)
    machine = machine_info()
    machine["cp"] = run(["cp", "--version"]).output.splitlines()[0]
    return {
        "suite": "versioning",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "quick": cfg.quick,
        "selected": list(selected),
        "config": {
            "big_file_bytes": cfg.big_bytes,
            "big_file_reps": cfg.big_reps,
            "many_files": cfg.n_files,
            "many_file_bytes": cfg.file_bytes,
            "reps": cfg.reps,
            "warmup_round": cfg.warmup,
        },
        "method": (
            "Wall-clock seconds of each real CLI as a child process (start-up included), median "
            "of the kept rounds after one discarded warm-up round; tools alternate order each "
            "round. Warm page cache for every tool and baseline (inputs written and read through "
            "just before); page cache not dropped (needs root privileges, not assumed). sync "
            "(untimed) before and after each timed command. Fresh workspaces under bench/work "
            "on the repository's filesystem. Files age 1 s between being written and first "
            "added. Ratios dvc/loopml are speed-ups (higher is better for loopml). Before "
            "each timed command the harness waits (up to 60 s) for other processes to use "
            "< 0.3 CPUs; other_load_samples gives the CPUs others used during each sample."
        ),
        "machine": machine,
        "loopml": {**git_commit(), "version": versions["loopml"], **loopml.notes()},
        "dvc": {"version": versions["dvc"], **dvc.notes()},
        "scenarios": [scenario.as_dict() for scenario in scenarios],
        "all_goals_met": all(goal.met for scenario in scenarios for goal in scenario.goals),
    }


def print_report(doc: dict[str, Any]) -> None:
    """Rich tables of the results document."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 150))
    table = Table(
        title=f"loopml vs DVC {doc['dvc']['version']} — data versioning "
        f"({doc['machine']['cpu_count']} CPUs; medians in seconds, start-up included)",
    )
    for column in ("scenario", "loopml s", "dvc s", "dvc/loopml", "DVC in issue s"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    table.add_column("goal")
    table.add_column("measured", justify="right")
    table.add_column("met", justify="center")
    for scenario in doc["scenarios"]:
        tools = scenario["tools"]
        for number, goal in enumerate(scenario["goals"]):
            first = number == 0
            reference = scenario["dvc_reference_s"]
            table.add_row(
                f"{scenario['name']}\n[dim]{scenario['description']}[/]" if first else "",
                f"{tools['loopml']['median_s']:.3f}" if first else "",
                f"{tools['dvc']['median_s']:.3f}" if first else "",
                f"{scenario['ratios']['dvc/loopml']:.2f}x" if first else "",
                f"{reference}" if first and reference else "",
                goal["text"],
                f"{goal['value']:.3g}",
                "[green]yes[/]" if goal["met"] else "[red]NO[/]",
            )
    console.print(table)
    for scenario in doc["scenarios"]:
        if not scenario["baselines"]:
            continue
        side = Table(title=f"{scenario['name']}: {scenario['description']}, side by side")
        for column in ("command", "median s", "min s", "max s", "CPU s", "loopml / this"):
            side.add_column(column, justify="left" if column == "command" else "right")
        rows = [("loopml data add", scenario["tools"]["loopml"], None)]
        rows.append(("dvc add", scenario["tools"]["dvc"], None))
        for name, summary in scenario["baselines"].items():
            rows.append((name, summary, scenario["ratios"].get(f"loopml/{name}")))
        for name, summary, ratio in rows:
            side.add_row(
                name,
                f"{summary['median_s']:.3f}",
                f"{summary['min_s']:.3f}",
                f"{summary['max_s']:.3f}",
                f"{summary['cpu_median_s']:.3f}",
                f"{ratio:.2f}x" if ratio is not None else "",
            )
        console.print(side)
    noisy = [
        f"{scenario['name']}/{name}"
        for scenario in doc["scenarios"]
        for group in ("tools", "baselines")
        for name, summary in scenario[group].items()
        if sum(load > QUIET_LOAD for load in summary["other_load_samples"])
        > len(summary["other_load_samples"]) // 2
    ]
    if noisy:
        console.print(
            f"[yellow]warning:[/] other processes kept > {QUIET_LOAD} CPUs busy during most "
            f"samples of {', '.join(noisy)}; those numbers measure a shared machine"
        )
    verdict = "all goals met" if doc["all_goals_met"] else "some goals NOT met"
    console.print(
        f"{verdict}; loopml {doc['loopml']['commit']}"
        f"{' (+ uncommitted changes)' if doc['loopml']['dirty'] else ''}"
    )
