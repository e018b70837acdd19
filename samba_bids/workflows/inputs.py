"""Preparing one run for the model: BOLD parcels, split, source-parcel features, one clock."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import Config
from ..templates.spaces import CIFTI_SPACES, SURFACE_SPACES

logger = logging.getLogger("samba_bids.workflows")

#: The ephys source space: a FreeSurfer template subject in the templates folder.
EPHYS_SUBJECT = "fsaverage5"


@dataclass
class RunInputs:
    """One run made ready for the model: features, parcel BOLD and the split, on one clock.

    Attributes
    ----------
    features : ndarray, shape (N, V, n_bands, n_features)
        Wavelet band features of the electrophysiology segment of each volume.
    observed : ndarray, shape (M, V)
        Parcel BOLD after confound regression, z-scored with training-block statistics.
    split : samba_bids.alignment.Split
        Blocked train / validation / test split.
    parcels : samba_bids.ephys.SourceParcels
        Source-parcel time courses and centroids.
    atlas : samba_bids.bold.ParcelAtlas
        BOLD atlas (names, centroids).
    tr_s : float
        Repetition time, s.
    modality : str
        ``'eeg'`` or ``'meg'``.
    clock : str
        How the two recordings were put on one clock.
    bold : object
        The loaded BOLD data or image (None when the inputs come from the work-directory
        cache; the outputs are projected onto the input files' grids, not onto this).
    n_channels : int
        Data channels used after preprocessing.
    sfreq_hz : float
        Sampling rate of the recording as read, Hz.
    confound_columns : list of str
        Confound regressors removed from the parcel BOLD.
    channel_names : list of str
        The data channels used, in order.
    mr_artifacts : samba_bids.ephys.MRArtifactRemoval | None
        The MR artefacts removed from the recording (EEG), the detection's figures and the
        quality control (None: MEG, or inputs cached by an earlier version).
    """

    features: np.ndarray
    observed: np.ndarray
    split: object
    parcels: object
    atlas: object
    tr_s: float
    modality: str
    clock: str
    bold: object
    n_channels: int = 0
    sfreq_hz: float = 0.0
    confound_columns: list = field(default_factory=list)
    channel_names: list = field(default_factory=list)
    mr_artifacts: object = None


def prepare_run(pair, config: Config, templates_dir: Path) -> RunInputs:
    """Electrophysiology + BOLD of one run -> features, parcel BOLD and split.

    Stages: BOLD parcellation, confound regression and the blocked split (first, so that a
    bad BOLD run fails before the costly electrophysiology); read and preprocess the
    recording; template source reconstruction to parcel time courses; one clock, segments;
    BOLD standardised with training statistics; wavelet features.

    Parameters
    ----------
    pair : samba_bids.bids.layout.RunPair
        The recording and the BOLD run to translate between.
    config : Config
        Resolved configuration.
    templates_dir : pathlib.Path
        Templates folder.

    Returns
    -------
    RunInputs

    Raises
    ------
    samba_bids.errors.DataError
        As the stages it calls (unreadable files, trigger count mismatch, too few volumes).
    """
    from ..alignment import blocked_split, segment_ephys, standardize, volume_onsets
    from ..model.wavelet import wavelet_band_features

    # BOLD first: its errors are cheap to find
    bold = prepare_bold(pair, config, templates_dir)
    split = blocked_split(bold.n_volumes, bold.tr_s, hrf_support_s=config.hrf_support_s,
                          train_fraction=config.train_fraction,
                          validation_fraction=config.validation_fraction,
                          window_trs=config.window_trs, source=pair.bold_files[0].name)
    raw, modality, sfreq_hz, parcels, mr_artifacts = prepare_ephys(pair, config, templates_dir)

    # --- one clock, segments ------------------------------------------------------------
    onsets, clock = volume_onsets(raw, bold.n_volumes, bold.tr_s, trigger=config.volume_trigger,
                                  source=pair.ephys_file.name)
    segments, _ = segment_ephys(parcels.data, parcels.sfreq_hz, onsets, bold.tr_s,
                                source=pair.ephys_file.name)
    observed, _, _ = standardize(bold.observed_clean, split.train)
    observed = np.nan_to_num(observed)
    features = wavelet_band_features(segments, wavelet=config.wavelet, level=config.wavelet_level)
    return RunInputs(features=features, observed=observed, split=split, parcels=parcels,
                     atlas=bold.atlas, tr_s=bold.tr_s, modality=modality, clock=clock,
                     bold=bold.data, n_channels=len(raw.ch_names), sfreq_hz=sfreq_hz,
                     confound_columns=bold.confound_columns, channel_names=list(raw.ch_names),
                     mr_artifacts=mr_artifacts)


@dataclass
class EphysInputs:
    """A recording without BOLD made ready for a trained model (:func:`prepare_ephys_only`).

    Attributes
    ----------
    features : ndarray, shape (N, V, n_bands, n_features)
        Wavelet band features of the segment of each volume of the grid.
    parcels : samba_bids.ephys.SourceParcels
    tr_s : float
        The volume grid's step, s (the model's TR).
    modality : str
    clock : str
        How the volume grid was placed on the recording.
    n_channels : int
    sfreq_hz : float
    channel_names : list of str
    mr_artifacts : samba_bids.ephys.MRArtifactRemoval | None
    """

    features: np.ndarray
    parcels: object
    tr_s: float
    modality: str
    clock: str
    n_channels: int
    sfreq_hz: float
    channel_names: list = field(default_factory=list)
    mr_artifacts: object = None

    @property
    def n_volumes(self) -> int:
        return self.features.shape[1]


def prepare_ephys_only(run, config: Config, templates_dir: Path, tr_s: float) -> EphysInputs:
    """A recording without BOLD -> features on a volume grid, for a trained model.

    The grid: the ``--volume-trigger`` markers when the recording has them, else one volume
    every ``tr_s`` from the recording's first sample for as long as it lasts
    (:func:`~samba_bids.alignment.volume_onsets` with ``n_volumes=None``; logged).

    Parameters
    ----------
    run : samba_bids.bids.layout.EphysRun
    config : Config
    templates_dir : pathlib.Path
    tr_s : float
        Repetition time of the model that will translate it, s.

    Returns
    -------
    EphysInputs

    Raises
    ------
    samba_bids.errors.DataError
        As the stages it calls (unreadable file, trigger named but absent).
    """
    from ..alignment import segment_ephys, volume_onsets
    from ..errors import DataError
    from ..model.wavelet import wavelet_band_features

    raw, modality, sfreq_hz, parcels, mr_artifacts = prepare_ephys(run, config, templates_dir)
    trigger = config.volume_trigger
    if trigger is not None and not _has_annotation(raw, trigger):
        logger.warning("%s has no %r volume markers (recorded outside the scanner?); its "
                       "volume grid starts at its first sample.", run.ephys_file.name, trigger)
        trigger = None
    onsets, clock = volume_onsets(raw, None, tr_s, trigger=trigger, source=run.ephys_file.name)
    if len(onsets) < 1:
        raise DataError(f"{run.ephys_file.name} is shorter than one volume ({tr_s:g} s).")
    segments, _ = segment_ephys(parcels.data, parcels.sfreq_hz, onsets, tr_s,
                                source=run.ephys_file.name)
    features = wavelet_band_features(segments, wavelet=config.wavelet, level=config.wavelet_level)
    return EphysInputs(features=features, parcels=parcels, tr_s=float(tr_s), modality=modality,
                       clock=clock, n_channels=len(raw.ch_names), sfreq_hz=sfreq_hz,
                       channel_names=list(raw.ch_names), mr_artifacts=mr_artifacts)


@dataclass
class BoldInputs:
    """A BOLD run without a recording made ready for a trained reverse model
    (:func:`prepare_bold_only`).

    Attributes
    ----------
    observed : ndarray, shape (M, V)
        Parcel BOLD after confound regression, z-scored over the whole run (none of it
        trains the model).
    atlas : samba_bids.bold.ParcelAtlas
    tr_s : float
    confound_columns : list of str
    """

    observed: np.ndarray
    atlas: object
    tr_s: float
    confound_columns: list = field(default_factory=list)


def prepare_bold_only(run, config: Config, templates_dir: Path) -> BoldInputs:
    """A BOLD run without a recording -> parcel BOLD for the reverse direction.

    :func:`prepare_bold` (parcels, confound regression), then z-scored over all its volumes.

    Parameters
    ----------
    run : samba_bids.bids.layout.BoldRun
    config : Config
    templates_dir : pathlib.Path

    Returns
    -------
    BoldInputs

    Raises
    ------
    samba_bids.errors.DataError
        As :func:`prepare_bold` (unreadable file, TR missing).
    """
    from ..alignment import standardize

    bold = prepare_bold(run, config, templates_dir)
    observed, _, _ = standardize(bold.observed_clean, np.arange(bold.n_volumes))
    return BoldInputs(observed=np.nan_to_num(observed), atlas=bold.atlas, tr_s=bold.tr_s,
                      confound_columns=bold.confound_columns)


def _has_annotation(raw, trigger: str) -> bool:
    """Whether ``raw`` has annotations named ``trigger`` (or ``Type/trigger``)."""
    names = {str(d) for d in raw.annotations.description}
    return trigger in names or any(d.rsplit("/", 1)[-1].strip() == trigger.strip()
                                   for d in names)


def prepared_inputs(pair, config, templates_dir, work_dir):
    """:func:`prepare_run` through the work-directory cache (:class:`~.cache.RunCache`)."""
    from .cache import RunCache

    cache = RunCache(work_dir, pair, config, templates_dir)
    inputs = cache.load_inputs()
    if inputs is None:
        inputs = prepare_run(pair, config, templates_dir)
        cache.store_inputs(inputs)
    else:
        logger.info("%s: prepared inputs read from the work-directory cache.", pair.label)
    return inputs


@dataclass
class ParcelBold:
    """A BOLD run parcellated and cleaned (:func:`prepare_bold`)."""

    atlas: object  # samba_bids.bold.ParcelAtlas
    data: object  # the loaded BOLD data or image
    observed_clean: np.ndarray  # (M, V), after confound regression and detrending
    tr_s: float
    confound_columns: list

    @property
    def n_volumes(self) -> int:
        return self.observed_clean.shape[1]


def prepare_bold(pair, config: Config, templates_dir: Path) -> ParcelBold:
    """Load a BOLD run in its space, average it over the atlas' parcels, regress confounds."""
    from ..bold import (
        bold_repetition_time,
        clean_parcel_bold,
        load_bold_atlas,
        load_cifti_bold,
        load_surface_bold,
        load_volume_bold,
        parcellate_bold,
        select_confounds,
    )

    tr_s = bold_repetition_time(pair.bold_files, config.repetition_time_s or pair.tr_s)
    atlas = load_bold_atlas(templates_dir, pair.space, config.bold_atlas_scale)
    if pair.space in SURFACE_SPACES:
        bold, _ = load_surface_bold(pair.bold_files)
    elif pair.space in CIFTI_SPACES:
        bold, _, _ = load_cifti_bold(pair.bold_files[0], atlas=atlas)
    else:
        bold = load_volume_bold(pair.bold_files[0])
    observed_raw = parcellate_bold(bold, atlas, name=pair.bold_files[0].name)
    confounds = None
    if pair.confounds_file is not None:
        confounds = select_confounds(pair.confounds_file, config.confounds)
    observed_clean = clean_parcel_bold(
        observed_raw, tr_s=tr_s, confounds=None if confounds is None else confounds.to_numpy()
    )
    return ParcelBold(atlas=atlas, data=bold, observed_clean=observed_clean, tr_s=tr_s,
                      confound_columns=[] if confounds is None else list(confounds.columns))


