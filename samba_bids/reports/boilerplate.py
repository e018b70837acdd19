"""Methods boilerplate: ``logs/CITATION.md``, ``.bib`` and ``.html`` of a run (as fMRIPrep's).

The text says what this run actually did: its settings (:class:`~samba_bids.config.Config`),
the source-reconstruction provenance, the split, the BOLD space and atlases, the fitted model
sizes and epochs, the device and the package versions (read when rendering). Everything a
workflow knows about a run goes into one :class:`~samba_bids.reports.methods.MethodsContext`
(:func:`~samba_bids.reports.methods.methods_context` fills it from the workflow's objects);
:func:`template_values` turns it into the templates' values, one function per section, and
:func:`render_boilerplate` writes the three files.

Templates are plain Markdown files in the top-level ``boilerplate/`` folder, one per section,
with ``$placeholders`` filled by :class:`string.Template` and citations in Pandoc's syntax
(``[@key]`` or ``[@key1; @key2]``) whose keys are entries of ``boilerplate/references.bib``.
Sentences that depend on the run (the inverse method, the head model, the confounds, the
ablations) are filled in here; their citations travel with them, so a reference is cited, and
copied into ``CITATION.bib``, only when the run used it. The folder is found by
:func:`find_boilerplate_dir`; the bibliography is read and formatted by
:mod:`samba_bids.reports.bibliography`, the wording of values by
:mod:`samba_bids.reports.phrases`.

``CITATION.md`` keeps the Pandoc citations (``pandoc --citeproc --bibliography CITATION.bib
CITATION.md``) and ends with a formatted reference list; ``CITATION.html`` is the same text
converted with the ``markdown`` package, the citations as author-year links to its reference
list.

The machinery is not the participant level's alone: :func:`render_sections` renders any list
of templates with their values and :func:`write_boilerplate` writes them under another name;
the group level of ``--pairing stimulus`` writes ``logs/CITATION_pairing-stimulus.*`` from
``stimulus.md`` this way (:mod:`samba_bids.reports.stimulus`), and :func:`section_text` gives
a template as plain text for a report's methods paragraph.

At about 940 lines this module is over the others: every sentence that cites a reference
outside the templates lives here (the MR artefact sentence among them), where the test that
checks each reference is citable reads them, beside the section functions that use them; so do
the sentences that describe how a participant's runs were split and cross-validated (forward
and reverse), which read the same context as those section functions.
"""

from __future__ import annotations

import html
import logging
import os
import re
import site
import string
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import NoInputError
from .bibliography import (
    CITATION,
    BibEntry,
    citation_labels,
    cited_keys,
    format_references,
    latex_to_text,
    link_citations,
    parse_bibtex,
    read_bibtex,
    with_version_note,
)
from .methods import PACKAGES, MethodsContext, methods_context, package_versions
from .phrases import (
    alignment_sentence,
    band_list,
    code_list,
    confound_sentence,
    count_text,
    device_phrase,
    fallback_atlas,
    filter_phrase,
    fit_sentence,
    head_model_phrase,
    noise_cov_phrase,
    number_text,
    provenance_text,
    resample_clause,
    space_kind,
)

__all__ = [
    "CITATION_STEM", "INVERSE_METHODS", "PACKAGES", "SECTIONS", "SECTION_VALUES",
    "VERSIONED_REFERENCES", "BibEntry", "Boilerplate", "MethodsContext",
    "boilerplate_candidates", "citation_labels", "cited_keys", "find_boilerplate_dir",
    "latex_to_text", "methods_context", "package_versions", "parse_bibtex", "read_references",
    "bids_extension_cite", "inverse_phrase", "render", "render_boilerplate",
    "render_sections", "section_text", "template_values", "write_boilerplate",
]

logger = logging.getLogger(__name__)

#: Environment variable naming a boilerplate folder (checked first).
BOILERPLATE_ENV = "SAMBA_BOILERPLATE"
#: Where ``setup.cfg`` installs the templates, relative to an installation prefix.
SHARE_SUBDIR = Path("share") / "samba-bids" / "boilerplate"
#: The bibliography every template cites from.
REFERENCES_FILE = "references.bib"
#: Name (without extension) of the participant level's boilerplate files in ``logs/``.
CITATION_STEM = "CITATION"

#: Sections in order: (template file, when it is rendered).
SECTIONS = (
    ("data.md", "always"),
    ("ephys_preprocessing.md", "always"),
    ("source_reconstruction.md", "always"),
    ("bold.md", "always"),
    ("alignment.md", "always"),
    ("features.md", "always"),
    ("model.md", "forward"),
    ("training.md", "always"),
    ("evaluation.md", "forward"),
    ("reverse.md", "reverse"),
    ("copyright.md", "always"),
)

#: Software entries of references.bib cited by concept DOI: the installed version is noted.
VERSIONED_REFERENCES = {"nilearn": "nilearn", "nibabel": "nibabel"}

#: Inverse methods: (description, citation).
INVERSE_METHODS = {
    "dSPM": ("dynamic statistical parametric mapping (dSPM)", "dale2000dspm"),
    "sLORETA": ("standardized low-resolution electromagnetic tomography (sLORETA)",
                "pascualmarqui2002sloreta"),
    "eLORETA": ("exact low-resolution electromagnetic tomography (eLORETA)",
                "pascualmarqui2007eloreta"),
    "MNE": ("the L2 minimum-norm estimate (MNE)", "hamalainen1994mne"),
}


