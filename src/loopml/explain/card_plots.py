"""The plots of a model card: metric by slice, confusion matrix, residual histogram (PNG bytes).

Each figure is drawn on its own Agg canvas (matplotlib is imported here, lazily), so the
process's pyplot backend and state are never touched and no display is needed.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

from loopml.registry.gating.report import ConfusionMatrix, GateReport, Residuals, SliceTable

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["card_figures", "confusion_png", "residuals_png", "slice_png"]

_DPI = 100
_BELOW = "#d62728"  # a slice under its floor
_ABOVE = "#1f77b4"


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    # No timestamp or software tag: the same card draws byte-identical images.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _plain(text: object) -> str:
    """Text matplotlib shows as written: a ``$`` would otherwise start mathtext."""
    return str(text).replace("$", r"\$")


def _height(value: float | None) -> float:
    """The bar height of a value; a missing or non-finite one draws no bar."""
    return value if value is not None and math.isfinite(value) else 0.0


def _outside(table: SliceTable, value: float | None) -> bool:
    """Whether a slice's value misses the table's floor or exceeds its ceiling."""
    if value is None or not math.isfinite(value):
        return False
    if table.floor is not None and value < table.floor:
        return True
    return table.ceiling is not None and value > table.ceiling


def slice_png(table: SliceTable) -> bytes:
    """A bar per slice of ``table``; bars outside the bound in red, the bound as a dashed line."""
    count = len(table.slices)
    figure = _figure(min(16.0, max(6.0, 0.55 * count + 2.0)), 4.0)
    axes = figure.add_subplot()
    heights: list[float] = [_height(v) for v in table.values]
    floor = table.floor
    ceiling = table.ceiling
    colors = [
        _BELOW if rows >= table.min_rows and _outside(table, v) else _ABOVE
        for v, rows in zip(table.values, table.rows, strict=False)
    ]
    positions = list(range(count))
    bars = axes.bar(positions, heights, color=colors)
    labels = [f"{v:.3g}" if v is not None and math.isfinite(v) else "n/a" for v in table.values]
    axes.bar_label(bars, labels=labels, fontsize="small", padding=2)
    for line, name in ((floor, "floor"), (ceiling, "ceiling")):
        if line is not None:
            axes.axhline(
                line, color=_BELOW, linestyle="--", linewidth=1.2, label=f"{name} {line:g}"
            )
    if floor is not None or ceiling is not None:
        axes.legend(loc="lower right", fontsize="small")
    axes.set_xticks(positions)
    axes.set_xticklabels(
        [
            f"{_plain(name)}\n(n={rows})"
            for name, rows in zip(table.slices, table.rows, strict=False)
        ],
        rotation=30 if count > 6 else 0,
        ha="right" if count > 6 else "center",
        fontsize="small",
    )
    axes.set_ylabel(_plain(table.metric))
    axes.set_xlabel(_plain(table.column))
    axes.set_title(_plain(f"{table.metric} by {table.column}"))
    top = max([*heights, *(b for b in (floor, ceiling) if b is not None), 0.0])
    axes.set_ylim(min([0.0, *heights]), top * 1.15 if top > 0 else 1.0)
    axes.grid(True, axis="y", alpha=0.3)
    return _png(figure)


def confusion_png(matrix: ConfusionMatrix) -> bytes:
    """A heatmap of (true, predicted) counts with each count written in its cell."""
    size = len(matrix.classes)
    side = min(12.0, max(4.5, 0.8 * size + 2.5))
    figure = _figure(side, side * 0.85)
    axes = figure.add_subplot()
    counts = [list(row) for row in matrix.counts]
    image = axes.imshow(counts, cmap="Blues", aspect="equal")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    peak = max((n for row in counts for n in row), default=0)
    for i, row in enumerate(counts):
        for j, value in enumerate(row):
            # Dark cells get white text, light ones black, so every count stays legible.
            color = "white" if peak and value > peak / 2 else "black"
            axes.text(j, i, str(value), ha="center", va="center", color=color, fontsize="small")
    names = [_plain(c) for c in matrix.classes]
    axes.set_xticks(range(size))
    axes.set_xticklabels(names, rotation=30 if size > 4 else 0)
    axes.set_yticks(range(size))
    axes.set_yticklabels(names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("confusion matrix (holdout)")
    return _png(figure)


def residuals_png(residuals: Residuals) -> bytes:
    """The residual histogram, with zero and the mean marked."""
    figure = _figure(7.0, 4.0)
    axes = figure.add_subplot()
    if residuals.counts and len(residuals.edges) == len(residuals.counts) + 1:
        axes.stairs(residuals.counts, residuals.edges, fill=True, color=_ABOVE, alpha=0.8)
    axes.axvline(0.0, color="black", linewidth=1.0)
    axes.axvline(
        residuals.mean,
        color=_BELOW,
        linestyle="--",
        linewidth=1.2,
        label=f"mean {residuals.mean:.3g} (std {residuals.std:.3g})",
    )
    axes.legend(loc="upper right", fontsize="small")
    axes.set_xlabel("residual (actual - predicted)")
    axes.set_ylabel("rows")
    axes.set_title("residuals (holdout)")
    axes.grid(True, axis="y", alpha=0.3)
    return _png(figure)


def card_figures(report: GateReport) -> dict[str, bytes]:
    """Every plot of a gate report, by the ``figure`` key of its card section."""
    figures = {f"slice:{i}": slice_png(table) for i, table in enumerate(report.slices)}
    if report.confusion is not None:
        figures["confusion"] = confusion_png(report.confusion)
    if report.residuals is not None:
        figures["residuals"] = residuals_png(report.residuals)
    return figures
