"""Stimulus decoding at the participant level: which stimulus was shown in this window?

The SAMBA paper classifies the film a person watched from SAMBA's latent space. The group
level does this across people (:func:`~.stimulus.decode_segments`); here it is done within a
participant, across that participant's runs, when their events name stimuli (rows with a
``stim_file``, or the ``trial_type`` given with ``--stimulus-event``; several per run
allowed, such as film clips):

1. Each stimulus event of a run is cut into consecutive windows of
   :data:`~.stimulus.DECODING_WINDOW_S` (whole volumes inside the event; a row without a
   duration lasts until the next stimulus or the end of the run); a window's label is the
   stimulus. The windows of the BOLD-domain series (observed BOLD, the ridge's prediction)
   start :data:`HEMODYNAMIC_LAG_S` later, the delay of the BOLD response; those of the
   series before the HRF (SAMBA's neural drive, the band power) do not.
2. Per feature set (SAMBA's neural drive per BOLD parcel from the fold that held the run
   out, the log band power per source parcel and band, the ridge's held-out prediction, the
   observed BOLD), two classifiers are cross-validated leave-one-run-out on the window
   means (:func:`~samba_bids.decoding.decode_stimulus`: accuracy, Clopper-Pearson interval,
   chance, block-permutation p-value), as at the group level
   (:func:`~.stimulus.decode_segments`): ``target = "segment"``, which stimulus, by a
   logistic regression; ``target = "window"``, which window of which stimulus (the k-th
   window of an event), by correlation with the other runs' mean pattern of each window
   (:class:`~samba_bids.decoding.TemplateMatcher`).

It needs cross-validation by run (the held-out predictions) and every stimulus shown in at
least two runs; otherwise it is left out with the reason logged.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

#: Delay of the BOLD response the BOLD-domain windows are shifted by, s (the canonical HRF
#: peaks about 5 s after a brief stimulus; Friston et al. 1998, NeuroImage 7:30).
HEMODYNAMIC_LAG_S = 5.0
#: Feature sets decoded, and whether each is in the BOLD domain (windows shifted by the lag).
FEATURE_SETS = {"samba_latent": False, "band_power": False, "ridge_prediction": True,
                "observed_bold": True}


def event_windows(events, n_volumes: int, tr_s: float, window_volumes: int, *,
                  lag_volumes: int = 0) -> list:
    """The windows of whole volumes inside each stimulus event of a run.

    Parameters
    ----------
    events : list of samba_bids.bids.stimulus.StimulusEvent
        The run's stimulus events; onsets in s from the start of the first volume's
        acquisition (the BIDS convention for ``func`` events). A duration of None lasts until
        the next event's onset, or the run's end.
    n_volumes : int
        Volumes of the run.
    tr_s : float
        Repetition time, s: volume ``v`` spans ``[v * tr_s, (v + 1) * tr_s)``.
    window_volumes : int
        Volumes per window.
    lag_volumes : int
        Volumes every window is shifted by (the hemodynamic delay of BOLD-domain series).

    Returns
    -------
    list of (int, str)
        ``(first volume, stimulus)`` of each window, in time order; windows that the lag
        would push past the run's end are dropped.

    Raises
    ------
    ValueError
        If ``tr_s`` or ``window_volumes`` is not positive.
    """
    if tr_s <= 0 or window_volumes < 1:
        raise ValueError(f"tr_s and window_volumes must be positive; got {tr_s}, "
                         f"{window_volumes}.")
    ordered = sorted(events, key=lambda e: e.onset_s)
    windows = []
    for index, event in enumerate(ordered):
        end_s = (event.onset_s + event.duration_s if event.duration_s is not None else
                 ordered[index + 1].onset_s if index + 1 < len(ordered) else n_volumes * tr_s)
        first = max(0, math.ceil(event.onset_s / tr_s - 1e-9))
        stop = min(n_volumes, math.floor(end_s / tr_s + 1e-9))
        for start in range(first, stop - window_volumes + 1, window_volumes):
            if start + lag_volumes + window_volumes <= n_volumes:
                windows.append((start + lag_volumes, event.stimulus))
    return windows


def decode_runs(series: dict, events: dict, tr_s: float, *, window_s: float,
                n_permutations: int, seed=0) -> pd.DataFrame | None:
    """Decode the stimulus of each window, leave-one-run-out, for each feature set.

    Parameters
    ----------
    series : dict
        Feature set name (keys of :data:`FEATURE_SETS`) -> ``{run label: array (F, V)}``,
        one value per feature and volume.
    events : dict
        Run label -> list of :class:`~samba_bids.bids.stimulus.StimulusEvent`; runs absent
        here are left out.
    tr_s : float
        Repetition time, s.
    window_s : float
        Window length, s (rounded to whole volumes).
    n_permutations : int
        Label permutations for the p-value.
    seed : int

    Returns
    -------
    pandas.DataFrame or None
        :func:`~samba_bids.decoding.decoding_table` with a ``target`` column (``segment``
        rows, then ``window`` rows); None when nothing could be decoded (the reason is
        logged: fewer than two runs or stimuli, a stimulus in one run only).
    """
    from ..decoding import TemplateMatcher, decode_stimulus, decoding_table
    from .stimulus import DECODING_TARGETS

    window = max(1, int(round(window_s / tr_s)))
    lag = int(round(HEMODYNAMIC_LAG_S / tr_s))
    tables = []
    for target in DECODING_TARGETS:
        results = {}
        for name, by_run in series.items():
            X, labels, groups = _windows(by_run, events, tr_s, window,
                                         lag if FEATURE_SETS.get(name, False) else 0, target)
            if not X:
                logger.info("stimulus decoding from %s: no window of %g s fits inside a "
                            "stimulus event; left out.", name.replace("_", " "), window * tr_s)
                continue
            try:
                results[name] = decode_stimulus(
                    np.asarray(X), labels, groups, n_permutations=n_permutations, seed=seed,
                    classifier=None if target == "segment" else TemplateMatcher())
            except ValueError as err:  # one run or stimulus; a stimulus in one run only
                logger.info("stimulus decoding (%s) from %s left out: %s", target,
                            name.replace("_", " "), err)
        if results:
            table = decoding_table(results)
            table.insert(1, "target", target)
            tables.append(table)
    return pd.concat(tables, ignore_index=True) if tables else None


def _windows(by_run, events, tr_s, window, lag, target):
    """Window means, labels (the stimulus, or ``stimulus#k`` for the k-th window of an
    event) and groups (runs) of :func:`decode_runs`."""
    X, labels, groups = [], [], []
    for label, values in by_run.items():
        if label not in events:
            continue
        values = np.nan_to_num(np.asarray(values, dtype=float))
        previous, k = None, 0
        for start, stimulus in event_windows(events[label], values.shape[1], tr_s, window,
                                             lag_volumes=lag):
            k = k + 1 if previous == (stimulus, start - window) else 0
            previous = (stimulus, start)
            X.append(values[:, start:start + window].mean(axis=1))  # window mean
            labels.append(stimulus if target == "segment" else f"{stimulus}#{k:04d}")
            groups.append(label)
    return X, labels, groups


def run_stimulus_events(layout, pairs, *, stimulus_event=None) -> dict:
    """Run label -> its stimulus events, for the runs whose ``events.tsv`` names stimuli.

    Parameters
    ----------
    layout : bids.BIDSLayout
    pairs : list of samba_bids.bids.layout.RunPair
    stimulus_event : str, optional
        As :func:`~samba_bids.bids.stimulus.read_stimulus_events`.

    Returns
    -------
    dict
        Only runs with at least one stimulus event in the BOLD run's ``func`` events (onsets
        from the first volume; the recording's own events are on its clock, not read here).
    """
    from ..bids.stimulus import find_events_file, read_stimulus_events

    found = {}
    for pair in pairs:
        path = find_events_file(layout, pair.entities, "func")
        events = (read_stimulus_events(path, stimulus_event=stimulus_event)
                  if path is not None else "no events.tsv")
        if not isinstance(events, str):
            found[pair.label] = events
    return found


def participant_decoding(fit, events: dict, config) -> pd.DataFrame | None:
    """Stimulus decoding from a participant model's held-out runs (:func:`decode_runs`).

    Parameters
    ----------
    fit : samba_bids.workflows.participant_model.ParticipantFit
        Cross-validated by run (``fit.cv == "runs"``); with ``"blocks"`` nothing is decoded
        (logged): only each run's test block would be out of sample.
    events : dict
        :func:`run_stimulus_events`.
    config : Config
        ``seed``.

    Returns
    -------
    pandas.DataFrame or None
        :func:`~samba_bids.decoding.decoding_table`, or None (logged why).
    """
    from ..training import predict_run
    from .stimulus import DECODING_PERMUTATIONS, DECODING_WINDOW_S

    if not events:
        return None
    if fit.cv != "runs":
        logger.info("stimulus decoding needs cross-validation by run (held-out runs); "
                    "with --cv blocks it is left out.")
        return None
    series = {name: {} for name in FEATURE_SETS}
    for run in fit.scored:
        if run.pair.label not in events:
            continue
        model, features = run.scores.fit, run.inputs.features
        _, drive = predict_run(model.model, features, history=int(model.model.history),
                               window_trs=model.window_trs, device=model.device,
                               return_drive=True)
        power = features[..., 0]  # (N, V, n_bands): log mean power
        series["samba_latent"][run.pair.label] = drive
        series["band_power"][run.pair.label] = (power.transpose(0, 2, 1)
                                                .reshape(-1, power.shape[1]))
        series["ridge_prediction"][run.pair.label] = run.scores.ridge_predicted
        series["observed_bold"][run.pair.label] = run.inputs.observed
    tr_s = fit.scored[0].inputs.tr_s
    return decode_runs(series, events, tr_s, window_s=DECODING_WINDOW_S,
                       n_permutations=DECODING_PERMUTATIONS, seed=config.seed)


def write_participant_decoding(participant, fit, table: pd.DataFrame, events: dict,
                               config, commons: dict):
    """``sub-<label>/func/sub-<label>_<atlas>_desc-decoding_metrics.tsv`` and its sidecar.

    Parameters
    ----------
    participant : samba_bids.bids.layout.ParticipantRuns
    fit : samba_bids.workflows.participant_model.ParticipantFit
    table : pandas.DataFrame
        :func:`participant_decoding`.
    events : dict
        :func:`run_stimulus_events` (the sidecar lists each run's stimuli and events file).
    config : Config
    commons : dict
        Run label -> the sidecar entries of that run's files (``Sources``).

    Returns
    -------
    pathlib.Path
    """
    from ..bids.derivatives import write_output
    from ..decoding import decoding_column_docs
    from .outputs import ATLAS, SEG
    from .participant_model import participant_entities
    from .stimulus import DECODING_WINDOW_S, TARGET_DOC

    labels = [run.pair.label for run in fit.scored if run.pair.label in events]
    sources = [uri for label in labels for uri in commons[label]["Sources"]]
    entities = participant_entities(participant, fit.scored[0].pair)
    tasks = {run.pair.entities.get("task") for run in fit.scored}
    if len(tasks) == 1:
        entities["task"] = tasks.pop()
    return write_output(
        config.output_dir, "decoding", entities, table, sources=sources, atlas=ATLAS, seg=SEG,
        scale=config.bold_atlas_scale, parameters={
            "Description": f"Which stimulus (target segment), and which window of which "
                           f"stimulus (target window), does a {DECODING_WINDOW_S:g}-s window "
                           "of a held-out run show? Logistic regression (scikit-learn, "
                           "standardised features) on the window means, or correlation with "
                           "the other runs' mean pattern of each window; cross-validated "
                           "leave-one-run-out over the participant's runs; permutation null: "
                           "labels shuffled between blocks of windows within each run.",
            "WindowLength": DECODING_WINDOW_S,
            "HemodynamicLag": HEMODYNAMIC_LAG_S,
            "FeatureSets": {
                "samba_latent": "SAMBA's neural drive per BOLD parcel (before the HRF), from "
                                "the fold that did not train on the run",
                "band_power": "log band power per source parcel and wavelet band",
                "ridge_prediction": "the ridge's prediction per BOLD parcel, from the fold "
                                    "that did not train on the run (windows shifted by "
                                    "HemodynamicLag)",
                "observed_bold": "the run's z-scored parcel BOLD (windows shifted by "
                                 "HemodynamicLag)"},
            "Stimuli": {label: [{"stimulus": e.stimulus, "onset": e.onset_s,
                                 "duration": e.duration_s} for e in events[label]]
                        for label in labels},
            "StimulusEvent": config.stimulus_event or "rows with a stim_file",
            "target": TARGET_DOC, **decoding_column_docs()})