# --------------------------------------------------------------------------------------------
# Templates folder


def boilerplate_candidates() -> list[Path]:
    """Folders searched for the templates, in order.

    ``$SAMBA_BOILERPLATE``; the repository's ``boilerplate/`` beside the package (source
    checkout or editable install); ``<sys.prefix>/share/samba-bids/boilerplate`` (where
    ``setup.cfg``'s ``data_files`` put them in a regular install, e.g. the Docker image);
    ``<user base>/share/samba-bids/boilerplate`` (``pip install --user``).
    """
    candidates = []
    if os.environ.get(BOILERPLATE_ENV):
        candidates.append(Path(os.environ[BOILERPLATE_ENV]).expanduser())
    candidates.append(Path(__file__).resolve().parents[2] / "boilerplate")
    candidates.append(Path(sys.prefix) / SHARE_SUBDIR)
    try:
        user_base = site.getuserbase()
    except Exception:  # pragma: no cover - site without a user base
        user_base = None
    if user_base:
        candidates.append(Path(user_base) / SHARE_SUBDIR)
    return candidates


def find_boilerplate_dir(boilerplate_dir=None) -> Path:
    """The folder holding the boilerplate templates and ``references.bib``.

    Parameters
    ----------
    boilerplate_dir : path-like | None
        A folder to use instead of searching (:func:`boilerplate_candidates`).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    NoInputError
        If no candidate holds ``references.bib``; the message names every place looked in.
    """
    candidates = ([Path(boilerplate_dir).expanduser()] if boilerplate_dir is not None
                  else boilerplate_candidates())
    for candidate in candidates:
        if (candidate / REFERENCES_FILE).is_file():
            return candidate
        if boilerplate_dir is None and os.environ.get(BOILERPLATE_ENV) and \
                candidate == candidates[0]:
            logger.warning("$%s=%s holds no %s; looking elsewhere.", BOILERPLATE_ENV,
                           candidate, REFERENCES_FILE)
    raise NoInputError(
        "The methods boilerplate templates were not found (looked for "
        f"{REFERENCES_FILE} in: {', '.join(map(str, candidates))}). Reinstall samba-bids "
        f"(they are installed into <prefix>/{SHARE_SUBDIR.as_posix()}) or set "
        f"{BOILERPLATE_ENV} to the 'boilerplate' folder of the samba-bids sources."
    )


def read_references(boilerplate_dir=None) -> dict:
    """Entries of ``references.bib`` in the boilerplate folder (:func:`parse_bibtex`)."""
    return read_bibtex(find_boilerplate_dir(boilerplate_dir) / REFERENCES_FILE)


# --------------------------------------------------------------------------------------------
# Values of the placeholders, one function per section


def _schaefer(where: str) -> str:
    return f"the Schaefer 2018 atlas (7 networks) [@schaefer2018parcellation] {where}"


def _hrf_phrase(learn_hrf: bool) -> str:
    from ..model.hrf import HRF_PARAMETERS

    if not learn_hrf:
        return ("the HRF of every BOLD parcel was fixed at SPM's canonical double-gamma HRF "
                "[@friston1998event] (ablation without HRF learning).")
    words = {
        "response_delay_s": ("response delay", " s"),
        "undershoot_delay_s": ("undershoot delay", " s"),
        "response_dispersion_s": ("response dispersion", " s"),
        "undershoot_dispersion_s": ("undershoot dispersion", " s"),
        "response_undershoot_ratio": ("response-to-undershoot ratio", ""),
        "onset_s": ("onset", " s"),
    }
    items = []
    for name, init, low, high in HRF_PARAMETERS:
        label, unit = words.get(name, (name.replace("_", " "), ""))
        items.append(f"{label} {number_text(init)}{unit} (range {number_text(low)} to "
                     f"{number_text(high)}{unit})")
    listed = ", ".join(items[:-1]) + " and " + items[-1]
    return ("each BOLD parcel had its own double-gamma HRF in SPM's parametrisation "
            f"[@friston1998event] with {len(HRF_PARAMETERS)} trainable parameters, each kept "
            "within a physiological range [@handwerker2004variation] by a sigmoid and "
            f"initialised at SPM's canonical HRF: {listed}.")


def _ephys_sfreq(context: MethodsContext) -> float:
    """Rate of the source-parcel time courses, Hz."""
    return float(context.ephys_sfreq_hz or context.config.resample_sfreq_hz)


def bids_extension_cite(modality: str) -> str:
    """The citation key of the BIDS extension of ``modality`` (``"eeg"`` or ``"meg"``)."""
    return "@pernet2019eegbids" if modality == "eeg" else "@niso2018megbids"


def inverse_phrase(method: str) -> str:
    """The inverse method as the text names it, with its citation (:data:`INVERSE_METHODS`)."""
    description, key = INVERSE_METHODS.get(method, (str(method), None))
    return description + (f" [@{key}]" if key else "")


