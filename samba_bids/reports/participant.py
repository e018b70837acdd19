"""The participant HTML report: one self-contained ``sub-<label>.html`` with a section per run.

The workflow fills one :class:`ParticipantReport` per paired run (EEG/MEG with observed BOLD)
from what it already holds and calls :func:`render_participant_report`. With a
:class:`ParticipantSummary` (one model trained across the participant's runs), the page opens
with a participant summary and ends with one section per :class:`EphysOnlyRun` (an EEG/MEG run
without observed BOLD, translated with that model). Figures come from
:mod:`samba_bids.reports.figures` and are inlined as base64 PNG; the page has no scripts and no
external resources.
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
    anchor,
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
class ParticipantReport:
    """What the participant report shows about one BOLD run.

    Attributes
    ----------
    label : str
        Run label, e.g. ``"sub-01_task-rest_run-1"``.
    tr_s : float
        Repetition time, in s.
    parcel_names : list of str, length M
        BOLD parcel names (Schaefer style ``"7Networks_LH_Vis_1"``; the network is the third
        ``_`` field).
    centroids_mm : ndarray, shape (M, 3)
        Parcel centroids, in MNI-like mm.
    observed, predicted : ndarray, shape (M, V)
        z-scored observed and SAMBA-predicted BOLD per parcel and volume.
    test_volumes, train_volumes, validation_volumes : ndarray of int
        0-based volume indices of the blocks.
    metrics : DataFrame
        One row per parcel: ``parcel``, ``pearson_r``, ``spearman_rho``, ``p_value``, ``p_fdr``,
        ``significant``, ``ridge_pearson_r``, ``ridge_spearman_rho`` (the ridge and p columns
        may be absent).
    hrf : DataFrame
        One row per parcel: ``parcel``, ``response_delay_s``, ``undershoot_delay_s``,
        ``response_dispersion_s``, ``undershoot_dispersion_s``, ``response_undershoot_ratio``,
        ``onset_s``, ``time_to_peak_s``.
    hrf_time_s : ndarray, shape (T,)
        Times of the sampled HRFs, in s.
    hrf_curves : ndarray, shape (M, T)
        Each parcel's learned HRF, normalised to peak 1.
    attention : ndarray, shape (N_src, n_bands) or None
        Mean learned wavelet attention per source parcel and band (rows sum to 1).
    band_names : list of str
        E.g. ``["A3", "D3", "D2", "D1"]``.
    band_ranges_hz : list of (float, float)
        Frequency range of each band, in Hz.
    history : DataFrame or None
        ``epoch``, ``train_loss``, ``val_loss``.
    best_epoch : int or None
        Epoch whose weights were kept.
    canonical_hrf : ndarray, shape (T,) or None
        Canonical HRF on ``hrf_time_s`` (peak 1), drawn dashed.
    comparison : DataFrame or None
        One row per model (``model``, ``median_pearson_r``, ``median_spearman_rho``,
        ``pooled_spearman``, ...).
    parameters : dict
        The resolved configuration (flat).
    provenance : dict
        Nested allowed: source reconstruction, atlases, input files.
    warnings : list of str
        Log warnings of the run.
    reverse : DataFrame, dict or None
        Reverse direction (BOLD -> band power): one row per source parcel and band with
        ``band`` and ``pearson_r`` (and ``significant``), or a dict of summary numbers.
    source_names : list of str or None
        Source (electrophysiology) parcel names, rows of ``attention``.
    mr_artifacts : samba_bids.ephys.artifacts.MRArtifactRemoval or None
        The MR artefacts removed from the EEG (with the quality control), or the test that
        found none; None for MEG.
    """

    label: str
    tr_s: float
    parcel_names: list
    centroids_mm: np.ndarray
    observed: np.ndarray
    predicted: np.ndarray
    test_volumes: np.ndarray
    metrics: pd.DataFrame
    hrf: pd.DataFrame | None = None
    hrf_time_s: np.ndarray | None = None
    hrf_curves: np.ndarray | None = None
    attention: np.ndarray | None = None
    band_names: list = field(default_factory=list)
    band_ranges_hz: list = field(default_factory=list)
    history: pd.DataFrame | None = None
    best_epoch: int | None = None
    train_volumes: np.ndarray = field(default_factory=lambda: np.array([], dtype=int))
    validation_volumes: np.ndarray = field(default_factory=lambda: np.array([], dtype=int))
    canonical_hrf: np.ndarray | None = None
    comparison: pd.DataFrame | None = None
    parameters: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    reverse: pd.DataFrame | dict | None = None
    source_names: list | None = None
    mr_artifacts: object = None

    def __post_init__(self):
        self.observed = np.asarray(self.observed, dtype=float)
        self.predicted = np.asarray(self.predicted, dtype=float)
        self.centroids_mm = np.asarray(self.centroids_mm, dtype=float)
        for name in ("test_volumes", "train_volumes", "validation_volumes"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=int).ravel())
        m = len(self.parcel_names)
        if self.observed.ndim != 2 or self.observed.shape[0] != m:
            raise ValueError(f"{self.label}: observed has shape {self.observed.shape}; expected "
                             f"({m}, V) for {m} parcel names.")
        if self.predicted.shape != self.observed.shape:
            raise ValueError(f"{self.label}: predicted has shape {self.predicted.shape}, "
                             f"observed {self.observed.shape}; they must match.")
        if self.centroids_mm.shape != (m, 3):
            raise ValueError(f"{self.label}: centroids_mm has shape {self.centroids_mm.shape}; "
                             f"expected ({m}, 3).")
        if self.tr_s <= 0:
            raise ValueError(f"{self.label}: tr_s must be positive; got {self.tr_s}.")

    def column(self, frame: pd.DataFrame | None, name: str) -> np.ndarray:
        """``frame[name]`` in ``parcel_names`` order (by the ``parcel`` column); NaN if absent."""
        out = np.full(len(self.parcel_names), np.nan)
        if frame is None or name not in frame.columns:
            return out
        if "parcel" in frame.columns:
            values = dict(zip(frame["parcel"].astype(str), frame[name]))
            return np.array([float(values.get(str(p), np.nan)) for p in self.parcel_names])
        if len(frame) == len(out):
            return frame[name].to_numpy(dtype=float)
        return out

    def test_r(self) -> np.ndarray:
        """SAMBA's test Pearson r per parcel: ``metrics.pearson_r``, else computed."""
        r = self.column(self.metrics, "pearson_r")
        if not np.isfinite(r).any():
            r = figures.parcel_test_r(self.observed, self.predicted, self.test_volumes)
        return r


