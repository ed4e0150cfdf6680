"""The loopml walkthrough that `make demo` runs, on the embedded default (SQLite + a folder).

It versions a dataset end to end (add, status, a second version, log, diff, tag, a remote, push,
a fresh clone that pulls the exact bytes, fsck, gc), trains the churn model as a cached pipeline
that logs each new model to the registry, runs a promotion gate (thresholds, a slice check and
no regression against the champion), promotes v1, refuses a deliberately worse v2, and writes
the model card. Every step is a real `loopml` command, printed before it runs, so you can
repeat it by hand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from loopml.data.synthetic import make_churn

HERE = Path(__file__).resolve().parent.parent
DEMO = HERE / "demo-workspace"
LOOPML = str(Path(sys.executable).with_name("loopml"))
console = Console(highlight=False)


def loopml(*args: str, cwd: Path, expect: int = 0) -> str:
    """Run one loopml command, show it and its output, stop the demo if its exit code is not
    ``expect`` (a refusal the demo shows on purpose exits 1)."""
    shown = "loopml " + " ".join(args)
    console.print(f"[bold cyan]$ {shown}[/]  [dim]({cwd.relative_to(DEMO)})[/]")
    env = dict(os.environ)
    if console.is_terminal:
        # Let loopml draw its rich tables although its output is captured here.
        env.update(TTY_COMPATIBLE="1", COLUMNS=str(console.width))
    # stderr (progress bars, errors) goes straight to the terminal; stdout is shown below.
    proc = subprocess.run([LOOPML, *args], cwd=cwd, stdout=subprocess.PIPE, text=True, env=env)
    output = proc.stdout.rstrip()
    if output:
        console.print(output, markup=False)
    if proc.returncode != expect:
        console.print(f"[bold red]demo step failed:[/] {shown} (exit {proc.returncode})")
        sys.exit(proc.returncode)
    return proc.stdout


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def main() -> None:
    if DEMO.exists():
        shutil.rmtree(DEMO)
    project = DEMO / "project"
    project.mkdir(parents=True)
    data = project / "data" / "churn"
    data.mkdir(parents=True)

    console.print(Rule("1. A workspace and the first version of a dataset"))
    loopml("init", cwd=project)
    make_churn(20_000, seed=1).to_parquet(data / "2026-01.parquet")
    loopml("data", "add", "data/churn", "-m", "January customers", cwd=project)
    loopml("data", "status", cwd=project)

    console.print(Rule("2. New data arrives: status sees it, add records v2"))
    make_churn(20_000, seed=2, drift=0.3).to_parquet(data / "2026-02.parquet")
    loopml("data", "status", cwd=project)
    loopml("data", "add", "data/churn", "-m", "February customers", cwd=project)
    loopml("data", "add", "data/churn", cwd=project)  # unchanged: no new version
    loopml("data", "log", "churn", cwd=project)
    loopml("data", "diff", "churn@v1", "churn@v2", cwd=project)
    loopml("data", "tag", "churn@v1", "baseline", cwd=project)
    loopml("data", "ls", "churn@baseline", cwd=project)

    console.print(Rule("3. Share it: a remote, push, and a fresh clone that pulls"))
    remote = DEMO / "remote-store"
    loopml("remote", "add", "origin", str(remote), "--default", cwd=project)
    loopml("push", cwd=project)
    clone = DEMO / "clone"
    clone.mkdir()
    # What `git clone` would bring: the committed files, not .loopml's database or objects.
    for name in ("loopml.toml", "loopml.lock"):
        shutil.copy(project / name, clone / name)
    (clone / ".loopml").mkdir()
    shutil.copy(project / ".loopml/.gitignore", clone / ".loopml/.gitignore")
    loopml("pull", cwd=clone)
    loopml("data", "checkout", "churn", cwd=clone)
    same = snapshot(clone / "data/churn") == snapshot(data)
    console.print(f"clone's data/churn is byte-identical to the original: [bold]{same}[/]")
    if not same:
        sys.exit(1)

    console.print(Rule("4. Go back in time, and check the store"))
    loopml("data", "checkout", "churn@baseline", "--to", "data/churn-baseline", cwd=project)
    loopml("fsck", cwd=project)
    loopml("gc", cwd=project)

    console.print(Rule("5. Train as a pipeline: load → validate → features → train → evaluate"))
    shutil.copy(HERE / "examples" / "churn_pipeline.py", project / "churn_pipeline.py")
    target = "churn_pipeline.py:churn"
    loopml("run", target, "--param", "data=churn@v2", cwd=project)
    console.print("[dim]…again: every step comes from the exact cache[/]")
    loopml("run", target, "--param", "data=churn@v2", cwd=project)
    # A deliberately weak model (shallow, three trees): the dry run says what would rerun.
    weak = ("--param", "data=churn@v2", "--param", "max_depth=2", "--param", "trees=3")
    loopml("run", target, *weak, "--dry-run", cwd=project)
    last = loopml("run", target, *weak, cwd=project)
    run_id = last.strip().splitlines()[-1].split()[1]
    loopml("runs", "dag", run_id, cwd=project)
    pipelines_only = "tags.loopml.kind = 'pipeline'"
    listing = loopml(
        "runs", "ls", "--experiment", "churn", "--filter", pipelines_only, "--max", "2", cwd=project
    )
    run_ids = [line.split("\t")[0] for line in listing.splitlines()[1:3] if "\t" in line]
    if len(run_ids) == 2:
        loopml("runs", "compare", *run_ids, cwd=project)

    console.print(Rule("6. Gate and promote: nothing reaches champion without passing tests"))
    holdout = project / "data" / "holdout"
    holdout.mkdir()
    make_churn(5_000, seed=7, drift=0.3).to_parquet(holdout / "2026-03.parquet")
    loopml("data", "add", "data/holdout", "-m", "March customers, held out", cwd=project)
    shutil.copy(HERE / "examples" / "gates.yaml", project / "gates.yaml")
    console.print((project / "gates.yaml").read_text().rstrip(), markup=False)
    loopml("models", "versions", "churn", cwd=project)
    gate = ("--to", "champion", "--gate", "gates.yaml", "--data", "holdout@v1")
    loopml("models", "promote", "churn", "1", *gate, cwd=project)
    console.print("[dim]…the weak v2 must beat the champion on the same rows: refused[/]")
    loopml("models", "promote", "churn", "2", *gate, cwd=project, expect=1)
    loopml("models", "history", "churn", cwd=project)
    card = loopml("models", "card", "churn@champion", "--html", cwd=project)
    console.print(f"model card: [bold]{card.strip().splitlines()[-1]}[/]")

    import pandas as pd

    from loopml.data import read_frame
    from loopml.store.workspace import Workspace

    with Workspace.open(project) as workspace:
        frames = {
            ref: read_frame(ref, workspace=workspace) for ref in ("churn@baseline", "churn@v2")
        }
    table = pd.DataFrame(
        {
            ref: {
                "rows": f"{len(f):,}",
                "churn rate": f"{f['churned'].mean():.3f}",
                "mean monthly charges": f"{f['monthly_charges'].mean():.2f}",
            }
            for ref, f in frames.items()
        }
    )
    console.print(Rule("7. The same versions from Python: loopml.data.read_frame"))
    console.print(table.to_string(), markup=False)
    console.print(f"\nDemo workspace left in {DEMO} — try `cd {project} && loopml data log churn`.")


if __name__ == "__main__":
    main()