def data_values(context: MethodsContext) -> dict:
    """``data.md``: the modality, its BIDS extension, the direction, the run."""
    eeg = context.modality == "eeg"
    return dict(
        modality_name="electroencephalography" if eeg else "magnetoencephalography",
        modality_upper=context.modality.upper(),
        bids_extension_cite=bids_extension_cite(context.modality),
        direction_sentence={
            "ephys-to-bold": "The translation ran from electrophysiology to BOLD.",
            "bold-to-ephys": ("Only the reverse translation was run, from BOLD to "
                              "electrophysiology band power."),
            "both": ("Both directions were run: electrophysiology to BOLD, and BOLD to "
                     "electrophysiology band power."),
        }[context.direction],
        run_sentence=(f" The run-specific values below are those of `{context.run_label}`."
                      if context.run_label else ""),
    )


def ephys_values(context: MethodsContext) -> dict:
    """``ephys_preprocessing.md``: channels, filter, resampling, reference, artefacts."""
    cfg = context.config
    eeg = context.modality == "eeg"
    highpass = context.highpass_hz if context.highpass_hz is not None else cfg.l_freq_hz
    lowpass = context.lowpass_hz if context.lowpass_hz is not None else cfg.h_freq_hz
    return dict(
        sfreq_clause=(f" (sampled at {number_text(context.sfreq_hz)} Hz)"
                      if context.sfreq_hz else ""),
        positions_clause=", electrode positions" if eeg else "",
        channel_kind=("EEG channels" if eeg else
                      "MEG channels (magnetometers and gradiometers, reference sensors "
                      "excluded)"),
        n_channels_clause=(f" ({count_text(context.n_channels)} channels)"
                           if context.n_channels else ""),
        filter_phrase=filter_phrase(highpass, lowpass, cfg.h_freq_hz),
        resample_clause=resample_clause(context.sfreq_hz, _ephys_sfreq(context)),
        reference_sentence=("An average-reference projector was added; the inverse operator "
                            "applies it." if eeg else ""),
        artefact_sentence=mr_artifact_sentence(context.mr_artifacts) if eeg else "",
    )


def mr_artifact_sentence(entry) -> str:
    """What was done about MR artefacts (the ``MRArtifacts`` sidecar entry of the run).

    Parameters
    ----------
    entry : dict | None
        :meth:`samba_bids.ephys.MRArtifactRemoval.to_sidecar` (None: not recorded).

    Returns
    -------
    str
        Sentences citing Allen et al. (2000) for the gradient artefact's removal and Niazy et
        al. (2005) for the pulse artefact's, when they were removed.
    """
    if not entry or (not entry.get("Removed") and "not tested" in entry.get("Reason", "")):
        return ("samba-bids applied no MR gradient or ballistocardiogram artefact correction: "
                "the recording was used as stored in the dataset.")
    if not entry["Removed"]:
        if "derivatives" in entry.get("Reason", ""):
            return ("The recording was read from a derivatives folder of cleaned EEG, so "
                    "samba-bids removed no MR artefact from it.")
        locked = entry.get("VolumeLockedPowerShare")
        test = (f"{100 * locked:.1f} % of the power repeated with the volume markers "
                f"`{entry['VolumeTrigger']}`" if locked is not None else
                f"{100 * entry['SpectralLinePowerShare']:.1f} % of the power lay in spectral "
                "lines above 20 Hz")
        return (f"samba-bids tested the recording for the MR gradient artefact ({test}, below "
                "the detection threshold) and found none, so it removed no MR gradient or "
                "ballistocardiogram artefact.")
    window = entry["AASWindow"]
    residual = entry["ResidualGradientPowerDb"]["SliceHarmonics"]
    text = (f"The MR gradient artefact was removed by average artefact subtraction "
            f"[@allen2000gradient] with MNE-Python's `remove_fmri_gradient_artifact`, on the "
            f"raw data at {number_text(entry['SamplingFrequency'])} Hz before filtering, "
            f"anchored on the {count_text(entry['VolumeTriggers'])} `{entry['VolumeTrigger']}` "
            f"volume markers: each volume's template was the average of the {window[0]} "
            f"volumes before and the {window[1]} after it (for the first and last volumes, of "
            f"the {sum(window)} volumes after or before them)"
            + ("; each volume's template was delayed by the sub-sample shift of its artefact "
               "relative to its marker (to first order, with shifts estimated by least squares "
               "on up to four channels low-passed at 250 Hz)" if entry.get("VolumeShiftSamples")
               else "") + ".")
    if residual is not None:
        text += (f" The power at the harmonics of the slice rate "
                 f"({number_text(entry['SliceRepetitionFrequency'])} Hz) fell by "
                 f"{number_text(round(-residual, 1))} dB (median over channels).")
    if "pulse" in entry["Removed"]:
        text += (f" The pulse (ballistocardiogram) artefact was then removed with the optimal "
                 f"basis set method [@niazy2005obs] (MNE-Python's `apply_pca_obs`, with "
                 f"the mean artefact and, per channel, the principal components that parallel "
                 f"analysis [@horn1965parallel] of the heartbeat-locked epochs against epochs "
                 f"at random times kept, at most {entry['PCAOBSComponents']['Maximum']}: "
                 f"{_component_counts(entry['PCAOBSComponents']['Channels'])}) on the "
                 f"gradient-corrected, band-passed data before resampling, with epochs "
                 f"centred {number_text(entry['PulseDelay'])} s after each of "
                 f"{count_text(entry['Heartbeats'])} R-peaks (the peak of the "
                 f"heartbeat-locked average of the EEG; "
                 f"{number_text(entry['HeartRate'])} beats per minute) that MNE-Python's "
                 f"`find_ecg_events` detected in the gradient-corrected ECG channel "
                 f"`{entry['ECGChannel']}`, in {count_text(entry['PCAOBSPasses'])} passes: "
                 "each pass after the first recomputed the gradient templates without the "
                 "pulse artefact that the previous pass estimated, so that the pulse artefact "
                 "averaged into the templates was not left in the data.")
    else:
        text += (" The pulse (ballistocardiogram) artefact was not removed "
                 f"({entry.get('PulseNotRemoved', 'no ECG channel')}).")
    return text