@dataclass
class EphysOnlyRun:
    """An EEG/MEG run without observed BOLD, translated with a trained model.

    Attributes
    ----------
    label : str
        Run label, e.g. ``"sub-01_task-rest_run-4"``.
    predicted : ndarray, shape (M, V)
        Predicted BOLD per parcel and volume, in z units; NaN where no prediction exists (the
        first volumes, within the HRF support).
    tr_s : float
        Repetition time of the predicted volumes, in s.
    parcel_names : list of str, length M
        BOLD parcel names, rows of ``predicted``.
    provenance : dict
        Shown as a table (nested allowed), e.g. ``{"Model": "sub-01_desc-samba_model.pt",
        "Volume timing": "volume triggers 'Volume'"}``.
    """

    label: str
    predicted: np.ndarray
    tr_s: float
    parcel_names: list
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        self.predicted = np.asarray(self.predicted, dtype=float)
        m = len(self.parcel_names)
        if self.predicted.ndim != 2 or self.predicted.shape[0] != m:
            raise ValueError(f"{self.label}: predicted has shape {self.predicted.shape}; "
                             f"expected ({m}, V) for {m} parcel names.")
        if self.tr_s <= 0:
            raise ValueError(f"{self.label}: tr_s must be positive; got {self.tr_s}.")


