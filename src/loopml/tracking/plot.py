"""Line charts of metric histories, drawn with matplotlib's Agg canvas (no display needed).

The figure is drawn on its own Agg canvas, so the process's pyplot backend is never changed.
A ``.png`` path gets the PNG; an ``.html`` path gets a small page with the PNG embedded.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loopml.errors import UserInputError
from loopml.tracking.compare import id_prefixes, resolve_runs
from loopml.tracking.errors import TrackingError
from loopml.tracking.model import Metric
from loopml.tracking.sql_store import SqlTrackingStore

__all__ = ["PlotResult", "default_plot_path", "plot_metric"]

_SUFFIXES = (".png", ".html", ".htm")


@dataclass(frozen=True, slots=True)
class PlotResult:
    """Where the chart went and what it shows."""

    path: Path
    runs: int
    points: int


def default_plot_path(metric: str) -> Path:
    """``<metric>.png`` in the current folder, with characters unsafe in a file name replaced."""
    return Path(re.sub(r"[^A-Za-z0-9._-]+", "_", metric).strip("._") or "metric").with_suffix(
        ".png"
    )


def _png(series: Sequence[tuple[str, list[Metric]]], metric: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for label, points in series:
        steps = [p.step for p in points]
        values = [p.value for p in points]
        # One point alone draws no line; a marker keeps it visible.
        axes.plot(steps, values, label=label, marker="o" if len(points) == 1 else None)
    axes.set_xlabel("step")
    axes.set_ylabel(metric)
    axes.set_title(metric)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _html(png: bytes, metric: str, labels: Sequence[str]) -> bytes:
    title = html.escape(f"{metric}: " + ", ".join(labels))
    encoded = base64.b64encode(png).decode("ascii")
    page = (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>{title}</title></head>\n<body style='font-family:sans-serif'>"
        f"<h1 style='font-size:1.2em'>{title}</h1>\n"
        f"<img alt='{html.escape(metric)}' src='data:image/png;base64,{encoded}'>\n"
        "</body></html>\n"
    )
    return page.encode()


def plot_metric(
    store: SqlTrackingStore,
    references: Sequence[str],
    metric: str,
    out: Path | None = None,
) -> PlotResult:
    """Draw ``metric`` of each run (step on x) and save it to ``out`` (PNG or HTML)."""
    path = out if out is not None else default_plot_path(metric)
    if path.suffix.lower() not in _SUFFIXES:
        raise UserInputError(f"cannot write a plot to {path}: use a .png or .html file name")
    ids = resolve_runs(store, references)
    prefixes = id_prefixes(store, ids)
    series: list[tuple[str, list[Metric]]] = []
    for ident in ids:
        points = store.metric_history(ident, metric)
        if not points:
            known = ", ".join(store.metric_keys(ident)) or "none"
            raise TrackingError(
                f"run {prefixes[ident]} has no metric {metric!r} (its metrics: {known})"
            )
        run = store.get_run(ident)
        series.append((f"{run.name} ({prefixes[ident]})", points))
    png = _png(series, metric)
    data = png if path.suffix.lower() == ".png" else _html(png, metric, [s[0] for s in series])
    if path.parent != Path() and not path.parent.is_dir():
        raise UserInputError(f"cannot write {path}: the folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.loopml-tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserInputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return PlotResult(path, len(series), sum(len(s[1]) for s in series))