def _component_counts(channels: dict) -> str:
    """``{"0": 60, "1": 4}`` -> ``0 in 60 channels and 1 in 4``."""
    parts = [f"{n} in {count_text(c)} channel{'s' if c != 1 else ''}"
             for n, c in sorted(channels.items(), key=lambda item: int(item[0]))]
    if len(parts) < 2:
        return parts[0] if parts else "no channel counted"
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def source_values(context: MethodsContext) -> dict:
    """``source_reconstruction.md``: source space, head model, inverse, parcels."""
    cfg = context.config
    prov = context.provenance
    n_src = int(context.n_source_parcels or cfg.ephys_atlas_scale)
    method = prov.get("InverseMethod", cfg.inverse_method)
    snr = float(prov.get("SNR", cfg.snr))
    lambda2 = float(prov.get("Lambda2", 1.0 / snr**2))
    shape = prov.get("ParcelKernelShape")
    subject = context.ephys_subject
    return dict(
        ephys_subject=subject,
        source_space=provenance_text(prov.get("SourceSpace", subject)),
        n_sources=count_text(prov["NSources"]) if "NSources" in prov else "all",
        head_model=head_model_phrase(prov),
        transform=provenance_text(prov.get("Transform",
                                           "fsaverage head-to-MRI transform of MNE-Python")),
        inverse_phrase=inverse_phrase(method),
        loose=number_text(prov.get("Loose", 0.2)),
        depth=number_text(prov.get("Depth", 0.8)),
        lambda2=f"{lambda2:.4g}",
        snr=number_text(snr),
        noise_cov_phrase=noise_cov_phrase(prov, context.modality),
        ephys_atlas=(fallback_atlas(subject) if context.templates_kind == "fallback"
                     else _schaefer(f"on {subject}")),
        n_source_parcels=str(n_src),
        kernel_shape=(" × ".join(str(int(n)) for n in shape) if shape
                      else f"{n_src} × {context.n_channels or 'n'}"),
        chunk_s=number_text(cfg.chunk_s),
    )


def bold_values(context: MethodsContext) -> dict:
    """``bold.md``: the BOLD space, atlas, parcel means and nuisance regressors."""
    cfg = context.config
    space = context.bold_space
    kind = space_kind(space)
    fallback = context.templates_kind == "fallback"
    if kind in ("surface", "cifti"):
        where, key, image, mean_phrase, elements = {
            "surface": ("surface", "fischl1999fsaverage", "one GIFTI file per hemisphere",
                        " (mean over each parcel's vertices; medial wall excluded)", "vertices"),
            "cifti": ("grayordinates", "vanessen2012fslr", "a CIFTI-2 dense time series",
                      " (mean over each parcel's grayordinates)", "grayordinates"),
        }[kind]
        space_phrase = f"on the {space} {where} [@{key}], {image},"
        atlas = fallback_atlas(space) if fallback else _schaefer(f"on {space}")
    else:
        space_phrase = f"in {space} space" + (" [@evans2012templates]"
                                              if space.startswith("MNI152") else "")
        space_phrase += ", a NIfTI image,"
        atlas = (fallback_atlas(space) if fallback
                 else _schaefer(f"in {space} space from TemplateFlow [@ciric2022templateflow]"))
        mean_phrase = (" (mean over each parcel's voxels with nilearn's `NiftiLabelsMasker`, "
                       "the atlas resampled to the BOLD grid by nearest neighbour where the "
                       "grids differed)")
        elements = "voxels"
    columns = list(context.confound_columns or [])
    return dict(
        n_volumes=str(context.n_volumes),
        tr_s=number_text(context.tr_s),
        space_phrase=space_phrase,
        n_bold_parcels=str(int(context.n_bold_parcels or cfg.bold_atlas_scale)),
        bold_atlas=atlas,
        parcel_mean_phrase=mean_phrase,
        confound_sentence=confound_sentence(columns, cfg.confounds, context.auto_confounds),
        confound_clause=(f" and the {len(columns)} nuisance regressors regressed out"
                         if columns and cfg.confounds != "none" else ""),
        bold_space=space,
        parcel_elements=elements,
    )


def alignment_values(context: MethodsContext) -> dict:
    """``alignment.md``: the common clock and the blocked split."""
    cfg = context.config
    gap = int(context.gap_volumes)
    ephys_sfreq = _ephys_sfreq(context)
    return dict(
        alignment_sentence=alignment_sentence(context.alignment, cfg.volume_trigger),
        samples_per_tr=str(int(round(context.tr_s * ephys_sfreq))),
        ephys_sfreq_hz=number_text(ephys_sfreq),
        split_sentence=split_sentence(context),
        n_train=str(context.n_train_volumes),
        n_validation=str(context.n_validation_volumes),
        n_test=str(context.n_test_volumes),
        gap_volumes=str(gap),
        gap_s=number_text(round(gap * float(context.tr_s), 6)),
        hrf_support_s=number_text(cfg.hrf_support_s),
        train_percent=number_text(round(100 * cfg.train_fraction, 4)),
        validation_percent=number_text(round(100 * cfg.validation_fraction, 4)),
    )


