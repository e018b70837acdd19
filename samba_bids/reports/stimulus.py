"""The group report of stimulus pairing (``--pairing stimulus``): how the runs were paired,
each held-out segment's scores, the parcel maps, the decoding, and a methods paragraph; and
its methods boilerplate.

One self-contained HTML file (``group_task-<task>_pairing-stimulus.html``), like the other
reports. The methods are the templates ``boilerplate/stimulus.md`` and, when the decoding
ran, ``stimulus_decoding.md`` filled from one :class:`StimulusMethods`
(:func:`stimulus_values`): rendered with their references into
``logs/CITATION_pairing-stimulus.{md,bib,html}`` (:func:`render_stimulus_boilerplate`, the
machinery of :mod:`samba_bids.reports.boilerplate`) and, as plain text, into the report's
methods paragraph (:func:`stimulus_methods_text`), so that both say the same.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..bids.derivatives import atomic_path
from . import figures
from .boilerplate import (
    bids_extension_cite,
    inverse_phrase,
    package_versions,
    render_sections,
    section_text,
    write_boilerplate,
)
from .page import (
    esc,
    figure_block,
    frame_table,
    mapping_table,
    methods_block,
    page,
    warnings_list,
)
from .phrases import count_text, number_text

logger = logging.getLogger(__name__)

#: Templates of the stimulus pairing's boilerplate, in order: (file, when it is rendered).
STIMULUS_SECTIONS = (
    ("stimulus.md", "always"),
    ("stimulus_decoding.md", "decoding"),
    ("copyright.md", "always"),
)
#: Name (without extension) of its files in ``logs/``.
STIMULUS_CITATION_STEM = "CITATION_pairing-stimulus"
#: What each decoded feature set is, in the text (the keys of the decoding table).
DECODING_SET_PHRASES = {
    "samba_latent": "SAMBA's neural drive of each BOLD parcel before the HRF (predicted by the "
                    "models that had not trained on the segment)",
    "band_power": "the log band power of each source parcel and band",
    "ridge_prediction": "the ridge baseline's held-out prediction",
    "observed_bold": "the BOLD participants' own z-scored parcel BOLD",
}


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


@dataclass
class StimulusMethods:
    """What the stimulus group level did, for its methods text (:func:`stimulus_values`).

    Filled by :func:`samba_bids.workflows.stimulus_outputs.stimulus_methods` from the run's result.

    Attributes
    ----------
    config : samba_bids.config.Config
        The group level's settings (``stimulus_event``, ``stimulus_features``,
        ``inverse_method``, atlas scales, ``wavelet``, ``wavelet_level``).
    n_ephys, n_bold : int
        EEG/MEG participants and (other) BOLD participants paired.
    n_segments : int
        Stimulus segments (each held out once).
    modality : str
        ``"eeg"`` or ``"meg"``.
    tr_s : float
        Repetition time of the BOLD, s: the step of the stimulus-time grid.
    spearman_windows_s : tuple of float
        Windows of the pooled Spearman besides the whole segment, s (e.g. ``(30.0, 60.0)``).
    decoding_sets : tuple of str
        Feature sets decoded (keys of :data:`DECODING_SET_PHRASES`, in table order); empty when
        the decoding was not computed.
    decoding_window_s : float
        Length of a decoded window, s.
    decoding_permutations : int
        Permutations of the decoding's null.
    decoding_permutation : str
        ``"blocks"`` (labels of contiguous blocks shuffled within each participant) or
        ``"groups"`` (labels shuffled across participants).
    decoding_confidence : float
        Level of the Clopper-Pearson interval, in (0, 1).

    Raises
    ------
    ValueError
        If ``modality``, ``tr_s``, ``decoding_permutation`` or a decoding set is invalid.
    """

    config: object
    n_ephys: int
    n_bold: int
    n_segments: int
    modality: str
    tr_s: float
    spearman_windows_s: tuple = ()
    decoding_sets: tuple = ()
    decoding_window_s: float = 30.0
    decoding_permutations: int = 0
    decoding_permutation: str = "blocks"
    decoding_confidence: float = 0.95

    def __post_init__(self):
        if self.modality not in ("eeg", "meg"):
            raise ValueError(f"modality must be 'eeg' or 'meg'; got {self.modality!r}.")
        if not self.tr_s > 0:
            raise ValueError(f"tr_s must be positive; got {self.tr_s!r}.")
        if self.decoding_permutation not in ("blocks", "groups"):
            raise ValueError("decoding_permutation must be 'blocks' or 'groups'; got "
                             f"{self.decoding_permutation!r}.")
        unknown = set(self.decoding_sets) - set(DECODING_SET_PHRASES)
        if unknown:
            raise ValueError(f"unknown decoding feature sets {sorted(unknown)}; one of "
                             f"{sorted(DECODING_SET_PHRASES)}.")


def _and_list(items) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def stimulus_sections(methods: StimulusMethods) -> tuple:
    """The templates of ``methods``' boilerplate, in order (:data:`STIMULUS_SECTIONS`): the
    decoding's only when it was computed."""
    return tuple(name for name, when in STIMULUS_SECTIONS
                 if when == "always" or (when == "decoding" and methods.decoding_sets))


