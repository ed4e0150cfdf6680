"""A model card as one self-contained HTML page: inline style, plots as base64 PNG, no scripts.

Every piece of recorded text (a description, a param, a slice name) is escaped; the page's
Content-Security-Policy also forbids scripts and any resource that is not inline, so a card can
be mailed, archived or opened offline and shows the same thing.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from loopml.explain.card import ModelCard
from loopml.explain.card_sections import CardSection, card_sections, format_time
from loopml.explain.errors import CardWriteError

__all__ = ["render_html", "write_html"]

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:72em;
padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.15em;margin:1.6em 0 .4em;
border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;font-size:.9em;margin:.3em 0}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top;
word-break:break-word}
th{background:#f5f5f5}td.field{font-weight:600;white-space:nowrap}
p.note{color:#666;font-size:.9em;margin:.3em 0}p.sub{color:#444;margin:.2em 0}
.badge{display:inline-block;padding:.1em .6em;border-radius:.8em;font-weight:600;font-size:.9em}
.passed{background:#e3f4e6;color:#1b6e2b}.failed{background:#fbe3e3;color:#a11d1d}
.none{background:#eee;color:#555}td.bad{color:#a11d1d;font-weight:600}
figure{margin:.6em 0}img{max-width:100%;height:auto}
""".strip()
# Nothing but inline style and data: images may load; no script runs.
_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_BAD = {"failed", "below floor", "above ceiling"}


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _table(section: CardSection) -> str:
    if section.columns == ("field", "value"):
        body = "".join(
            f"<tr><td class='field'>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in section.rows
        )
        return f"<table>{body}</table>"
    head = "".join(f"<th>{_e(c)}</th>" for c in section.columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='bad'>{_e(cell)}</td>" if cell in _BAD else f"<td>{_e(cell)}</td>"
            for cell in row
        )
        + "</tr>"
        for row in section.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(png: bytes, alt: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{encoded}" alt="{_e(alt)}"></figure>'


def _section(section: CardSection, figures: dict[str, bytes]) -> str:
    parts = [f"<section id='{_e(section.key.replace(':', '-'))}'><h2>{_e(section.title)}</h2>"]
    if section.rows:
        parts.append(_table(section))
    parts.extend(f"<p class='note'>{_e(note)}</p>" for note in section.notes)
    if section.figure is not None and section.figure in figures:
        parts.append(_image(figures[section.figure], section.title))
    parts.append("</section>")
    return "".join(parts)


def _badge(card: ModelCard) -> str:
    gate = card.gate
    if gate is None:
        return "<span class='badge none'>no gate run yet</span>"
    if gate.result.passed:
        return "<span class='badge passed'>gate passed</span>"
    return "<span class='badge failed'>gate failed</span>"


def render_html(card: ModelCard) -> str:
    """The card as a self-contained HTML page, with the gate's plots embedded as PNG."""
    figures: dict[str, bytes] = {}
    if card.gate is not None and card.gate.report is not None:
        from loopml.explain.card_plots import card_figures

        figures = card_figures(card.gate.report)
    version = card.version
    title = f"Model card: {card.label}"
    header = [f"<h1>{_e(title)}</h1>"]
    if version.description:
        header.append(f"<p class='sub'>{_e(version.description)}</p>")
    header.append(
        f"<p class='sub'>{_e(version.framework)} {_e(version.framework_version)} · "
        f"{_e(version.model_class)} {_badge(card)}</p>"
    )
    header.append(f"<p class='note'>generated {_e(format_time(card.generated_at))} by loopml</p>")
    body = "".join(_section(s, figures) for s in card_sections(card))
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{_POLICY}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body><header>{''.join(header)}</header>\n{body}\n</body></html>\n"
    )


def write_html(card: ModelCard, path: Path | str | None = None) -> Path:
    """Write the HTML card atomically to ``path`` (default ``.loopml/cards/<name>-v<N>.html``).

    Returns the path written. A reader never sees half a page: the page is written to a
    temporary file beside it and renamed into place.
    """
    from loopml.store.fsutil import atomic_write_bytes

    target = card.default_path if path is None else Path(path)
    if target.is_dir():
        raise CardWriteError(f"{target} is a folder; give a file name such as {target}/card.html")
    page = render_html(card).encode("utf-8")
    try:
        atomic_write_bytes(target, page)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CardWriteError(
            f"cannot write the card to {target}: {reason}; choose another path"
        ) from None
    return target