def split_sentence(context: MethodsContext) -> str:
    """How the run's volumes were split: blocks in time, train/validation only (by-run
    cross-validation), or not at all (a reused model)."""
    cfg = context.config
    gap = int(context.gap_volumes)
    gap_s = number_text(round(gap * float(context.tr_s), 6))
    hrf_support_s = number_text(cfg.hrf_support_s)
    if context.reused_model:
        return ("No block was held out: the model had been trained elsewhere, so every volume "
                "of a run with BOLD was a test volume.")
    if context.cv == "runs":
        share = cfg.validation_fraction / (cfg.train_fraction + cfg.validation_fraction)
        return (f"Each run that trained a model was split in time into a training block and a "
                f"final validation block ({number_text(round(100 * share, 4))}% of the volumes "
                f"left after the gap), separated by a gap of {gap} volumes ({gap_s} s: the "
                f"{hrf_support_s} s support of the hemodynamic response function, HRF, rounded "
                "up to whole volumes); the held-out run of each fold was a test run as a whole. "
                "Standardisation statistics, the parcel graphs and all model weights were "
                "fitted on training blocks only, model selection used the validation blocks "
                "only, and the test run served only for the reported metrics.")
    n_train, n_validation = context.n_train_volumes, context.n_validation_volumes
    n_test = context.n_test_volumes
    train_percent = number_text(round(100 * cfg.train_fraction, 4))
    validation_percent = number_text(round(100 * cfg.validation_fraction, 4))
    text = (f"The run was split in time into contiguous training ({n_train} volumes), validation"
            f" ({n_validation} volumes) and test ({n_test} volumes) blocks, in this order, "
            f"separated by gaps of {gap} volumes ({gap_s} s: the {hrf_support_s} s support of "
            f"the hemodynamic response function, HRF, rounded up to whole volumes), so that no "
            f"BOLD volume of one block depends through the hemodynamic response on "
            f"electrophysiology recorded during the volumes of another block; the training and "
            f"validation blocks held {train_percent}% and {validation_percent}% of the volumes "
            f"left after the gaps. Standardisation statistics, the parcel graphs and all model "
            f"weights were fitted on the training block only, model selection used the "
            f"validation block only, and the test block served only for the reported metrics.")
    if context.n_runs > 1:
        text = text.replace("The run was split", "Each run was split", 1)
    return text


def _linear_phrase(context: MethodsContext) -> str:
    """The linear path (the standard model inside SAMBA), or that it was left out."""
    cfg, alphas = context.config, list(context.ridge_alphas)
    if not getattr(cfg, "linear_path", True):
        return "(Ablation: the model had no linear path; the graph path started at random.)"
    sources = ("its source parcels in the bipartite graph" if cfg.use_graph else
               "every source parcel")
    text = (f"A linear path added the standard model of EEG-informed fMRI "
            f"[@goldman2002alpha; @laufs2003default] to this drive: a weighted sum of the "
            f"standardised log band power of {sources} in every band, with the weights of the "
            f"closed-form ridge regression [@hoerl1970ridge] of each BOLD parcel on these "
            f"band powers convolved with SPM's canonical HRF, fitted on the training volumes "
            f"with the penalty chosen on the validation volumes (mean squared error, "
            f"{len(alphas)} values from {number_text(alphas[0])} to "
            f"{number_text(alphas[-1])}), and kept fixed.")
    if getattr(cfg, "nonlinear_path", True):
        return text + (" The readout of the graph path started at zero, so that training "
                       "started from the ridge regression's prediction and the graph path "
                       "learned a residual to it.")
    return text + (" (Ablation: the linear path alone; stages 1-3 were not used.)")


def model_values(context: MethodsContext) -> dict:
    """``features.md`` and ``model.md``: wavelet bands, graphs, the SAMBA model."""
    cfg = context.config
    return dict(
        wavelet=cfg.wavelet,
        wavelet_level=str(cfg.wavelet_level),
        n_bands=str(cfg.wavelet_level + 1),
        band_list=band_list(cfg.wavelet_level, _ephys_sfreq(context)),
        k_spatial=str(cfg.k_spatial),
        k_functional=str(cfg.k_functional),
        hidden_size=str(cfg.hidden_size),
        attention_phrase=(
            "weighted by an attention over bands computed from the input (softmax over band "
            "scores)" if cfg.use_wavelet_attention else
            "averaged with uniform weights (ablation without wavelet attention)"),
        rnn_phrase=(f"LSTM [@hochreiter1997lstm] (hidden size {cfg.hidden_size})"
                    if cfg.rnn == "lstm" else
                    f"GRU [@cho2014gru] (hidden size {cfg.hidden_size})"),
        spatial_phrase=(
            f"graph attention with GATv2 [@brody2022gatv2] (PyTorch Geometric's `GATv2Conv`, "
            f"{cfg.gat_heads} heads concatenated and projected back to the hidden size) from "
            "the source parcels to the BOLD parcels on the bipartite graph, then residual "
            "GATv2 on the BOLD parcel graph" if cfg.use_graph else
            "a learned dense linear map from the source to the BOLD parcels per TR segment "
            "(ablation without graph attention; the graphs were not used)"),
        hrf_phrase=_hrf_phrase(cfg.learn_hrf),
        linear_phrase=_linear_phrase(context),
        dropout=number_text(cfg.dropout),
        n_parameters_sentence=(f"The model had {count_text(context.n_parameters)} trainable "
                               "parameters." if context.n_parameters is not None else ""),
    )


