"""Self-contained HTML: tables and base64-embedded PNG figures, no external assets."""

from __future__ import annotations

import base64
import html
import numbers

import pandas as pd

from sonimage.report.text import MINUS, num

STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;color:#222;
line-height:1.45;padding:0 1em}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:2px solid #1b6ca8;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.3em .6em;
text-align:left;vertical-align:top}th{background:#eef3f8}td.num{text-align:right;white-space:nowrap}td.nw{white-space:nowrap}
.note{color:#555;font-size:.9em}.key{background:#f6f9fc;border-left:4px solid #1b6ca8;padding:.6em 1em}
img{max-width:100%;height:auto;margin:.5em 0}.grid{display:flex;flex-wrap:wrap;gap:1em}
.grid>div{flex:1 1 460px;min-width:0}.scroll{overflow-x:auto;max-width:100%}
.banner{background:#fff4e5;border:1px solid #e0a040;padding:.5em 1em;font-weight:600}
table table{margin:0;font-size:1em}
"""


def esc(x) -> str:
    return html.escape(str(x))


def img(png: bytes, alt: str) -> str:
    """An <img> holding the PNG inline."""
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def table(df: pd.DataFrame, digits: int = 2) -> str:
    """A DataFrame as an HTML table (numbers right-aligned, rounded, a real minus; "–" where missing), in a box
    that scrolls sideways when the table is wider than the page."""
    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    rows = []
    for _, r in df.astype(object).iterrows():
        cells = []
        for v in r:
            if v is None or (isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral)):
                cells.append(f'<td class="num">{num(v, digits)}</td>')
            else:
                text = str(v)
                cells.append(f"<td class='nw'>{esc(text)}</td>" if len(text) <= 32 else f"<td>{esc(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"


def dict_table(d: dict, names: dict[str, str] | None = None) -> str:
    """Nested settings as a two-column table (nested mappings as nested tables), not a Python repr."""
    names = names or {}
    rows = []
    for k, v in d.items():
        if isinstance(v, dict):
            cell = dict_table(v, names) if v else "–"
        elif isinstance(v, (list, tuple)):
            cell = esc(", ".join(_setting(x) for x in v) or "–")
        elif isinstance(v, float):
            cell = esc(_setting(v))
        else:
            cell = esc("–" if v is None else v)
        rows.append(f"<tr><th>{esc(names.get(k, str(k).replace('_', ' ')))}</th><td>{cell}</td></tr>")
    return f"<div class='scroll'><table><tbody>{''.join(rows)}</tbody></table></div>"


def _setting(x) -> str:
    return f"{x:g}".replace("-", MINUS) if isinstance(x, float) else str(x)


def page(title: str, sections: list[tuple[str, str]], subtitle: str = "", banner: str = "") -> str:
    """The whole document: an optional banner, a contents list and one <section> per (heading, html body)."""
    toc = "".join(f'<li><a href="#s{i}">{esc(h)}</a></li>' for i, (h, _) in enumerate(sections))
    body = "".join(f'<section id="s{i}"><h2>{esc(h)}</h2>{b}</section>' for i, (h, b) in enumerate(sections))
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1><p class='note'>{esc(subtitle)}</p>"
            + (f"<p class='banner'>{esc(banner)}</p>" if banner else "") +
            f"<h3>Contents</h3><ol>{toc}</ol>{body}</body></html>")