def stimulus_values(methods: StimulusMethods) -> dict:
    """The placeholder values of the templates of :data:`STIMULUS_SECTIONS` (strings).

    Parameters
    ----------
    methods : StimulusMethods

    Returns
    -------
    dict of str to str
        The package versions (``version_<name>``) and the values of the stimulus sections.
    """
    cfg = methods.config
    eeg = methods.modality == "eeg"
    windows = [f"{number_text(w)} s" for w in methods.spearman_windows_s]
    values = {f"version_{name}": v for name, v in package_versions().items()}
    values.update(
        modality_name="electroencephalography" if eeg else "magnetoencephalography",
        modality_upper=methods.modality.upper(),
        bids_extension_cite=bids_extension_cite(methods.modality),
        n_ephys=count_text(methods.n_ephys),
        n_bold=count_text(methods.n_bold),
        n_segments=count_text(methods.n_segments),
        tr_s=number_text(methods.tr_s),
        event_phrase=(f"the row whose `trial_type` was `{cfg.stimulus_event}`"
                      if cfg.stimulus_event else "the row with a `stim_file`"),
        inverse_phrase=inverse_phrase(cfg.inverse_method),
        n_source_parcels=str(cfg.ephys_atlas_scale),
        n_bold_parcels=str(cfg.bold_atlas_scale),
        wavelet=cfg.wavelet,
        n_bands=str(cfg.wavelet_level + 1),
        features_phrase=(
            f"averaged over the {count_text(methods.n_ephys)} electrophysiology participants"
            if cfg.stimulus_features == "average" else
            "kept per participant (one training run per participant and segment; the "
            "prediction was the mean of the participants' predictions)"),
        spearman_windows_phrase=(
            f" and within consecutive windows of {_and_list(windows)} (whole volumes), "
            "averaged over the windows" if windows else ""),
        decoding_sets=_and_list([DECODING_SET_PHRASES[s] for s in methods.decoding_sets]
                                or ["no feature set"]),
        decoding_window_s=number_text(methods.decoding_window_s),
        decoding_window_volumes=str(max(1, int(round(methods.decoding_window_s
                                                     / methods.tr_s)))),
        decoding_confidence=number_text(100 * methods.decoding_confidence),
        n_permutations=count_text(methods.decoding_permutations),
        permuted_units=("the segment labels of whole blocks of consecutive windows within each "
                        "participant, keeping the dependence between neighbouring windows"
                        if methods.decoding_permutation == "blocks" else
                        "the participants' segment labels across participants"),
    )
    return values


def render_stimulus_boilerplate(methods: StimulusMethods, logs_dir, *,
                                boilerplate_dir=None) -> list:
    """Write ``CITATION_pairing-stimulus.md``, ``.bib`` and ``.html`` into ``logs_dir``.

    The stimulus sections, the decoding's when it was computed, and the copyright waiver
    (:func:`stimulus_sections`) rendered as the participant level's ``CITATION.*`` are
    (:func:`~samba_bids.reports.boilerplate.render_sections`,
    :func:`~samba_bids.reports.boilerplate.write_boilerplate`).

    Parameters
    ----------
    methods : StimulusMethods
        What the group level did.
    logs_dir : path-like
        Usually ``<output_dir>/logs``; created if needed, files replaced atomically.
    boilerplate_dir : path-like | None
        Templates folder; default
        :func:`~samba_bids.reports.boilerplate.find_boilerplate_dir`.

    Returns
    -------
    list of pathlib.Path
        The three files, in the order md, bib, html.

    Raises
    ------
    NoInputError
        If the templates are not found.
    ValueError
        If a template cites a key that ``references.bib`` lacks, or has an unknown
        placeholder.
    samba_bids.errors.CantCreateError
        If ``logs_dir`` cannot be created.
    """
    rendered = render_sections(stimulus_sections(methods), stimulus_values(methods),
                               stem=STIMULUS_CITATION_STEM, boilerplate_dir=boilerplate_dir)
    return write_boilerplate(rendered, logs_dir, stem=STIMULUS_CITATION_STEM)


def stimulus_methods_text(methods: StimulusMethods, *, boilerplate_dir=None) -> str:
    """The report's methods paragraphs: the boilerplate's sections as plain text.

    The same templates and values as ``logs/CITATION_pairing-stimulus.md``
    (:func:`~samba_bids.reports.boilerplate.section_text`): citations as author-year labels,
    no headings, no copyright waiver.

    Raises
    ------
    NoInputError, ValueError
        As :func:`render_stimulus_boilerplate`.
    """
    names = [name for name in stimulus_sections(methods) if name != "copyright.md"]
    return section_text(names, stimulus_values(methods), boilerplate_dir=boilerplate_dir)


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
