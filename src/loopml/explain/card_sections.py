"""What a model card shows: its facts as titled tables, shared by the terminal, text and HTML.

:func:`card_sections` decides the sections, their rows and the notes that stand in for what was
never recorded ("no gate has been run yet"); the renderers only format them, so the terminal,
the piped text and the HTML page never disagree.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loopml.explain.card import CodeFacts, ModelCard, RunFacts
from loopml.registry.gating.report import GateReport, rows_of
from loopml.registry.signature import ColumnSpec, Signature

__all__ = ["CardSection", "card_sections", "format_time", "render_text"]

_SHORT = 12  # characters of a hash or id shown on a terminal
_LISTED = 8  # names listed in one cell before "…"
MISSING = "—"  # a value that cannot be known (e.g. rows of a CSV dataset)


@dataclass(frozen=True, slots=True)
class CardSection:
    """One titled table of a card, with notes; ``figure`` names the plot that goes with it."""

    key: str
    title: str
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    notes: tuple[str, ...] = ()
    figure: str | None = None  # "slice:N", "confusion" or "residuals" (HTML only)


def format_time(epoch_ms: int | None) -> str:
    """Local ``YYYY-MM-DD HH:MM:SS`` of epoch milliseconds (empty for ``None``)."""
    if epoch_ms is None:
        return ""
    return dt.datetime.fromtimestamp(epoch_ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _bytes(count: int | None) -> str:
    if count is None:
        return MISSING
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _listed(items: Sequence[Any]) -> str:
    shown = ", ".join(str(item) for item in items[:_LISTED])
    return shown + (f" … ({len(items)} in all)" if len(items) > _LISTED else "")


class _Builder:
    """Builds the sections of one card; ``short`` shortens hashes and ids (terminal only)."""

    def __init__(self, card: ModelCard, short: bool) -> None:
        self.card = card
        self.short = short

    def cut(self, text: str | None) -> str:
        if not text:
            return ""
        return text[:_SHORT] if self.short else text

    @staticmethod
    def fields(key: str, title: str, pairs: Iterable[tuple[str, str]], **extra: Any) -> CardSection:
        rows = tuple((k, v) for k, v in pairs if v != "")
        return CardSection(key, title, ("field", "value"), rows, **extra)

    # -- sections ------------------------------------------------------------------------------

    def model(self) -> CardSection:
        version = self.card.version
        pairs = [
            ("model", version.model),
            ("version", f"v{version.number}"),
            ("status", version.status),
            ("aliases", ", ".join(version.aliases)),
            ("description", version.description or ""),
            ("framework", f"{version.framework} {version.framework_version}"),
            ("class", version.model_class),
            ("flavor", version.flavor),
            ("created", format_time(version.created_at)),
            ("by", version.created_by),
            ("archived", format_time(version.archived_at)),
            ("size", _bytes(version.size)),
            ("digest", self.cut(version.digest)),
            ("run", self.cut(version.run_id)),
            ("id", version.id),
        ]
        signature = self.card.signature
        if signature is not None and signature.output is not None:
            pairs.append(("output", signature.output.dtype))
            if signature.output.classes is not None:
                pairs.append(("classes", _listed(signature.output.classes)))
        return self.fields("model", "model", pairs)

    def data(self) -> CardSection:
        columns = ("dataset", "hash", "files", "size", "rows", "path")
        rows = tuple(
            (
                d.label,
                self.cut(d.hash),
                MISSING if d.files is None else str(d.files),
                _bytes(d.size),
                MISSING if d.rows is None else str(d.rows),
                d.path or "",
            )
            for d in self.card.datasets
        )
        notes: tuple[str, ...] = ()
        if not rows:
            notes = (
                ("no training run is linked to this version, so its training data is unknown",)
                if self.card.version.run_id is None
                else ("the training run read no dataset version tracked by loopml",)
            )
        elif any(d.rows is None for d in self.card.datasets):
            notes = (f"{MISSING}: rows are counted from Parquet files only",)
        return CardSection("data", "training data", columns, rows, notes)

    def training_run(self) -> CardSection:
        run, parent = self.card.run, self.card.parent_run
        if run is None:
            note = (
                "no training run is linked to this version (logged outside a run, or imported)"
                if self.card.version.run_id is None
                else "the training run cannot be read"
            )
            return CardSection("run", "training run", notes=(note,))
        pairs = [
            ("run", self.cut(run.id)),
            ("name", run.name),
            ("kind", "pipeline step" if run.kind == "step" else "run"),
            ("experiment", run.experiment),
            ("status", run.status),
            ("started", format_time(run.started_at)),
            ("ended", format_time(run.ended_at)),
        ]
        if parent is not None:
            label = "pipeline run" if run.kind == "step" else "parent run"
            pairs += [(label, self.cut(parent.id)), (f"{label} name", parent.name)]
        return self.fields("run", "training run", pairs)

    def _values(
        self, key: str, title: str, pick: Callable[[RunFacts], Mapping[str, Any]], show: Any
    ) -> CardSection | None:
        """Params or metrics of the training run, beside its pipeline run's where they differ."""
        run, parent = self.card.run, self.card.parent_run
        if run is None:
            return None
        own = pick(run)
        theirs = pick(parent) if parent is not None else {}
        label = "step run" if run.kind == "step" else "run"
        if not theirs or dict(theirs) == dict(own):
            rows = tuple((k, show(v)) for k, v in own.items())
            notes = () if rows else (f"the training run recorded no {title}",)
            return CardSection(key, title, (title[:-1], label), rows, notes)
        other = "pipeline run" if run.kind == "step" else "parent run"
        both: tuple[tuple[str, ...], ...] = tuple(
            (k, show(own[k]) if k in own else "", show(theirs[k]) if k in theirs else "")
            for k in sorted(set(own) | set(theirs))
        )
        return CardSection(key, title, (title[:-1], label, other), both)

    def code(self) -> list[CardSection]:
        code = self.card.code
        if code is None:
            note = (
                "no training run is linked to this version, so its code version is unknown"
                if self.card.run is None
                else "the training run recorded no code version"
            )
            return [CardSection("code", "code version", notes=(note,))]
        sections = [self._manifest(code)]
        if code.steps:
            sections.append(
                CardSection(
                    "steps",
                    "pipeline steps",
                    ("step", "identity", "code hash", "status", "logged the model"),
                    tuple(
                        (
                            s.node,
                            s.step,
                            self.cut(s.code_hash),
                            s.status,
                            "yes" if s.logged_model else "",
                        )
                        for s in code.steps
                    ),
                )
            )
        return sections

    def _manifest(self, code: CodeFacts) -> CardSection:
        manifest = code.manifest
        commit = ""
        if manifest.git_commit:
            commit = manifest.git_commit + (" (uncommitted changes)" if manifest.git_dirty else "")
        changed = _listed(manifest.changed_files) if manifest.changed_files else ""
        source = f"manifest of the {code.source}" if manifest.recorded else "tags of the run"
        pairs = [
            ("git commit", commit),
            ("git branch", manifest.git_branch or ""),
            ("diff hash", self.cut(manifest.diff_hash)),
            ("changed files", changed),
            ("python", manifest.python or ""),
            ("platform", manifest.platform or ""),
            ("command", " ".join(manifest.command)),
            ("seeds", ", ".join(f"{k}={v}" for k, v in sorted(manifest.seeds.items()))),
            ("packages", f"{len(manifest.packages)} recorded" if manifest.packages else ""),
        ]
        notes = [
            f"from the {source}"
            if any(value for _, value in pairs)
            else "the training run recorded no manifest (git commit, environment)"
        ]
        if manifest.recorded and not manifest.git_commit:
            notes.append("the code did not run from a git repository")
        return self.fields("code", "code version", pairs, notes=tuple(notes))

    def gate(self) -> list[CardSection]:
        gate = self.card.gate
        if gate is None:
            return [CardSection("gate", "gate", notes=("no gate has been run yet",))]
        result, report = gate.result, gate.report
        pairs = [
            ("result", "passed" if result.passed else "failed"),
            ("gate result", self.cut(result.id)),
            ("when", format_time(result.created_at)),
            ("by", result.user),
            ("gate file hash", self.cut(result.gate_file_hash)),
            ("data hash", self.cut(result.data_hash)),
        ]
        if report is not None:
            champion = gate.champion or (
                f"{report.model}@v{report.champion}" if report.champion is not None else ""
            )
            if champion and report.champion_alias:
                champion += f" ({report.champion_alias})"
            pairs[4:4] = [("gate file", report.gate_file), ("task", report.task)]
            pairs += [
                ("holdout", f"{report.data} ({report.rows} rows)"),
                ("champion", champion or "none (no champion to compare with)"),
                ("duration", f"{report.duration_s:.1f} s"),
            ]
        if gate.total > 1:
            shown = (
                f"the one that moved {gate.grounds} is shown"
                if gate.grounds
                else "the newest is shown"
            )
            pairs.append(("gate results", f"{gate.total} ({shown})"))
        sections = [self.fields("gate", "gate", pairs)]
        if report is not None:
            sections += self._report(report)
        return sections

    def _report(self, report: GateReport) -> list[CardSection]:
        sections = [
            CardSection(
                "checks",
                "gate checks",
                ("check", "subject", "value", "threshold", "result", "detail"),
                tuple(rows_of(report.outcomes)),
                () if report.outcomes else ("the gate has no checks",),
            )
        ]
        if report.metrics:
            sections.append(
                CardSection(
                    "holdout",
                    "holdout metrics",
                    ("metric", "value"),
                    tuple((k, _number(v)) for k, v in sorted(report.metrics.items())),
                )
            )
        for index, table in enumerate(report.slices):
            floor, ceiling = table.floor, table.ceiling
            rows = tuple(
                (
                    name,
                    str(count),
                    _number(value),
                    "not judged"
                    if count < table.min_rows
                    else _versus_bound(value, floor, ceiling),
                )
                for name, count, value in zip(table.slices, table.rows, table.values, strict=False)
            )
            notes = tuple(
                f"{label}: {table.metric} {sign} {_number(bound)}"
                for label, sign, bound in (("floor", ">=", floor), ("ceiling", "<=", ceiling))
                if bound is not None
            )
            sections.append(
                CardSection(
                    f"slice:{index}",
                    f"{table.metric} by {table.column}",
                    ("slice", "rows", table.metric, "vs bound"),
                    rows,
                    notes,
                    figure=f"slice:{index}",
                )
            )
        if report.confusion is not None:
            matrix = report.confusion
            sections.append(
                CardSection(
                    "confusion",
                    "confusion matrix",
                    ("true \\ predicted", *(str(c) for c in matrix.classes)),
                    tuple(
                        (str(name), *(str(n) for n in counts))
                        for name, counts in zip(matrix.classes, matrix.counts, strict=False)
                    ),
                    ("rows: true class, columns: predicted class, on the holdout",),
                    figure="confusion",
                )
            )
        if report.residuals is not None:
            residuals = report.residuals
            edges = residuals.edges
            pairs = [
                ("mean", _number(residuals.mean)),
                ("std", _number(residuals.std)),
                ("bins", str(len(residuals.counts))),
                ("range", f"{_number(edges[0])} to {_number(edges[-1])}" if edges else ""),
                ("rows", str(sum(residuals.counts))),
            ]
            sections.append(
                self.fields(
                    "residuals",
                    "residuals",
                    pairs,
                    notes=("residual = actual - predicted, on the holdout",),
                    figure="residuals",
                )
            )
        return sections

    def contract(self) -> CardSection:
        code, signature = self.card.code, self.card.signature
        steps = code.contracts if code is not None else ()
        if steps:
            return CardSection(
                "contract",
                "data contracts (of the training pipeline's steps)",
                ("step", "input contract", "output contract"),
                tuple(
                    (s.node, self.cut(s.input_contract), self.cut(s.output_contract)) for s in steps
                ),
                (
                    "fingerprints of the contracts each step checked; the contract text is not "
                    "recorded with the run",
                ),
            )
        if signature is None:
            return CardSection(
                "contract",
                "input contract",
                notes=("no data contract and no signature were recorded for this version",),
            )
        return self.fields(
            "contract",
            "input contract (from the model's signature)",
            _signature_summary(signature),
            notes=(
                "no data contract was recorded for the training; the signature stands in: types, "
                "nullability and levels are enforced on input, ranges are not",
            ),
        )

    def signature(self) -> CardSection:
        signature = self.card.signature
        if signature is None:
            return CardSection(
                "signature",
                "signature",
                notes=("no signature: the model was logged without X_example",),
            )
        notes = []
        if not signature.named:
            notes.append("the model takes an array: columns are positions")
        return CardSection(
            "signature",
            "signature",
            ("column", "kind", "dtype", "nullable", "levels", "min", "max"),
            tuple(_column_row(c) for c in signature.columns),
            tuple(notes),
        )

    def build(self) -> list[CardSection]:
        sections = [self.model(), self.data(), self.training_run()]
        for found in (
            self._values("params", "params", lambda run: run.params, str),
            self._values("metrics", "metrics", lambda run: run.metrics, _number),
        ):
            if found is not None:
                sections.append(found)
        sections += self.code()
        sections += self.gate()
        sections += [self.contract(), self.signature()]
        if self.card.notes:
            sections.append(CardSection("notes", "notes", notes=self.card.notes))
        return sections