def training_values(context: MethodsContext) -> dict:
    """``training.md``: optimiser, device, windows, loss, early stopping, the forward fit."""
    cfg = context.config
    contexts = []
    if context.forward:
        contexts.append("the electrophysiology before the targets for the forward model")
    if context.reverse:
        contexts.append("the BOLD after the targets for the reverse model")
    forward_fit = ""
    if context.forward and context.epochs_run is not None and context.best_epoch is not None:
        forward_fit = (f"The electrophysiology-to-BOLD model trained for {context.epochs_run} "
                       f"epochs and kept the weights of epoch {context.best_epoch}"
                       + (" (its initial weights)." if context.best_epoch == 0 else "."))
    if context.forward and context.pretrained_model:
        forward_fit = (
            f"It was fine-tuned from a model trained on other data ({context.pretrained_model}"
            "): that model's graphs and graph path were the starting point, its linear path "
            "the prior mean toward which the participant's ridge was shrunk (ridge regression "
            "toward a prior, the penalty chosen on the validation block; the largest penalty "
            "keeps the prior), and the HRFs, gains, offsets and feature standardisation "
            "started afresh. " + forward_fit)
    return dict(
        learning_rate=number_text(cfg.learning_rate),
        hrf_learning_rate=number_text(cfg.learning_rate if cfg.hrf_learning_rate is None
                                      else cfg.hrf_learning_rate),
        initial_phrase=(" (for the electrophysiology-to-BOLD model, epoch 0, its "
                        "ridge-initialised weights, when no epoch had a lower validation loss)"
                        if getattr(cfg, "linear_path", True) else ""),
        weight_decay=number_text(cfg.weight_decay),
        batch_size=str(cfg.batch_size),
        max_grad_norm=number_text(context.max_grad_norm),
        device_phrase=device_phrase(str(context.device or cfg.device), context.device_name),
        seed=str(cfg.seed),
        window_trs=str(int(context.window_trs or cfg.window_trs)),
        context_phrase="; ".join(contexts),
        mse_weight=number_text(cfg.mse_weight),
        patience=str(cfg.patience),
        max_epochs=str(cfg.max_epochs),
        forward_fit_sentence=forward_fit,
    )


def cross_validation_sentence(context: MethodsContext) -> str:
    """How the participant's model spanned its runs, and what it translated without BOLD."""
    parts = []
    if context.reused_model:
        parts.append(f"No model was trained: the model saved in {context.reused_model} "
                     "translated every run, and the runs with BOLD were scored on all their "
                     "volumes.")
    elif context.cv == "runs":
        parts.append(
            f"One model was trained per participant across its {count_text(context.n_runs)} "
            "paired runs (windows never crossed a run boundary) and cross-validated by run: "
            "each run was predicted, and scored on all its volumes, by a model trained on the "
            "other runs, with early stopping on the last block of each of those runs; a final "
            "model was then fitted on every run in the same way and saved.")
    elif context.cv == "blocks":
        parts.append(
            f"One model was trained per participant across its {count_text(context.n_runs)} "
            "paired runs (windows never crossed a run boundary), on the training block of "
            "each run with early stopping on the validation blocks, and scored on each run's "
            "test block; it is the participant's saved model.")
    if context.n_ephys_only:
        parts.append(
            f"{count_text(context.n_ephys_only).capitalize()} run(s) with "
            f"{context.modality.upper()} but no BOLD were translated with that model, on a "
            "volume grid from the recording's volume markers when present, else one volume "
            "per TR from the recording's start.")
    return (" ".join(parts) + " ") if parts else ""


def reverse_cross_validation_sentence(context: MethodsContext) -> str:
    """How the reverse model spanned the participant's runs, and the BOLD-only runs."""
    parts = []
    if context.cv is not None or context.reused_model:
        if context.forward:
            parts.append("The reverse model spanned the runs, and was cross-validated, as the "
                         "forward model was.")
        else:
            parts.append(cross_validation_sentence(context).strip())
    if context.n_bold_only:
        parts.append(
            f"{count_text(context.n_bold_only).capitalize()} BOLD run(s) without an "
            f"{context.modality.upper()} recording were translated into band power with "
            "that reverse model, their BOLD standardised over the whole run.")
    return (" ".join(parts) + " ") if parts else ""


