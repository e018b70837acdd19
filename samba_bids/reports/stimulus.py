"""The group report of stimulus pairing (``--pairing stimulus``): how the runs were paired,
each held-out segment's scores, the parcel maps, the decoding, and a methods paragraph.

One self-contained HTML file (``group/stimulus.html``), like the other reports.
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
    frame_table,
    mapping_table,
    methods_block,
    page,
    warnings_list,
)

logger = logging.getLogger(__name__)


@dataclass
class StimulusReport:
    """What the stimulus-pairing report shows.

    Attributes
    ----------
    pairing : DataFrame
        One row per run used: ``participant``, ``kind`` (EEG/MEG or BOLD), ``task``,
        ``run``, ``stimulus``, ``onset_s``, ``events_file``.
    left_out : list of (str, str)
        Runs left out and why.
    segments : DataFrame
        One row per held-out segment (the ``desc-stimulus_metrics.tsv`` table).
    parcels : DataFrame
        One row per BOLD parcel: ``parcel``, ``mean_pearson_r``, ``mean_ridge_pearson_r``,
        ``mean_isc``, ``time_to_peak_s`` (means over segments; the HRF of the final model).
    centroids_mm : ndarray, shape (M, 3)
    decoding : DataFrame or None
        :func:`~samba_bids.decoding.decoding_table` output.
    methods : str
    parameters, provenance : dict
    warnings : list of str
    """

    pairing: pd.DataFrame
    left_out: list
    segments: pd.DataFrame
    parcels: pd.DataFrame
    centroids_mm: np.ndarray
    decoding: pd.DataFrame | None = None
    methods: str = ""
    parameters: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)


def stimulus_methods_text(n_ephys: int, n_bold: int, n_segments: int, modality: str,
                          tr_s: float, features: str, event: str | None) -> str:
    """The methods paragraph of the stimulus pairing (plain text, citable wording)."""
    row = (f"the events row whose trial_type was '{event}'" if event
           else "the events row with a stim_file")
    pooled = ("averaged over the electrophysiology participants" if features == "average"
              else "kept per participant (one training run per participant and segment; the "
                   "prediction was the mean of the participants' predictions)")
    return (
        f"Electrophysiology ({modality.upper()}) of {n_ephys} participants and BOLD of "
        f"{n_bold} other participants were paired by the stimulus they were shown, as in "
        "SAMBA's MEG-to-fMRI experiments (Afrasiyabi et al., arXiv 2409.18462): each run's "
        f"stimulus and onset came from {row} of its events.tsv, and runs showing the same "
        f"stimulus of the same task formed one of {n_segments} segments. Stimulus time t of "
        "a recording (its clock minus the onset) met stimulus time t of a BOLD run (time "
        "since the start of its first volume minus the onset). Each BOLD run's parcel series "
        f"was linearly interpolated to a grid of {tr_s:g}-s steps sampled at k TR + TR/2 of "
        "stimulus time and z-scored; the target was the mean over the BOLD participants, "
        "z-scored again (the standard target of naturalistic imaging), and their "
        "leave-one-out inter-subject correlation (Nastase et al. 2019) and the ceiling it "
        "implies for the group mean (Spearman-Brown) are reported beside the scores. "
        f"Each recording was cut into {tr_s:g}-s segments from its stimulus onset; the "
        f"wavelet features were {pooled}. SAMBA and the canonical-HRF band-power ridge were "
        "cross-validated by segment: each segment was predicted, and scored on all its "
        "volumes, by models trained on the other segments (early stopping on the last block "
        "of each); scores are per-parcel Pearson r and, as the paper reports, Spearman rho "
        "pooled over parcels and time, on the whole segment and on 30-s and 60-s windows.")


def stimulus_report_html(report: StimulusReport) -> str:
    """The report as an HTML string (see :func:`render_stimulus_report`)."""
    nav = [("pairing", "Pairing"), ("segments", "Segments"), ("maps", "Maps"),
           ("decoding", "Decoding"), ("parameters", "Parameters"), ("warnings", "Warnings")]
    out = ['<section class="run">', '<h2 id="pairing">How the runs were paired</h2>',
           f"<p>{esc(report.methods.split('. ')[0])}.</p>", frame_table(report.pairing)]
    if report.left_out:
        left = pd.DataFrame(report.left_out, columns=["run", "left out because"])
        out.append(f"<h3>Left out</h3>{frame_table(left)}")
    out.append('<h2 id="segments">Held-out segments</h2>')
    out.append(frame_table(report.segments))
    out.append('<h2 id="maps">Parcel maps</h2>')
    for column, label, cmap, symmetric in (
            ("mean_pearson_r", "SAMBA r with the group BOLD, mean over segments", "RdBu_r",
             True),
            ("mean_isc", "inter-subject correlation of the BOLD, mean over segments",
             "RdBu_r", True),
            ("time_to_peak_s", "HRF time to peak (s), final model", "viridis", False)):
        if column not in report.parcels or not np.isfinite(report.parcels[column]).any():
            continue
        out.append(f"<h3>{esc(label[0].upper() + label[1:])}</h3>")
        out.append(figure_block(figures.brain_markers_figure,
                                report.parcels[column].to_numpy(float), report.centroids_mm,
                                title=label, cmap=cmap, symmetric=symmetric, alt=label))
    out.append("<details><summary>Per-parcel values</summary>"
               f"{frame_table(report.parcels)}</details>")
    out.append('<h2 id="decoding">Stimulus decoding</h2>')
    out.append(frame_table(report.decoding) if report.decoding is not None
               else '<p class="none">Not computed.</p>')
    out.append('<h2 id="parameters">Parameters</h2>')
    out.append(mapping_table(report.parameters))
    if report.provenance:
        out.append("<h3>Provenance</h3>")
        out.append(mapping_table(report.provenance))
    out.append('<h2 id="warnings">Warnings</h2>')
    out.append(warnings_list(report.warnings))
    out.append("</section>")
    nav.append(("methods", "Methods"))
    subtitle = (f"{report.pairing.loc[report.pairing['kind'] != 'BOLD', 'participant'].nunique()}"
                f" EEG/MEG and "
                f"{report.pairing.loc[report.pairing['kind'] == 'BOLD', 'participant'].nunique()}"
                f" BOLD participants, {len(report.segments)} segments")
    return page("samba-bids group report: stimulus pairing",
                "\n".join(out) + methods_block(report.methods), nav=nav, subtitle=subtitle)


def render_stimulus_report(report: StimulusReport, path) -> Path:
    """Write the report (self-contained HTML) atomically to ``path``.

    Raises
    ------
    samba_bids.errors.CantCreateError
        If the output folder cannot be created.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(stimulus_report_html(report), encoding="utf-8")
    logger.info("Wrote the stimulus-pairing report %s.", path)
    return path
