"""Self-contained HTML: tables and base64-embedded PNG figures, no external assets."""

from __future__ import annotations

import base64
import html

import numpy as np
import pandas as pd

STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;color:#222;
line-height:1.45;padding:0 1em}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:2px solid #1b6ca8;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.3em .6em;
text-align:left;vertical-align:top}th{background:#eef3f8}td.num{text-align:right}
.note{color:#555;font-size:.9em}.key{background:#f6f9fc;border-left:4px solid #1b6ca8;padding:.6em 1em}
img{max-width:100%;margin:.5em 0}.grid{display:flex;flex-wrap:wrap;gap:1em}.grid>div{flex:1 1 460px}
"""


def esc(x) -> str:
    return html.escape(str(x))


def img(png: bytes, alt: str) -> str:
    """An <img> holding the PNG inline."""
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def table(df: pd.DataFrame, digits: int = 2) -> str:
    """A DataFrame as an HTML table (numbers right-aligned, rounded)."""
    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    rows = []
    for _, r in df.astype(object).iterrows():
        cells = []
        for v in r:
            if isinstance(v, (float, np.floating)):
                txt = "–" if not np.isfinite(v) else f"{v:.{digits}f}" if abs(v) >= 10 ** -digits or v == 0 \
                    else f"{v:.2g}"
                cells.append(f'<td class="num">{txt}</td>')
            else:
                cells.append(f"<td>{esc(v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def page(title: str, sections: list[tuple[str, str]], subtitle: str = "") -> str:
    """The whole document: a contents list and one <section> per (heading, html body)."""
    toc = "".join(f'<li><a href="#s{i}">{esc(h)}</a></li>' for i, (h, _) in enumerate(sections))
    body = "".join(f'<section id="s{i}"><h2>{esc(h)}</h2>{b}</section>' for i, (h, b) in enumerate(sections))
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1><p class='note'>{esc(subtitle)}</p>"
            f"<h3>Contents</h3><ol>{toc}</ol>{body}</body></html>")