@dataclass
class ParticipantSummary:
    """What the report shows above the per-run sections: one model across runs.

    Attributes
    ----------
    runs : DataFrame
        One row per paired run: ``run`` (label), ``cross_validation`` (e.g. ``"runs"`` or
        ``"blocks"``), ``trained_on`` (str), ``median_pearson_r`` and
        ``ridge_median_pearson_r`` (median over parcels of the test Pearson r of SAMBA and of
        the ridge baseline), ``n_test_volumes``. Shown as is; other columns are shown too.
    model : dict
        Shown as a table, e.g. ``{"Model file": ..., "Trained on": "3 runs",
        "Cross-validation": "by run", "Best epoch": 12}``.
    hrf : DataFrame or None
        The participant model's HRFs, one row per BOLD parcel: ``parcel`` and
        ``time_to_peak_s`` (in s; other columns may exist).
    centroids_mm : ndarray, shape (M, 3) or None
        BOLD parcel centroids, in MNI-like mm, in the order of the rows of ``hrf``.
    ephys_only : list of EphysOnlyRun
        EEG/MEG-only runs translated with the model; one section each after the paired runs.
    decoding : DataFrame or None
        Stimulus decoding from the held-out runs
        (:func:`~samba_bids.decoding.decoding_table`), when the runs' events name stimuli.
    """

    runs: pd.DataFrame
    model: dict
    hrf: pd.DataFrame | None = None
    centroids_mm: np.ndarray | None = None
    ephys_only: list = field(default_factory=list)
    decoding: pd.DataFrame | None = None

    def __post_init__(self):
        if self.centroids_mm is not None:
            self.centroids_mm = np.asarray(self.centroids_mm, dtype=float)


def _summary(report: ParticipantReport) -> str:
    r = report.test_r()
    ridge = report.column(report.metrics, "ridge_pearson_r")
    ttp = report.column(report.hrf, "time_to_peak_s")
    rows = [("Repetition time", f"{report.tr_s:g} s"),
            ("BOLD parcels", len(report.parcel_names)),
            ("Volumes (train / validation / test)",
             (f"{report.observed.shape[1]} ({report.train_volumes.size} / "
              f"{report.validation_volumes.size} / {report.test_volumes.size})")),
            ("Median test Pearson r, SAMBA", _median(r))]
    if np.isfinite(ridge).any():
        rows.append(("Median test Pearson r, ridge baseline", _median(ridge)))
    if "significant" in report.metrics.columns:
        tested = (np.isfinite(report.metrics["p_value"].to_numpy(dtype=float))
                  if "p_value" in report.metrics.columns else np.ones(len(report.metrics), bool))
        if tested.any():
            significant = report.metrics["significant"].to_numpy(dtype=bool) & tested
            share = f"{significant.sum() / tested.sum():.0%}"
            rows.append(("Parcels significant (FDR)",
                         f"{significant.sum()} of {tested.sum()} ({share})"))
    if np.isfinite(ttp).any():
        rows.append(("Median time to peak of the learned HRFs", f"{_median(ttp)} s"))
    if report.best_epoch is not None:
        rows.append(("Best epoch", report.best_epoch))
    rows.append(("Warnings", len(report.warnings)))
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(format_value(v))}</td></tr>"
                   for k, v in rows)
    return f'<table class="summary"><tbody>{body}</tbody></table>'


def _median(values) -> str:
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    return f"{np.median(finite):.3f}" if finite.size else "n/a"


def _reverse_section(report: ParticipantReport) -> str:
    reverse = report.reverse
    if reverse is None:
        return ""
    out = ["<h3>Reverse direction: BOLD to band power</h3>"]
    if isinstance(reverse, pd.DataFrame):
        out.append(figure_block(figures.reverse_figure, reverse, report.band_names or None,
                                report.band_ranges_hz or None, alt="reverse test r per band",
                                caption="Test Pearson r between predicted and observed "
                                        "log band power, per band over source parcels."))
        if {"band", "pearson_r"} <= set(reverse.columns):
            agg = {"median_pearson_r": ("pearson_r", "median"),
                   "n": ("pearson_r", "size")}
            if "significant" in reverse.columns:
                agg["fraction_significant"] = ("significant", "mean")
            table = (reverse.assign(band=reverse["band"].astype(str))
                     .groupby("band", sort=False).agg(**agg).reset_index())
            out.append(frame_table(table))
    else:
        out.append(mapping_table(dict(reverse)))
    return "".join(out)