def evaluation_values(context: MethodsContext) -> dict:
    """``evaluation.md`` and ``reverse.md``: nulls, the ridge baseline, ablations, reverse."""
    alphas = list(context.ridge_alphas)
    ablations = [a for a in context.ablations if a != "samba"]
    return dict(
        cv_sentence=cross_validation_sentence(context),
        n_null=count_text(context.n_null),
        n_alphas=str(len(alphas)),
        alpha_min=f"{min(alphas):g}",
        alpha_max=f"{max(alphas):g}",
        ridge_alpha_clause=(f" (chosen: {context.ridge_alpha:g})"
                            if context.ridge_alpha is not None else ""),
        ablation_sentence=(
            f"The ablations {code_list(ablations)} were trained, selected and scored on the "
            "same split." if ablations else ""),
        n_taps=str(int(context.gap_volumes) + 1),
        reverse_cv_sentence=reverse_cross_validation_sentence(context),
        reverse_fit_sentence=fit_sentence(context.reverse_n_parameters,
                                          context.reverse_epochs_run,
                                          context.reverse_best_epoch),
    )


#: The functions giving each section's placeholder values, in the order of :data:`SECTIONS`.
SECTION_VALUES = (data_values, ephys_values, source_values, bold_values, alignment_values,
                  model_values, training_values, evaluation_values)


def template_values(context: MethodsContext) -> dict:
    """The placeholder values of every template for ``context`` (strings).

    The package versions (``version_<name>``, :func:`package_versions` updated with
    ``context.versions``), then each section's values (:data:`SECTION_VALUES`).
    """
    versions = package_versions()
    versions.update(context.versions or {})
    values = {f"version_{name}": version for name, version in versions.items()}
    for section_values in SECTION_VALUES:
        values.update(section_values(context))
    return values


# --------------------------------------------------------------------------------------------
# Rendering


@dataclass
class Boilerplate:
    """The rendered boilerplate.

    Attributes
    ----------
    markdown : str
        ``CITATION.md``: sections with Pandoc citations, then the reference list.
    html : str
        ``CITATION.html``: a complete HTML document (no scripts).
    bibtex : str
        ``CITATION.bib``: the cited entries.
    keys : list of str
        Cited keys, in reference-list order.
    """

    markdown: str
    html: str
    bibtex: str
    keys: list


def _tidy(text: str) -> str:
    """Collapse the spaces left by empty placeholders."""
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r" +([.,;])", r"\1", text)
    return re.sub(r"[ \t]+\n", "\n", text).strip() + "\n"


def _substitute(folder: Path, names, values: dict) -> str:
    """The templates ``names`` of ``folder`` filled with ``values``, one after the other."""
    parts = []
    for name in names:
        path = folder / name
        try:
            template = string.Template(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise NoInputError(f"{path}: boilerplate template missing or unreadable ({err}); "
                               "reinstall samba-bids.") from err
        try:
            parts.append(_tidy(template.substitute(values)))
        except (KeyError, ValueError) as err:
            raise ValueError(f"{path}: unknown or malformed placeholder {err}.") from err
    return "\n".join(parts)


def _cited_entries(body: str, folder: Path, versions: dict) -> tuple[list, dict]:
    """The entries ``body`` cites (version notes added) and their labels, in list order.

    Raises
    ------
    ValueError
        If a cited key is not an entry of ``references.bib``.
    """
    references = read_bibtex(folder / REFERENCES_FILE)
    used = cited_keys(body)
    missing = [key for key in used if key not in references]
    if missing:
        raise ValueError(f"The boilerplate cites {', '.join(missing)}, which "
                         f"{folder / REFERENCES_FILE} lacks; add the entries.")
    entries = [with_version_note(references[key], versions.get(VERSIONED_REFERENCES.get(key)))
               for key in used]
    labels = citation_labels(entries)
    entries.sort(key=lambda e: (labels[e.key].lower(), e.key))
    return entries, labels


def _html_document(body_html: str, references_html: str, version: str) -> str:
    version = html.escape(version)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta name=\"generator\" content=\"samba-bids {version}\">\n"
        "<title>samba-bids: methods boilerplate</title>\n"
        "<style>body{font-family:sans-serif;max-width:52em;margin:2em auto;padding:0 1em;"
        "line-height:1.5}code{font-size:90%}ol.references li{margin-bottom:0.4em}</style>\n"
        "</head>\n<body>\n"
        f"{body_html}\n<h3 id=\"references\">References</h3>\n"
        f"<ol class=\"references\">\n{references_html}\n</ol>\n</body>\n</html>\n"
    )


def render_sections(names, values: dict, *, stem: str = CITATION_STEM, versions=None,
                    boilerplate_dir=None) -> Boilerplate:
    """Render the templates ``names`` with ``values`` in Markdown, HTML and BibTeX (in memory).

    The machinery of every boilerplate: :func:`render` gives it the participant level's
    sections, :func:`samba_bids.reports.stimulus.render_stimulus_boilerplate` those of the
    stimulus pairing.

    Parameters
    ----------
    names : sequence of str
        Template files of the boilerplate folder, in order (e.g. ``("stimulus.md",
        "copyright.md")``).
    values : dict of str to str
        Placeholder values; ``citation_name`` is set to ``stem`` (the waiver names the files).
    stem : str
        Name of the files, without extension, in ``logs/`` (:func:`write_boilerplate`).
    versions : dict | None
        Package versions (:func:`package_versions`, the default) for the notes of
        :data:`VERSIONED_REFERENCES` and the generator line.
    boilerplate_dir : path-like | None
        Templates folder; default :func:`find_boilerplate_dir`.

    Returns
    -------
    Boilerplate

    Raises
    ------
    NoInputError
        If the templates are not found.
    ValueError
        If a template cites a key that ``references.bib`` lacks, or has an unknown
        placeholder.
    """
    import markdown as markdown_lib

    folder = find_boilerplate_dir(boilerplate_dir)
    versions = package_versions() if versions is None else versions
    body = _substitute(folder, names, {**values, "citation_name": stem})
    entries, labels = _cited_entries(body, folder, versions)
    md_refs, html_refs = format_references(entries, labels)
    markdown_text = body + "\n### References\n\n" + md_refs + "\n"
    body_html = markdown_lib.markdown(link_citations(body, labels), output_format="html")
    html_text = _html_document(body_html, html_refs, versions.get("samba_bids", ""))
    header = (f"% References cited by the samba-bids {versions.get('samba_bids', '')} methods "
              f"boilerplate ({stem}.md).\n\n")
    bibtex = header + "\n\n".join(entry.raw for entry in entries) + "\n"
    return Boilerplate(markdown=markdown_text, html=html_text, bibtex=bibtex,
                       keys=[e.key for e in entries])


