"""The group level with stimulus pairing: one translator from some people's EEG/MEG to other
people's BOLD, by the stimulus they watched (``--pairing stimulus``; issue 16).

Per stimulus segment (:func:`~samba_bids.bids.stimulus.collect_stimulus_design`):

1. Every BOLD run is parcellated and cleaned (:func:`~.inputs.prepare_bold`), resampled to the
   stimulus-time grid ``t_k = k TR + TR / 2`` (``k = 0 .. floor(duration / TR) - 1``; each
   volume's sample time is ``v TR + TR / 2`` minus the run's stimulus onset, fMRIPrep's
   slice-timing reference) by linear interpolation, and z-scored; the target is the mean over
   the BOLD participants (the standard target of naturalistic imaging), z-scored, and their
   inter-subject correlation gives the ceiling (:func:`~samba_bids.metrics.group_mean_ceiling`).
2. Every recording is preprocessed and source-reconstructed (:func:`~.inputs.prepare_ephys`)
   and cut into TR segments starting at ``onset + k TR`` on its own clock; its wavelet features
   are kept per participant (``--config-file`` ``stimulus_features = "participants"``, the
   default: one training run per participant and segment; the prediction is the mean of the
   participants' predictions) or averaged over the EEG/MEG participants (``"average"``).
3. Cross-validation by segment: each segment is predicted, and scored on all its volumes, by
   SAMBA (and the canonical-HRF band-power ridge) trained on the other segments (train and
   validation blocks of each: :func:`~samba_bids.alignment.fitting_split`); a final model
   trained on every segment gives the HRFs.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..config import Config
from ..errors import DataError, UsageError

logger = logging.getLogger("samba_bids.workflows")

#: Windows of the paper's pooled Spearman, s (30-s and 1-minute predictions).
SPEARMAN_WINDOWS_S = (30.0, 60.0)
#: Decoding: window length, s (the paper's 30-s samples), and permutations of the null.
DECODING_WINDOW_S = 30.0
DECODING_PERMUTATIONS = 200
#: What :func:`decode_segments` classifies: the segment (logistic regression) and the window
#: of the film (correlation template matching).
DECODING_TARGETS = ("segment", "window")
#: Sidecar entry of the decoding tables' ``target`` column.
TARGET_DOC = {"Description": "What was classified",
              "Levels": {"segment": "which stimulus (segment) the window shows: logistic "
                                    "regression on window means",
                         "window": "which window of which stimulus, among all: the best "
                                   "correlated mean pattern of the training groups "
                                   "(between-subject time-segment classification)"}}


@dataclass
class PreparedSegment:
    """One stimulus segment on its stimulus-time grid (:func:`prepare_segment`).

    Attributes
    ----------
    segment : samba_bids.bids.stimulus.StimulusSegment
    target : ndarray, shape (M, K)
        Mean over the BOLD participants of their z-scored BOLD, z-scored.
    bold : dict of str to ndarray, shape (M, K)
        Each BOLD participant's z-scored BOLD (by subject label).
    features : dict of str to ndarray, shape (N, K, n_bands, n_features)
        Each EEG/MEG participant's wavelet features (by subject label).
    atlas : samba_bids.bold.ParcelAtlas
    parcels : samba_bids.ephys.SourceParcels
        Of the first EEG/MEG participant (centroids only are used).
    tr_s : float
    reference : object
        The first BOLD run (its grid, for the outputs in its space).
    """

    segment: object
    target: np.ndarray
    bold: dict
    features: dict
    atlas: object
    parcels: object
    tr_s: float
    reference: object

    @property
    def n_volumes(self) -> int:
        return self.target.shape[1]


def stimulus_grid_bold(observed, tr_s: float, onset_s: float, n_volumes: int, *,
                       source: str = "the BOLD run") -> np.ndarray:
    """A BOLD run's parcel series on the stimulus-time grid.

    Parameters
    ----------
    observed : ndarray, shape (M, V)
        Parcel BOLD; volume ``v`` is sampled at ``v * tr_s + tr_s / 2`` s after the start of
        the first volume's acquisition.
    tr_s : float
        Repetition time, s.
    onset_s : float
        Stimulus onset from the start of the first volume's acquisition, s (BIDS events).
    n_volumes : int
        K: grid points ``k * tr_s + tr_s / 2`` s of stimulus time, ``k = 0 .. K - 1``.

    Returns
    -------
    ndarray, shape (M, K)
        Linear interpolation between the run's samples.

    Raises
    ------
    DataError
        If the grid is not inside the run (the stimulus starts before the first sample or ends
        after the last one), naming ``source`` and what to check.
    """
    observed = np.asarray(observed, dtype=float)
    times = np.arange(observed.shape[1]) * tr_s + tr_s / 2.0 - onset_s
    grid = np.arange(n_volumes) * tr_s + tr_s / 2.0
    if grid[0] < times[0] - 1e-6 or grid[-1] > times[-1] + 1e-6:
        raise DataError(
            f"{source}: the stimulus (onset {onset_s:g} s, {n_volumes * tr_s:g} s used) is not "
            f"inside the run ({observed.shape[1]} volumes of {tr_s:g} s, sampled from "
            f"{tr_s / 2:g} s); check the onset in its events.tsv.")
    return np.stack([np.interp(grid, times, row) for row in observed])


def stimulus_grid_features(parcels, tr_s: float, onset_s: float, n_volumes: int, config, *,
                           source: str = "the recording") -> np.ndarray:
    """A recording's wavelet features on the stimulus-time grid.

    Parameters
    ----------
    parcels : samba_bids.ephys.SourceParcels
        Source-parcel time courses from the recording's first sample.
    tr_s : float
        Repetition time of the BOLD, s (the grid step).
    onset_s : float
        Stimulus onset on the recording's clock, s (its events.tsv).
    n_volumes : int
        K segments of ``tr_s`` from the onset.
    config : Config
        ``wavelet``, ``wavelet_level``.

    Returns
    -------
    ndarray, shape (N, K, n_bands, n_features)

    Raises
    ------
    DataError
        If a segment lies outside the recording.
    """
    from ..alignment import segment_ephys
    from ..model.wavelet import wavelet_band_features

    onsets = onset_s + np.arange(n_volumes) * tr_s
    duration = parcels.data.shape[1] / parcels.sfreq_hz
    if onsets[0] < 0 or onsets[-1] + tr_s > duration + 1e-6:
        raise DataError(
            f"{source}: the stimulus (onset {onset_s:g} s, {n_volumes * tr_s:g} s used) runs "
            f"outside the recording ({duration:.1f} s); check the onset in its events.tsv.")
    segments, _ = segment_ephys(parcels.data, parcels.sfreq_hz, onsets, tr_s, source=source)
    return wavelet_band_features(segments, wavelet=config.wavelet, level=config.wavelet_level)


def _segment_volumes(segment, bold_runs, tr_s) -> int:
    """K: the stimulus duration (its events', else what every BOLD run covers) in TRs."""
    duration = segment.duration_s
    if duration is None:
        duration = min(n * tr_s - run.event.onset_s for run, n in bold_runs)
    n_volumes = int(np.floor(duration / tr_s + 1e-9))
    if n_volumes < 2:
        raise DataError(f"{segment.label}: the stimulus lasts {duration:g} s, under two "
                        f"volumes of {tr_s:g} s.")
    return n_volumes


def prepare_segment(segment, config: Config, templates_dir) -> PreparedSegment:
    """BOLD and electrophysiology of one stimulus segment on its stimulus-time grid.

    Raises
    ------
    DataError
        If the BOLD runs differ in TR, or a run does not cover the stimulus
        (:func:`stimulus_grid_bold`, :func:`stimulus_grid_features`).
    """
    from ..alignment import standardize
    from .inputs import prepare_bold, prepare_ephys

    prepared = [(run, prepare_bold(run.run, config, templates_dir)) for run in segment.bold]
    trs = {round(b.tr_s, 6) for _, b in prepared}
    if len(trs) != 1:
        raise DataError(f"{segment.label}: the BOLD runs have different TRs "
                        f"({', '.join(f'{t:g}' for t in sorted(trs))} s); one model needs one.")
    tr_s = prepared[0][1].tr_s
    n_volumes = _segment_volumes(segment, [(r, b.n_volumes) for r, b in prepared], tr_s)
    bold = {}
    for run, parcel_bold in prepared:
        grid = stimulus_grid_bold(parcel_bold.observed_clean, tr_s, run.event.onset_s,
                                  n_volumes, source=run.run.bold_files[0].name)
        bold[run.subject] = np.nan_to_num(standardize(grid, np.arange(n_volumes))[0])
    target = np.mean(list(bold.values()), axis=0)
    target = np.nan_to_num(standardize(target, np.arange(n_volumes))[0])
    features, parcels = {}, None
    for run in segment.ephys:
        _, _, _, run_parcels, _ = prepare_ephys(run.run, config, templates_dir)
        parcels = parcels or run_parcels
        features[run.subject] = stimulus_grid_features(
            run_parcels, tr_s, run.event.onset_s, n_volumes, config,
            source=run.run.ephys_file.name)
    logger.info("%s: %d EEG/MEG and %d BOLD participants, %d volumes of %g s", segment.label,
                len(features), len(bold), n_volumes, tr_s)
    return PreparedSegment(segment=segment, target=target, bold=bold, features=features,
                           atlas=prepared[0][1].atlas, parcels=parcels, tr_s=tr_s,
                           reference=prepared[0][0].run)


def _training_runs(segments, config):
    """(features, target, split) per training run: one per segment (average) or per
    participant and segment."""
    from ..alignment import fitting_split

    runs = []
    for prepared in segments:
        split = fitting_split(prepared.n_volumes, prepared.tr_s,
                              hrf_support_s=config.hrf_support_s,
                              train_fraction=config.train_fraction,
                              validation_fraction=config.validation_fraction,
                              window_trs=config.window_trs, source=prepared.segment.label)
        if config.stimulus_features == "average":
            runs.append((np.mean(list(prepared.features.values()), axis=0), prepared.target,
                         split))
        else:
            runs.extend((f, prepared.target, split) for f in prepared.features.values())
    return runs


@dataclass
class SegmentPrediction:
    """A held-out segment's predictions (each EEG/MEG participant's and their mean)."""

    samba: np.ndarray  # (M, K), the mean over the participants' predictions
    ridge: np.ndarray  # (M, K)
    drive: dict = field(default_factory=dict)  # subject -> (M, K), SAMBA's neural drive
    ridge_by_subject: dict = field(default_factory=dict)  # subject -> (M, K)


def _fit_and_predict(train, held_out, config):
    """SAMBA and the ridge trained on ``train`` segments; ``held_out`` predicted."""
    from ..model.baselines import fit_ridge_baseline
    from ..training import concatenate_runs, fit_samba, predict_run

    features, target, split = concatenate_runs(_training_runs(train, config))
    reference = train[0]
    fit = fit_samba(features, target, split, reference.parcels.centroids_mm,
                    reference.atlas.centroids_mm, config, tr_s=reference.tr_s)
    ridge = fit_ridge_baseline(features, target, split, tr_s=reference.tr_s,
                               hrf_support_s=config.hrf_support_s)
    if held_out is None:
        return fit, None
    inputs = dict(held_out.features)
    if config.stimulus_features == "average":
        inputs = {"average": np.mean(list(held_out.features.values()), axis=0), **inputs}
    predicted, drive, ridged = {}, {}, {}
    for subject, f in inputs.items():
        predicted[subject], drive[subject] = predict_run(
            fit.model, f, history=split.history, window_trs=fit.window_trs,
            return_drive=True)
        ridged[subject] = ridge.predict(f)
    if config.stimulus_features == "average":
        samba, ridge_mean = predicted.pop("average"), ridged.pop("average")
        drive.pop("average")
    else:
        samba = np.mean(list(predicted.values()), axis=0)
        ridge_mean = np.mean(list(ridged.values()), axis=0)
    return fit, SegmentPrediction(samba=samba, ridge=ridge_mean, drive=drive,
                                  ridge_by_subject=ridged)


def score_segment(prediction: SegmentPrediction, prepared: PreparedSegment) -> tuple:
    """Per-parcel and headline scores of a held-out segment.

    Returns
    -------
    metrics : pandas.DataFrame
        One row per BOLD parcel: ``parcel``, ``pearson_r``, ``spearman_rho``,
        ``ridge_pearson_r``, ``isc`` (leave-one-out), ``ceiling_r``.
    summary : dict
    """
    from ..metrics import (
        group_mean_ceiling,
        intersubject_correlation,
        parcel_metrics,
        pooled_spearman,
        windowed_pooled_spearman,
    )

    volumes = np.arange(prepared.n_volumes)
    names = prepared.atlas.names
    metrics = parcel_metrics(prediction.samba, prepared.target, volumes, names)
    ridge = parcel_metrics(prediction.ridge, prepared.target, volumes, names)
    metrics["ridge_pearson_r"] = ridge["pearson_r"].to_numpy()
    if len(prepared.bold) > 1:
        loo, pairwise = intersubject_correlation(np.stack(list(prepared.bold.values())))
        metrics["isc"] = loo
        metrics["ceiling_r"] = group_mean_ceiling(pairwise, len(prepared.bold))
    else:
        metrics["isc"] = metrics["ceiling_r"] = np.nan
    summary = {"segment": prepared.segment.stimulus, "run": prepared.segment.run,
               "n_volumes": int(prepared.n_volumes),
               "n_ephys_participants": len(prepared.features),
               "n_bold_participants": len(prepared.bold),
               "median_pearson_r": float(metrics["pearson_r"].median()),
               "ridge_median_pearson_r": float(metrics["ridge_pearson_r"].median()),
               "pooled_spearman": pooled_spearman(prediction.samba, prepared.target, volumes),
               "ridge_pooled_spearman": pooled_spearman(prediction.ridge, prepared.target,
                                                        volumes),
               "median_isc": float(np.nanmedian(metrics["isc"])) if len(prepared.bold) > 1
               else np.nan,
               "median_ceiling_r": float(np.nanmedian(metrics["ceiling_r"]))
               if len(prepared.bold) > 1 else np.nan}
    for seconds in SPEARMAN_WINDOWS_S:
        window = int(round(seconds / prepared.tr_s))
        tag = f"{seconds:g}s"
        summary[f"pooled_spearman_{tag}"] = windowed_pooled_spearman(
            prediction.samba, prepared.target, volumes, window)
        summary[f"ridge_pooled_spearman_{tag}"] = windowed_pooled_spearman(
            prediction.ridge, prepared.target, volumes, window)
    return metrics, summary


@dataclass
class StimulusResult:
    """What :func:`run_stimulus_translation` computed, before anything is written."""

    design: object
    segments: list  # PreparedSegment
    predictions: list  # SegmentPrediction, same order
    metrics: list  # per-parcel frames, same order
    summaries: pd.DataFrame
    final: object  # FitResult of the model trained on every segment
    config: Config = None
    seconds: float = 0.0
    decoding: pd.DataFrame | None = None  # decoding_table, when computed
    warnings: list = field(default_factory=list)


def run_stimulus_translation(config: Config) -> StimulusResult:
    """Pair, prepare (:func:`prepare_design`), cross-validate by segment and fit the final
    model (:func:`cross_validate_segments`); writes nothing.

    Raises
    ------
    UsageError
        With fewer than two segments (cross-validation holds each out once).
    EmptySelectionError
        If no stimulus is shown in both kinds of runs.
    DataError
        If a run does not cover its stimulus or the BOLD runs differ in TR.
    """
    start = time.time()
    design, segments = prepare_design(config)
    result = cross_validate_segments(design, segments, config)
    result.seconds = time.time() - start
    return result


def prepare_design(config: Config) -> tuple:
    """The stimulus design of BIDS_DIR and every segment prepared (:func:`prepare_segment`).

    Returns
    -------
    design : samba_bids.bids.stimulus.StimulusDesign
    segments : list of PreparedSegment

    Raises
    ------
    As :func:`run_stimulus_translation`.
    """
    from ..bids.layout import default_derivatives, index_dataset
    from ..bids.stimulus import collect_stimulus_design
    from ..templates.locate import find_templates_dir

    derivatives = config.derivatives or default_derivatives(config.bids_dir, config.output_dir)
    work_dir = config.resolved_work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    layout = index_dataset(config.bids_dir, derivatives, work_dir)
    design = collect_stimulus_design(
        layout, participant_label=config.participant_label,
        session_label=config.session_label, task_label=config.task_label,
        modality=config.modality, bold_space=config.bold_space,
        stimulus_event=config.stimulus_event)
    if len(design.segments) < 2:
        raise UsageError(
            f"--pairing stimulus found one stimulus ({design.segments[0].label}); "
            "cross-validation by stimulus segment needs at least two (for example the runs "
            "of a film cut into segments, each with its own stim_file).")
    templates_dir = find_templates_dir(config.templates_dir)
    return design, [prepare_segment(s, config, templates_dir) for s in design.segments]


def cross_validate_segments(design, segments, config: Config) -> StimulusResult:
    """Each segment predicted by SAMBA and the ridge trained on the others, scored
    (:func:`score_segment`); the final model on every segment; the decoding
    (:func:`decode_segments`). ``config.stimulus_features`` chooses the training runs."""
    predictions, metrics, rows = [], [], []
    for index, held_out in enumerate(segments):
        train = [s for j, s in enumerate(segments) if j != index]
        logger.info("stimulus fold %d of %d: %s held out", index + 1, len(segments),
                    held_out.segment.label)
        _, prediction = _fit_and_predict(train, held_out, config)
        frame, summary = score_segment(prediction, held_out)
        predictions.append(prediction)
        metrics.append(frame)
        rows.append({"fold": index + 1, **summary})
    final, _ = _fit_and_predict(segments, None, config)
    result = StimulusResult(design=design, segments=segments, predictions=predictions,
                            metrics=metrics, summaries=pd.DataFrame(rows), final=final,
                            config=config)
    result.decoding = decode_segments(result, seed=config.seed)
    return result


def decoding_inputs(result: StimulusResult) -> dict:
    """Per feature set, the series of every (participant, segment) to decode the segment from.

    ``samba_latent``: SAMBA's neural drive per BOLD parcel (before the HRF), from the fold
    that held the segment out; ``band_power``: the log band power per source parcel and band;
    ``ridge_prediction``: the ridge's held-out prediction; ``observed_bold``: the BOLD
    participants' z-scored BOLD. Returns ``{name: [(series (F, K), segment, participant)]}``.
    """
    sets = {"samba_latent": [], "band_power": [], "ridge_prediction": [], "observed_bold": []}
    for index, (prepared, prediction) in enumerate(zip(result.segments, result.predictions)):
        for subject, features in prepared.features.items():
            power = features[..., 0]  # (N, K, n_bands): log mean power
            sets["band_power"].append((power.transpose(0, 2, 1).reshape(-1, power.shape[1]),
                                       index, subject))
            sets["samba_latent"].append((prediction.drive[subject], index, subject))
            sets["ridge_prediction"].append((prediction.ridge_by_subject[subject], index,
                                             subject))
        for subject, bold in prepared.bold.items():
            sets["observed_bold"].append((bold, index, subject))
    return sets


def decode_segments(result: StimulusResult, *, seed=0) -> pd.DataFrame | None:
    """Which segment, and which window of the film, is a 30-s window from?

    Each participant's series of each segment is cut into consecutive windows of
    :data:`DECODING_WINDOW_S` (the mean per feature); for each feature set of
    :func:`decoding_inputs`, two classifiers are cross-validated leave-one-participant-out
    (trained on the other participants' windows) with
    :func:`~samba_bids.decoding.decode_stimulus`:

    * ``target = "segment"``: which segment, by a logistic regression (the issue's and the
      paper's question). The BOLD of every run is centred (detrended), so when the windows
      tile a segment its windows' mean is zero in every segment: a linear classifier of the
      segment from observed BOLD has nothing to use and scores chance by construction, while
      series that keep a level (band power, SAMBA's drive, the ridge's prediction) can differ
      in their segment means.
    * ``target = "window"``: which window of the film (chance ``1 / n_windows``), by
      :class:`~samba_bids.decoding.TemplateMatcher` (between-subject time-segment
      classification, Haxby et al. 2011): it matches patterns, not levels, and so treats
      every feature set alike. Its permutation shuffles the window labels within each
      participant.

    A feature set with fewer than two participants is left out (logged). Returns
    :func:`~samba_bids.decoding.decoding_table` with a ``target`` column after
    ``feature_set``, or None when nothing could be decoded.
    """
    from ..decoding import (
        TemplateMatcher,
        decode_stimulus,
        decoding_table,
        window_features,
    )

    tr_s = result.segments[0].tr_s
    window = max(1, int(round(DECODING_WINDOW_S / tr_s)))
    tables = []
    for target in DECODING_TARGETS:
        results = {}
        for name, items in decoding_inputs(result).items():
            X, labels, groups = [], [], []
            for series, segment, subject in items:
                if series.shape[1] < window:
                    continue
                windows, _ = window_features(np.nan_to_num(series), window)
                X.append(windows)
                stimulus = result.segments[segment].segment.stimulus
                labels += ([stimulus] * len(windows) if target == "segment" else
                           [f"{stimulus}#{k:04d}" for k in range(len(windows))])
                groups += [subject] * len(windows)
            try:
                results[name] = decode_stimulus(
                    np.concatenate(X), labels, groups, n_permutations=DECODING_PERMUTATIONS,
                    seed=seed, classifier=None if target == "segment" else TemplateMatcher())
            except ValueError as err:  # fewer than two participants or segments, ...
                logger.warning("stimulus decoding (%s) from %s left out: %s", target,
                               name.replace("_", " "), err)
        if results:
            table = decoding_table(results)
            table.insert(1, "target", target)
            tables.append(table)
    return pd.concat(tables, ignore_index=True) if tables else None


def stimulus_config(config: Config) -> Config:
    """``config`` for the stimulus group level: the participant level's defaults, no
    participant outputs needed (nothing is read from OUTPUT_DIR)."""
    return dataclasses.replace(config, analysis_level="group", pairing="stimulus")