def _mr_artifact_section(removal) -> str:
    """What was done about MR artefacts: the figure and the sidecar entry, or one line."""
    if removal is None:
        return ""
    entry = removal.to_sidecar()
    out = ["<h3>MR artefacts</h3>"]
    if not removal.steps:
        out.append(f'<p class="none">Nothing removed: {esc(removal.reason)}.</p>')
        if removal.detection is not None:
            out.append(f"<p>{esc(removal.detection.describe())}</p>")
        return "".join(out)
    from .artifact_figures import mr_artifact_figure

    out.append(figure_block(
        mr_artifact_figure, removal, alt=f"{removal.name} MR artefact removal",
        caption="Gradient artefact removal (average artefact subtraction): the spectrum over "
                "the middle 60 s of the scan before and after (median over channels; dotted: "
                "harmonics of the slice rate), and the average volume epoch of the channel "
                "with the largest artefact."))
    out.append(mapping_table(entry))
    return "".join(out)


def _run_section(report: ParticipantReport) -> str:
    aid = anchor(report.label)
    r = report.test_r()
    ridge = report.column(report.metrics, "ridge_pearson_r")
    out = [f'<section class="run" id="{esc(aid)}"><h2>{esc(report.label)}</h2>',
           "<h3>Summary</h3>", _summary(report), _mr_artifact_section(report.mr_artifacts)]

    out.append("<h3>Observed vs predicted BOLD on the test block</h3>")
    out.append(figure_block(
        figures.timeseries_figure, report.observed, report.predicted, report.parcel_names,
        report.test_volumes, report.tr_s, r=r, alt=f"{report.label} test time series",
        caption="Best, median and worst parcel by test Pearson r; the test block was never "
                "seen in training or early stopping."))
    if report.train_volumes.size or report.validation_volumes.size:
        best = figures.rank_parcels(r)["best"] if np.isfinite(r).any() else 0
        out.append(figure_block(
            figures.split_figure, report.observed[best], report.predicted[best], report.tr_s,
            train_volumes=report.train_volumes, validation_volumes=report.validation_volumes,
            test_volumes=report.test_volumes, parcel_name=report.parcel_names[best],
            alt=f"{report.label} blocked split",
            caption="The whole run of the best parcel with the contiguous train, validation "
                    "and test blocks; the unshaded gaps between blocks (at least the HRF "
                    "support) keep the blocks independent."))

    out.append("<h3>Test Pearson r on the brain</h3>")
    out.append(figure_block(figures.brain_markers_figure, r, report.centroids_mm,
                            title="test Pearson r", cmap="RdBu_r", symmetric=True,
                            alt=f"{report.label} test r map",
                            caption="Parcel centroids on a glass brain, coloured by SAMBA's "
                                    "test Pearson r."))
    out.append(figure_block(figures.r_histogram_figure, r,
                            ridge if np.isfinite(ridge).any() else None,
                            alt=f"{report.label} test r histogram",
                            caption="Per-parcel test Pearson r of SAMBA and, when fitted, the "
                                    "canonical-HRF band-power ridge baseline on the same split."))
    if report.comparison is not None and len(report.comparison):
        out.append("<h3>Comparison with baselines</h3>")
        out.append(frame_table(report.comparison))
    out.append("<details><summary>Per-parcel test metrics</summary>"
               f"{frame_table(report.metrics)}</details>")

    out.append("<h3>Hemodynamic response functions</h3>")
    if report.hrf_curves is not None and report.hrf_time_s is not None:
        ttp = report.column(report.hrf, "time_to_peak_s")
        out.append(figure_block(
            figures.hrf_network_figure, report.hrf_time_s, report.hrf_curves,
            report.parcel_names, canonical_hrf=report.canonical_hrf,
            time_to_peak_s=ttp if np.isfinite(ttp).any() else None,
            alt=f"{report.label} HRFs per network",
            caption="Learned double-gamma HRF of each BOLD parcel, median and interquartile "
                    "range per network; the canonical SPM HRF dashed."))
        if np.isfinite(ttp).any():
            out.append(figure_block(figures.brain_markers_figure, ttp, report.centroids_mm,
                                    title="time to peak (s)", cmap="viridis",
                                    alt=f"{report.label} time to peak map",
                                    caption="Time to peak of the learned HRFs, in s."))
    else:
        out.append('<p class="none">No learned HRFs for this run.</p>')
    if report.hrf is not None and len(report.hrf):
        out.append("<details><summary>Per-parcel HRF parameters</summary>"
                   f"{frame_table(report.hrf)}</details>")

    out.append("<h3>Wavelet attention</h3>")
    if report.attention is not None and np.size(report.attention):
        out.append(figure_block(
            figures.attention_figure, report.attention, report.band_names,
            report.band_ranges_hz or None, source_names=report.source_names,
            alt=f"{report.label} wavelet attention",
            caption="Learned attention over wavelet bands (softmax over bands), averaged over "
                    "windows; A is the approximation, D the details."))
    else:
        out.append('<p class="none">No attention weights (the model had no wavelet '
                   "attention).</p>")

    out.append("<h3>Training</h3>")
    if report.history is not None and len(report.history):
        out.append(figure_block(figures.loss_figure, report.history, report.best_epoch,
                                alt=f"{report.label} loss curves",
                                caption="Loss per epoch; the weights of the best validation "
                                        "epoch were kept."))
    else:
        out.append('<p class="none">No training history.</p>')

    out.append(_reverse_section(report))
    out.append("<h3>Parameters</h3>")
    out.append(mapping_table(report.parameters))
    out.append("<h3>Provenance</h3>")
    out.append(mapping_table(report.provenance))
    out.append("<h3>Warnings</h3>")
    out.append(warnings_list(report.warnings))
    out.append("</section>")
    return "\n".join(out)