def render(context: MethodsContext, *, boilerplate_dir=None) -> Boilerplate:
    """Render the methods text of ``context`` in Markdown, HTML and BibTeX (in memory).

    The sections of :data:`SECTIONS` the run needs (:func:`render_sections`).

    Parameters
    ----------
    context : MethodsContext
        What the run did.
    boilerplate_dir : path-like | None
        Templates folder; default :func:`find_boilerplate_dir`.

    Returns
    -------
    Boilerplate

    Raises
    ------
    NoInputError
        If the templates are not found.
    ValueError
        If a template cites a key that ``references.bib`` lacks, or has an unknown
        placeholder.
    """
    versions = package_versions()
    versions.update(context.versions or {})
    wanted = {"always": True, "forward": context.forward, "reverse": context.reverse}
    names = [name for name, when in SECTIONS if wanted[when]]
    return render_sections(names, template_values(context), versions=versions,
                           boilerplate_dir=boilerplate_dir)


def write_boilerplate(rendered: Boilerplate, logs_dir, *, stem: str = CITATION_STEM) -> list:
    """Write ``<stem>.md``, ``<stem>.bib`` and ``<stem>.html`` of ``rendered`` into ``logs_dir``.

    Parameters
    ----------
    rendered : Boilerplate
        :func:`render_sections` (with the same ``stem``).
    logs_dir : path-like
        Output folder, usually ``<output_dir>/logs``; created if needed. Existing files are
        replaced atomically.
    stem : str
        File name without extension.

    Returns
    -------
    list of pathlib.Path
        The three files, in the order md, bib, html.

    Raises
    ------
    samba_bids.errors.CantCreateError
        If ``logs_dir`` cannot be created.
    """
    from ..bids.derivatives import atomic_path

    logs_dir = Path(logs_dir)
    written = []
    for extension, text in ((".md", rendered.markdown), (".bib", rendered.bibtex),
                            (".html", rendered.html)):
        path = logs_dir / f"{stem}{extension}"
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        written.append(path)
    logger.info("Methods boilerplate written to %s (%s.*, %d references).", logs_dir, stem,
                len(rendered.keys))
    return written


def render_boilerplate(context: MethodsContext, logs_dir, *, boilerplate_dir=None) -> list[Path]:
    """Write ``CITATION.md``, ``CITATION.bib`` and ``CITATION.html`` into ``logs_dir``.

    Parameters
    ----------
    context : MethodsContext
        What the run did (:func:`methods_context`).
    logs_dir : path-like
        Output folder, usually ``<output_dir>/logs``; created if needed. Existing files are
        replaced atomically.
    boilerplate_dir : path-like | None
        Templates folder; default :func:`find_boilerplate_dir`.

    Returns
    -------
    list of pathlib.Path
        The three files, in the order md, bib, html.

    Raises
    ------
    NoInputError
        If the templates are not found.
    samba_bids.errors.CantCreateError
        If ``logs_dir`` cannot be created.
    """
    return write_boilerplate(render(context, boilerplate_dir=boilerplate_dir), logs_dir)


def section_text(names, values: dict, *, boilerplate_dir=None) -> str:
    """Templates as plain text, for a report's methods paragraphs.

    The templates filled as :func:`render_sections` fills them, without their ``###``
    headings, their citations as author-year labels (``(Afrasiyabi et al., 2024)``) and their
    code marks (backquotes) removed; paragraphs stay separated by a blank line.

    Parameters
    ----------
    names : sequence of str
        Template files of the boilerplate folder, in order, e.g. ``["stimulus.md"]``.
    values : dict of str to str
        Their placeholder values.
    boilerplate_dir : path-like | None
        Templates folder; default :func:`find_boilerplate_dir`.

    Returns
    -------
    str

    Raises
    ------
    NoInputError
        If the templates are not found.
    ValueError
        As :func:`render_sections`.
    """
    folder = find_boilerplate_dir(boilerplate_dir)
    body = _substitute(folder, names, values)
    _, labels = _cited_entries(body, folder, {})
    body = CITATION.sub(lambda match: "(" + "; ".join(
        labels[item.strip().lstrip("@")] for item in match.group(1).split(";")) + ")", body)
    lines = [line for line in body.splitlines() if not line.startswith("#")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return text.strip().replace("`", "")