def _column_row(column: ColumnSpec) -> tuple[str, ...]:
    return (
        column.name,
        column.kind,
        column.dtype,
        "yes" if column.nullable else "no",
        _listed(column.categories) if column.categories is not None else "",
        _number(column.minimum),
        _number(column.maximum),
    )


def _signature_summary(signature: Signature) -> list[tuple[str, str]]:
    columns = signature.columns
    by_kind: dict[str, list[str]] = {}
    for column in columns:
        by_kind.setdefault(column.kind, []).append(column.name)
    nullable = [c.name for c in columns if c.nullable]
    levels = [f"{c.name} ({len(c.categories)})" for c in columns if c.categories is not None]
    ranges = [
        f"{c.name} {_number(c.minimum)} to {_number(c.maximum)}"
        for c in columns
        if c.minimum is not None or c.maximum is not None
    ]
    pairs = [
        ("columns", str(len(columns))),
        ("types", "; ".join(f"{kind}: {_listed(names)}" for kind, names in by_kind.items())),
        ("nullable", _listed(nullable) if nullable else "none"),
        ("with levels", _listed(levels)),
        ("observed ranges", _listed(ranges)),
        ("input as", "an array" if signature.as_array else "a DataFrame"),
    ]
    output = signature.output
    if output is not None:
        text = output.dtype
        if output.classes is not None:
            text += f", classes {_listed(output.classes)}"
        pairs.append(("output", text))
    return pairs