SUMMARY_ID = "participant-summary"


def _participant_summary_section(summary: ParticipantSummary) -> str:
    out = [f'<section class="run" id="{SUMMARY_ID}"><h2>Participant summary</h2>',
           "<h3>Model</h3>", mapping_table(summary.model),
           "<h3>Paired runs</h3>"]
    runs = summary.runs
    if runs is None or not len(runs):
        out.append('<p class="none">No paired runs (EEG/MEG with observed BOLD) were '
                   "evaluated.</p>")
    else:
        out.append(frame_table(runs))
        out.append(figure_block(
            figures.run_r_figure, runs, alt="median test r per run",
            caption="Median over parcels of the test Pearson r per paired run, for SAMBA and, "
                    "when fitted, the canonical-HRF band-power ridge baseline."))
    if summary.hrf is not None and len(summary.hrf):
        out.append("<h3>Hemodynamic response functions of the participant model</h3>")
        ttp = (summary.hrf["time_to_peak_s"].to_numpy(dtype=float)
               if "time_to_peak_s" in summary.hrf.columns else np.array([]))
        if summary.centroids_mm is not None and np.isfinite(ttp).any():
            out.append(figure_block(figures.brain_markers_figure, ttp, summary.centroids_mm,
                                    title="time to peak (s)", cmap="viridis",
                                    alt="participant model time to peak map",
                                    caption="Time to peak of the HRFs of the participant's "
                                            "model (trained across runs), in s."))
        out.append("<details><summary>Per-parcel HRF parameters of the participant model"
                   f"</summary>{frame_table(summary.hrf)}</details>")
    if summary.decoding is not None:
        out.append("<h3>Stimulus decoding</h3>")
        out.append('<p>Which stimulus (named in the runs\' events.tsv) does a window of a '
                   "held-out run show? A linear classifier trained on the other runs' windows, "
                   "from SAMBA's latent drive, the band power, the ridge prediction and the "
                   "observed BOLD; accuracy with its 95% Clopper-Pearson interval, the chance "
                   "level and a permutation p-value.</p>")
        out.append(frame_table(summary.decoding))
    out.append("</section>")
    return "\n".join(out)