def prepare_ephys(pair, config: Config, templates_dir: Path):
    """Read a recording, remove MR artefacts, preprocess; source-reconstruct to parcels.

    Returns
    -------
    raw : mne.io.BaseRaw
        The preprocessed recording (its annotations give the volume triggers).
    modality : str
        ``'eeg'`` or ``'meg'``.
    sfreq_hz : float
        Sampling rate of the recording as read, Hz.
    parcels : samba_bids.ephys.SourceParcels
    mr_artifacts : samba_bids.ephys.MRArtifactRemoval | None
        The MR artefacts removed from an EEG recording (nothing when its ``steps`` are
        empty), with the detection's figures and the quality control; None for MEG.
    """
    from ..ephys import (
        compute_source_parcels,
        detect_modality,
        empty_room_noise_cov,
        plan_mr_artifacts,
        preprocess_raw,
        read_ephys,
    )

    raw = read_ephys(pair.ephys_file, modality=config.modality)
    sfreq_hz = float(raw.info["sfreq"])
    modality = detect_modality(raw, config.modality)
    mr_artifacts = None
    if modality == "eeg":
        import mne

        mr_artifacts = plan_mr_artifacts(
            raw, mode=config.mr_artifacts, trigger=config.volume_trigger,
            picks=mne.pick_types(raw.info, meg=False, eeg=True, exclude="bads"),
            band_hz=(config.l_freq_hz, config.h_freq_hz),
            from_derivatives=getattr(pair, "ephys_derivatives", None) is not None)
    elif config.mr_artifacts not in ("auto", "none"):
        logger.warning("%s: --mr-artifacts %s applies to EEG; nothing removed from MEG.",
                       pair.ephys_file.name, config.mr_artifacts)
    raw = preprocess_raw(raw, modality=modality, l_freq_hz=config.l_freq_hz,
                         h_freq_hz=config.h_freq_hz, sfreq_hz=config.resample_sfreq_hz,
                         n_jobs=config.nprocs or 1, mr_artifacts=mr_artifacts)
    noise_cov = empty_room_noise_cov(pair.ephys_file, raw) if modality == "meg" else None
    parcels = compute_source_parcels(
        raw, templates_dir, modality=modality, subject=EPHYS_SUBJECT,
        n_parcels=config.ephys_atlas_scale, method=config.inverse_method, snr=config.snr,
        noise_cov=noise_cov, chunk_seconds=config.chunk_s, progress=True,
    )
    return raw, modality, sfreq_hz, parcels, mr_artifacts