def card_sections(card: ModelCard, *, short: bool = False) -> list[CardSection]:
    """The card's sections in reading order; ``short`` cuts hashes and ids to 12 characters."""
    return _Builder(card, short).build()


def render_text(card: ModelCard) -> str:
    """The card as plain text: ``# title``, then tab-separated rows under a header, or notes.

    Nothing is truncated, so scripts can read it (this is what a piped ``models card`` prints).
    """
    lines: list[str] = []
    for section in card_sections(card):
        if lines:
            lines.append("")
        lines.append(f"# {section.title}")
        if section.rows:
            lines.append("\t".join(section.columns))
            lines.extend("\t".join(_flat(cell) for cell in row) for row in section.rows)
        lines.extend(section.notes)
    return "\n".join(lines) + "\n"


def _flat(cell: str) -> str:
    """A cell on one line: a tab or newline of user text would break the row."""
    return cell.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _versus_bound(value: float | None, floor: float | None, ceiling: float | None) -> str:
    """``below floor``, ``above ceiling``, ``ok``, or nothing when there is no bound or value."""
    if value is None or not math.isfinite(value) or (floor is None and ceiling is None):
        return ""
    if floor is not None and value < floor:
        return "below floor"
    if ceiling is not None and value > ceiling:
        return "above ceiling"
    return "ok"