def _ephys_only_section(run: EphysOnlyRun) -> str:
    n_volumes = run.predicted.shape[1]
    rows = {"Repetition time": f"{run.tr_s:g} s", "BOLD parcels": len(run.parcel_names),
            "Volumes predicted": n_volumes}
    out = [f'<section class="run" id="{esc(anchor(run.label))}">',
           f"<h2>{esc(run.label)} (no observed BOLD)</h2>",
           ("<p>No BOLD was recorded for this run: the BOLD shown is predicted from its EEG/MEG "
            "by the participant's model (trained on the paired runs), so it cannot be scored "
            "here.</p>"),
           "<h3>Summary</h3>", mapping_table(rows),
           "<h3>Provenance</h3>", mapping_table(run.provenance),
           "<h3>Predicted BOLD</h3>"]
    if n_volumes and len(run.parcel_names):
        out.append(figure_block(
            figures.predicted_timeseries_figure, run.predicted, run.parcel_names, run.tr_s,
            alt=f"{run.label} predicted time series",
            caption="Predicted BOLD over the whole run for the first, middle and last parcel; "
                    "gaps are volumes without a prediction."))
    else:
        out.append('<p class="none">No predicted volumes.</p>')
    out.append("</section>")
    return "\n".join(out)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def participant_report_html(reports: list[ParticipantReport], *, subject: str,
                            title: str | None = None, methods: str | None = None,
                            summary: ParticipantSummary | None = None) -> str:
    """The participant report as an HTML string (see :func:`render_participant_report`)."""
    subject = str(subject)
    subject = subject if subject.startswith("sub-") else f"sub-{subject}"
    title = title or f"samba-bids report: {subject}"
    ephys_only = list(summary.ephys_only) if summary is not None else []
    nav = [(SUMMARY_ID, "Summary")] if summary is not None else []
    nav += [(anchor(r.label), r.label) for r in reports]
    nav += [(anchor(e.label), f"{e.label} (no BOLD)") for e in ephys_only]
    if methods:
        nav.append(("methods", "Methods"))
    body = [_participant_summary_section(summary)] if summary is not None else []
    if reports:
        body.extend(_run_section(r) for r in reports)
    elif summary is None:
        body.append('<p class="none">No runs of this participant were translated.</p>')
    else:
        body.append('<p class="none">No paired runs (EEG/MEG with observed BOLD) of this '
                    "participant were evaluated.</p>")
    body.extend(_ephys_only_section(e) for e in ephys_only)
    body = "\n".join(body) + methods_block(methods)
    if summary is None:
        subtitle = _count(len(reports), "run")
    else:
        subtitle = (f"{_count(len(reports), 'paired run')}, "
                    f"{_count(len(ephys_only), 'EEG/MEG-only run')}")
    return page(title, body, nav=nav, subtitle=subtitle)


def render_participant_report(reports: list[ParticipantReport], path, *, subject: str,
                              title: str | None = None, methods: str | None = None,
                              summary: ParticipantSummary | None = None) -> Path:
    """Write the participant's self-contained HTML report, one section per run.

    Parameters
    ----------
    reports : list of ParticipantReport
        One per paired run (EEG/MEG with observed BOLD), in the order shown. May be empty (the
        page says so).
    path : str or Path
        Output file, e.g. ``<out>/sub-01.html``; written atomically.
    subject : str
        Participant label, with or without ``sub-``.
    title : str, optional
        Page title; ``"samba-bids report: sub-<label>"`` by default.
    methods : str, optional
        Methods boilerplate (plain text), shown escaped at the end.
    summary : ParticipantSummary, optional
        One model trained across the participant's runs: a "Participant summary" section
        (model table, run table, median test r per run, the model's time-to-peak map) comes
        first, and each of its ``ephys_only`` runs gets a section after the paired runs. None
        gives the page with the per-run sections only.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    samba_bids.errors.CantCreateError
        If the output folder cannot be created.

    Notes
    -----
    A figure that fails is logged as a warning and replaced by a note in the page; the report
    is still written.
    """
    text = participant_report_html(reports, subject=subject, title=title, methods=methods,
                                   summary=summary)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    if summary is None:
        logger.info("Wrote the participant report %s (%d runs).", path, len(reports))
    else:
        logger.info("Wrote the participant report %s (%d paired runs, %d EEG/MEG-only runs).",
                    path, len(reports), len(summary.ephys_only))
    return path
