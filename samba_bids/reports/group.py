"""The group HTML report: per-run summaries across participants and group parcel maps.

The group level fills one :class:`GroupReport` from the participant outputs and calls
:func:`render_group_report`, which writes one self-contained HTML file (inline PNG figures,
inline CSS, no scripts, no external resources).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..bids.derivatives import atomic_path
from . import figures
from .page import (
    esc,
    figure_block,
    format_value,
    frame_table,
    mapping_table,
    methods_block,
    page,
    warnings_list,
)

logger = logging.getLogger(__name__)


@dataclass
class GroupReport:
    """What the group report shows.

    Attributes
    ----------
    table : DataFrame
        One row per participant and run: ``participant``, ``session``, ``task``, ``run``,
        ``median_pearson_r``, ``ridge_median_pearson_r``, ``fraction_significant``,
        ``median_time_to_peak_s``, ``n_test_volumes``, ``best_epoch`` (all but
        ``participant`` and ``median_pearson_r`` may be absent or NaN).
    parcels : DataFrame
        One row per BOLD parcel: ``parcel``, ``mean_pearson_r``, ``sd_pearson_r``,
        ``mean_time_to_peak_s``, ``sd_time_to_peak_s``, ``n`` (runs contributing).
    centroids_mm : ndarray, shape (M, 3)
        Centroids of ``parcel_names``, in MNI-like mm.
    parcel_names : list of str, length M
    parameters : dict
        The group level's resolved configuration.
    warnings : list of str
    provenance : dict
        Nested allowed (input derivatives, atlas).
    title : str, optional
    """

    table: pd.DataFrame
    parcels: pd.DataFrame
    centroids_mm: np.ndarray
    parcel_names: list
    parameters: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    title: str | None = None

    def __post_init__(self):
        self.centroids_mm = np.asarray(self.centroids_mm, dtype=float)
        if self.centroids_mm.shape != (len(self.parcel_names), 3):
            raise ValueError(f"centroids_mm has shape {self.centroids_mm.shape}; expected "
                             f"({len(self.parcel_names)}, 3).")
        if "parcel" not in self.parcels.columns:
            raise ValueError("The per-parcel group frame lacks a 'parcel' column.")

    def parcel_values(self, column: str) -> np.ndarray:
        """``parcels[column]`` in ``parcel_names`` order; NaN where a parcel is missing."""
        if column not in self.parcels.columns:
            return np.full(len(self.parcel_names), np.nan)
        values = dict(zip(self.parcels["parcel"].astype(str), self.parcels[column]))
        unknown = set(values) - {str(p) for p in self.parcel_names}
        if unknown:
            logger.warning("%d parcels of the group frame have no centroid and are not "
                           "mapped (e.g. %s).", len(unknown), min(unknown))
        return np.array([float(values.get(str(p), np.nan)) for p in self.parcel_names])


def _summary(report: GroupReport) -> str:
    table = report.table
    rows = [("Participants", table["participant"].nunique() if "participant" in table else "n/a"),
            ("Runs", len(table))]
    for column, label in (("median_pearson_r", "Median over runs of the median test r, SAMBA"),
                          ("ridge_median_pearson_r",
                           "Median over runs of the median test r, ridge baseline"),
                          ("fraction_significant",
                           "Median over runs of the fraction of significant parcels"),
                          ("median_time_to_peak_s",
                           "Median over runs of the median time to peak (s)")):
        if column in table.columns:
            values = table[column].to_numpy(dtype=float)
            finite = values[np.isfinite(values)]
            if finite.size:
                rows.append((label, f"{np.median(finite):.3f}"))
    if {"median_pearson_r", "ridge_median_pearson_r"} <= set(table.columns):
        diff = (table["median_pearson_r"].to_numpy(float)
                - table["ridge_median_pearson_r"].to_numpy(float))
        diff = diff[np.isfinite(diff)]
        if diff.size:
            rows.append(("Runs where SAMBA beats ridge (median r)",
                         f"{int((diff > 0).sum())} of {diff.size}"))
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(format_value(v))}</td></tr>"
                   for k, v in rows)
    return f'<table class="summary"><tbody>{body}</tbody></table>'


def group_report_html(report: GroupReport, *, methods: str | None = None) -> str:
    """The group report as an HTML string (see :func:`render_group_report`)."""
    title = report.title or "samba-bids group report"
    nav = [("summary", "Summary"), ("runs", "Runs"), ("distributions", "Distributions"),
           ("maps", "Group maps"), ("parameters", "Parameters"), ("warnings", "Warnings")]
    out = ['<section class="run">', '<h2 id="summary">Summary</h2>', _summary(report),
           '<h2 id="runs">Runs</h2>']
    sort = [c for c in ("participant", "session", "task", "run") if c in report.table.columns]
    table = report.table.sort_values(sort, kind="stable") if sort else report.table
    out.append(frame_table(table))
    out.append('<h2 id="distributions">Distributions across participants</h2>')
    if len(report.table):
        out.append(figure_block(figures.distribution_figure, report.table,
                                alt="median test r across runs",
                                caption="Each point is one run's median test Pearson r over "
                                        "parcels; paired runs of SAMBA and the ridge baseline "
                                        "are joined."))
    else:
        out.append('<p class="none">No runs.</p>')
    out.append('<h2 id="maps">Group maps</h2>')
    maps = [("mean_pearson_r", "mean test Pearson r", "RdBu_r", True),
            ("sd_pearson_r", "SD of test Pearson r", "magma_r", False),
            ("mean_time_to_peak_s", "mean time to peak (s)", "viridis", False),
            ("sd_time_to_peak_s", "SD of time to peak (s)", "magma_r", False)]
    shown = 0
    for column, label, cmap, symmetric in maps:
        values = report.parcel_values(column)
        if not np.isfinite(values).any():
            continue
        shown += 1
        out.append(f"<h3>{esc(label[0].upper() + label[1:])}</h3>")
        out.append(figure_block(figures.brain_markers_figure, values, report.centroids_mm,
                                title=label, cmap=cmap, symmetric=symmetric, alt=label,
                                caption=f"Per parcel, over the runs that contribute "
                                        f"({label})."))
    if not shown:
        out.append('<p class="none">No per-parcel group values.</p>')
    if len(report.parcels):
        out.append("<details><summary>Per-parcel group values</summary>"
                   f"{frame_table(report.parcels)}</details>")
    out.append('<h2 id="parameters">Parameters</h2>')
    out.append(mapping_table(report.parameters))
    if report.provenance:
        out.append("<h3>Provenance</h3>")
        out.append(mapping_table(report.provenance))
    out.append('<h2 id="warnings">Warnings</h2>')
    out.append(warnings_list(report.warnings))
    out.append("</section>")
    if methods:
        nav.append(("methods", "Methods"))
    body = "\n".join(out) + methods_block(methods)
    n_participants = (report.table["participant"].nunique() if "participant" in report.table
                      else 0)
    return page(title, body, nav=nav,
                subtitle=f"{n_participants} participants, {len(report.table)} runs")


def render_group_report(report: GroupReport, path, *, methods: str | None = None) -> Path:
    """Write the group's self-contained HTML report.

    Parameters
    ----------
    report : GroupReport
    path : str or Path
        Output file, e.g. ``<out>/group.html``; written atomically.
    methods : str, optional
        Methods boilerplate (plain text), shown escaped at the end.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    samba_bids.errors.CantCreateError
        If the output folder cannot be created.
    """
    text = group_report_html(report, methods=methods)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    logger.info("Wrote the group report %s (%d runs).", path, len(report.table))
    return path
