"""HTML building blocks of the reports: page skeleton, escaped tables, figure blocks.

Everything that comes from data (parcel names, parameters, warnings, labels) goes through
:func:`html.escape`; the page has inline CSS only, no scripts and no external resources.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
import time
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .. import __version__
from .figures import figure_to_html

logger = logging.getLogger(__name__)

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0;
       color: #222; background: #fafafa; line-height: 1.45; }
header { background: #2b3a55; color: #fff; padding: 1em 2em; }
header h1 { margin: 0 0 .2em 0; font-size: 1.6em; }
header p { margin: 0; opacity: .85; font-size: .9em; }
nav { background: #eef1f6; padding: .6em 2em; font-size: .9em; border-bottom: 1px solid #d5dbe5; }
nav a { margin-right: 1.2em; color: #2b3a55; }
main { max-width: 1200px; margin: 0 auto; padding: 1em 2em 3em 2em; }
section.run { background: #fff; border: 1px solid #e1e4ea; border-radius: 6px;
              padding: .5em 1.5em 1.5em 1.5em; margin: 1.5em 0; }
h2 { border-bottom: 2px solid #2b3a55; padding-bottom: .2em; }
h3 { margin-top: 1.6em; color: #2b3a55; }
img.figure, svg.figure { max-width: 100%; height: auto; display: block; margin: .5em 0; }
p.caption { font-size: .88em; color: #555; margin-top: 0; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
th, td { border: 1px solid #d5dbe5; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #eef1f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.summary th { width: 16em; }
ul.warnings li { color: #8a4b00; font-family: monospace; white-space: pre-wrap; }
p.none { color: #666; font-style: italic; }
p.error { color: #a00; background: #fee; padding: .4em .8em; border-left: 3px solid #a00; }
details { margin: .6em 0; }
div.scroll { overflow-x: auto; max-width: 100%; }
summary { cursor: pointer; color: #2b3a55; }
div.methods { white-space: pre-wrap; font-size: .9em; background: #f4f6f9; padding: .8em 1em;
              border-radius: 4px; }
footer { font-size: .8em; color: #777; text-align: center; padding: 2em; }
"""

#: Text that marks a figure that failed (tests look for its absence).
FIGURE_ERROR = "This figure could not be made"


def esc(value) -> str:
    """Escape any value for HTML text or attribute content."""
    return html.escape(str(value), quote=True)


def anchor(text: str) -> str:
    """An HTML id made from ``text`` (letters, digits, ``-`` and ``_`` kept)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-") or "section"


def format_value(value) -> str:
    """A short text for a table cell (floats to 4 significant digits, NaN as ``n/a``)."""
    if value is None:
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            return "n/a"
        return f"{float(value):.4g}"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(np.asarray(value).ravel()) if isinstance(value, np.ndarray) else list(value)
        return ", ".join(format_value(v) for v in items)
    if isinstance(value, Mapping):
        return json.dumps(value, default=str)
    return str(value)


def _is_number(value) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)))


def frame_table(frame: pd.DataFrame, *, max_rows: int | None = None, css_class: str = "") -> str:
    """An escaped HTML table of a data frame (index left out).

    Parameters
    ----------
    frame : DataFrame
    max_rows : int, optional
        Rows beyond this are left out, and a last row says how many.
    css_class : str
        Class attribute of the table.
    """
    shown = frame if max_rows is None else frame.iloc[:max_rows]
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    rows = []
    for record in shown.itertuples(index=False, name=None):
        cells = "".join(
            f'<td class="num">{esc(format_value(v))}</td>' if _is_number(v)
            else f"<td>{esc(format_value(v))}</td>" for v in record)
        rows.append(f"<tr>{cells}</tr>")
    if max_rows is not None and len(frame) > max_rows:
        rows.append(f'<tr><td colspan="{len(frame.columns)}">… {len(frame) - max_rows} more '
                    "rows</td></tr>")
    cls = f' class="{esc(css_class)}"' if css_class else ""
    return (f'<div class="scroll"><table{cls}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def flatten_mapping(mapping: Mapping, prefix: str = "") -> list[tuple[str, object]]:
    """Nested mappings flattened to ``(dotted.key, value)`` pairs, in insertion order."""
    out = []
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.extend(flatten_mapping(value, name))
        else:
            out.append((name, value))
    return out


def mapping_table(mapping: Mapping | None, *, empty: str = "None recorded.") -> str:
    """A two-column (name, value) escaped table of a possibly nested mapping."""
    if not mapping:
        return f'<p class="none">{esc(empty)}</p>'
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(format_value(v))}</td></tr>"
                   for k, v in flatten_mapping(mapping))
    return f'<table class="summary"><tbody>{rows}</tbody></table>'


def warnings_list(warnings) -> str:
    """An escaped list of warning messages, or a note that there were none."""
    warnings = [str(w) for w in (warnings or [])]
    if not warnings:
        return '<p class="none">No warnings were logged.</p>'
    return '<ul class="warnings">' + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul>"


def figure_block(make, *args, alt: str, caption: str = "", fmt: str = "png", **kwargs) -> str:
    """Call a figure function and inline its figure; a failure becomes a visible note.

    A report should not be lost for one figure: the exception is logged (with traceback) as a
    warning and the block says which figure failed and why.
    """
    try:
        element = figure_to_html(make(*args, **kwargs), alt=alt, fmt=fmt)
    except Exception as err:  # reported in the page and the log
        logger.warning("Report figure %r failed: %s", alt, err, exc_info=True)
        return f'<p class="error">{FIGURE_ERROR} ({esc(alt)}): {esc(err)}</p>'
    cap = f'<p class="caption">{esc(caption)}</p>' if caption else ""
    return f"<figure>{element}{cap}</figure>"


def methods_block(methods: str | None) -> str:
    """Escaped methods text (boilerplate), whitespace kept."""
    if not methods:
        return ""
    return f'<h2 id="methods">Methods</h2><div class="methods">{esc(methods)}</div>'


def page(title: str, body: str, *, nav: list[tuple[str, str]] | None = None,
         subtitle: str = "") -> str:
    """A complete HTML5 document with inline CSS.

    Parameters
    ----------
    title : str
        Page title and top heading (escaped).
    body : str
        HTML of the main part (already escaped where needed).
    nav : list of (anchor id, label), optional
        In-page links.
    subtitle : str
        Escaped line under the title; the generator and time are always added.
    """
    now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    generated = f"Generated by samba-bids {__version__} on {now}."
    sub = f"{esc(subtitle)} · {esc(generated)}" if subtitle else esc(generated)
    links = ""
    if nav:
        links = "<nav>" + "".join(f'<a href="#{esc(a)}">{esc(label)}</a>'
                                  for a, label in nav) + "</nav>"
    return ("<!DOCTYPE html>\n"
            '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"<header><h1>{esc(title)}</h1><p>{sub}</p></header>\n{links}\n"
            f"<main>\n{body}\n</main>\n"
            "<footer>samba-bids: SAMBA electrophysiology-to-BOLD translation "
            "(Afrasiyabi et al., arXiv 2409.18462) as a BIDS App.</footer>\n"
            "</body>\n</html>\n")
