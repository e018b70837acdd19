"""A stimulus-locked simulated dataset: MEG (or EEG) of some people, fMRI of others, one film.

SAMBA's MEG-fMRI setting translates the electrophysiology recorded in some people into the
BOLD recorded in *other* people who watched the same film, aligned by film time only.
:func:`simulate_stimulus_locked_dataset` writes such a dataset with a known ground truth.

* One film of ``n_segments`` segments; segment ``s`` is run ``s`` of task :data:`STIMULUS_TASK`
  in every participant, its stimulus file :func:`stim_file` (not written).
* Electrophysiology participants ``sub-01`` .. ``sub-<A>``: raw EEG (BrainVision) or MEG (FIF)
  only. The recording of a segment starts a lead drawn uniform in :data:`EPHYS_LEAD_S` (on a
  sample) before the segment and ends :data:`EPHYS_TAIL_S` after it; its ``_events.tsv`` holds
  one ``film`` event (onset on the recording clock, duration, ``stim_file``); no scanner, so
  no ``Volume`` events.
* fMRI participants ``sub-<A+1>`` .. ``sub-<A+B>``: preprocessed BOLD in
  ``derivatives/preproc`` (as :func:`~samba_bids.simulate.simulate_dataset` writes it) and, in
  the raw dataset, only ``func/<prefix>_events.tsv`` (the ``film`` event, onset from the first
  volume's acquisition start) and ``func/<prefix>_bold.json`` (no raw image). The first
  volume precedes the segment by a lead drawn uniform in :data:`BOLD_LEAD_S` (any real
  number, not a multiple of the TR); the run ends at least :data:`BOLD_TAIL_S` after the
  segment: ``n_volumes = ceil((lead + segment + BOLD_TAIL_S) / TR)``.

Generative model: everybody shares the planted HRFs and mixing (those of
:func:`~samba_bids.simulate.simulate_dataset` for the same seed). Each participant's source
activity on its own clock (with :data:`~samba_bids.simulate.LEAD_IN_S` of lead-in) is that of
:func:`~samba_bids.simulate.simulate_parcel_activity`, except that while the film plays the
slow log-envelope of every parcel and band is ``sqrt(1 - a) * own + sqrt(a) * stimulus``
(``a = stimulus_share``); outside the film the stimulus part is an independent own draw of the
same kind. The *stimulus envelope* of a segment (:func:`stimulus_envelopes`: Gaussian-spectrum
processes with network group coupling, on the :data:`~samba_bids.simulate.DRIVE_STEP_S` grid
of film time) depends on the seed and the segment only: everybody sees the same film. The
fMRI participants' (unrecorded) activity becomes BOLD through the planted mixing and HRFs
exactly as in :func:`~samba_bids.simulate.simulate_dataset`.

Ground truth (``derivatives/truth``): per participant and run the truth of
:func:`~samba_bids.simulate.simulate_dataset` (fMRI participants: noiseless and noisy BOLD,
noise ceiling, HRFs, mixing, parameters; electrophysiology participants: the parameters
only, in ``<modality>/``), and at the dataset level the *stimulus-driven BOLD* of every
segment (:func:`stimulus_bold`), the target a group model should predict:
``task-film_run-<s>_desc-stimulus_timeseries.tsv`` (one column per BOLD parcel, one row per
film-time volume ``k``, sampled at film time ``k * TR + TR / 2``) with its JSON sidecar, and
``task-film_desc-stimulus_parameters.json``.

Random streams: ``numpy.random.default_rng([seed, index, stream, 0, s])`` for participant
``index`` (from 1) in run ``s``, with the streams of :mod:`samba_bids.simulate.dataset` (0
activity, 1 sensor noise, 2 BOLD noise, 3 image noise, 4 confounds) and
:data:`STREAM_LEAD` (the lead); ``[seed, 0, STREAM_STIMULUS, 0, s]`` the stimulus envelope of
segment ``s``; ``[seed, 0, 0]`` the planted HRFs and mixing.

About 790 lines: the argument checks, the film (stimulus envelopes), the two kinds of
participant (recording only, BOLD only), the stimulus-driven truth with its derivation, and
the truth JSON of each meet here; the physics is reused from the other modules. If it grows,
the truth writers (``_write_stimulus_truth`` and the parameters JSON) are the part to move
next to :mod:`.bids_writer`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..bids.derivatives import write_json
from ..errors import UsageError
from .bids_writer import (
    VERTEX_NOISE_FRACTION,
    write_bold_images,
    write_confounds,
    write_dataset_descriptions,
    write_ephys,
    write_truth,
)
from .dataset import (
    EPHYS_SUBJECT,
    LEAD_IN_S,
    TAIL_S,
    RunPlan,
    _band_power_per_volume,
    _check_arguments,
    _plan,
    _run_rng,
    _simulate_bold,
    _Simulation,
)
from .hemodynamics import (
    BOLD_GAIN,
    DEFAULT_SNR,
    HRF_SUPPORT_S,
    ParcelBold,
    expected_noise_ceiling,
)
from .sensors import project_to_sensors
from .sources import (
    _STREAM_ACTIVITY,
    _STREAM_BOLD,
    _STREAM_CONFOUNDS,
    _STREAM_IMAGE,
    _STREAM_SENSOR,
    BANDS,
    DRIVE_STEP_S,
    ENVELOPE_GROUP_COUPLING,
    ENVELOPE_LOG_SD,
    ENVELOPE_TIMESCALE_S,
    ParcelActivity,
    _band_mask,
    band_log_power,
    coarse_grid_size,
    network_groups,
    simulate_parcel_activity,
    slow_log_envelopes,
    source_model_parameters,
)

logger = logging.getLogger(__name__)

#: BIDS task label of the film.
STIMULUS_TASK = "film"
#: ``trial_type`` of the film segment's event.
FILM_EVENT = "film"
#: Lead of an electrophysiology recording before its film segment, range of the uniform draw, s.
EPHYS_LEAD_S = (2.0, 8.0)
#: Recording kept after the film segment ends (electrophysiology), s.
EPHYS_TAIL_S = 2.0
#: Lead of a BOLD run's first volume before its film segment, range of the uniform draw, s.
BOLD_LEAD_S = (4.0, 12.0)
#: BOLD acquired at least this long after the film segment ends, s.
BOLD_TAIL_S = 10.0
#: Random stream of the leads (per participant and run).
STREAM_LEAD = 7
#: Random stream of the stimulus envelope (subject index 0, per segment).
STREAM_STIMULUS = 8


def stim_file(segment: int) -> str:
    """Stimulus file name of film segment ``segment`` (from 1): ``film_seg-<segment>.mp4``."""
    return f"film_seg-{int(segment)}.mp4"


def _film_run(segment: int, *, has_bold: bool) -> RunPlan:
    """Run ``segment`` of task :data:`STIMULUS_TASK` (the run entity is always written)."""
    return RunPlan(session=None, run=str(int(segment)), has_bold=has_bold, task=STIMULUS_TASK)


def _stimulus_rng(seed: int, segment: int) -> np.random.Generator:
    """The stream of the stimulus envelope of one segment: seed and segment only."""
    return np.random.default_rng([int(seed), 0, STREAM_STIMULUS, 0, int(segment)])


def stimulus_envelopes(seed: int, segment: int, source_names, duration_s: float) -> np.ndarray:
    """The stimulus envelope of one film segment, shared by every participant.

    The construction of each person's own slow log-envelopes
    (:func:`~samba_bids.simulate.sources.slow_log_envelopes`): per source parcel and band a
    Gaussian-spectrum process with a correlation time drawn uniform in
    :data:`~samba_bids.simulate.ENVELOPE_TIMESCALE_S`, mixed with its network's process
    (:data:`~samba_bids.simulate.ENVELOPE_GROUP_COUPLING`), all from
    ``default_rng([seed, 0, STREAM_STIMULUS, 0, segment])``.

    Parameters
    ----------
    seed : int
        Dataset seed.
    segment : int
        Film segment, from 1.
    source_names : list of str
        Schaefer 2018 names of the source parcels (their networks group them).
    duration_s : float
        Length of the segment, s.

    Returns
    -------
    ndarray, shape (n_parcels, n_bands, n_steps)
        Unit-variance envelope at film times ``j * DRIVE_STEP_S``, ``j = 0 .. n_steps - 1``,
        ``n_steps = ceil(duration_s / DRIVE_STEP_S) + 2``; bands in :data:`BANDS` order.
    """
    rng = _stimulus_rng(seed, segment)
    n_steps = int(np.ceil(duration_s / DRIVE_STEP_S - 1e-9)) + 2
    timescale = rng.uniform(*ENVELOPE_TIMESCALE_S, (len(source_names), len(BANDS)))
    return slow_log_envelopes(timescale, n_steps, rng, groups=network_groups(source_names),
                              group_coupling=ENVELOPE_GROUP_COUPLING)


@dataclass
class _Film:
    """The film: segment length, stimulus share and the stimulus envelope of each segment."""

    n_segments: int
    duration_s: float
    share: float
    envelopes: list  # per segment, (N, n_bands, n_steps) on film time j * DRIVE_STEP_S


def _film_activity(sim: _Simulation, film: _Film, index: int, segment: int,
                   onset_s: float, n_times: int) -> ParcelActivity:
    """Source activity of participant ``index`` in run ``segment``, from its lead-in's start.

    The film starts ``onset_s`` after the first sample (lead-in included); the stimulus
    envelope weighs in on the coarse points where the film plays.
    """
    n_coarse = coarse_grid_size(n_times, sim.sfreq_hz)
    t_film = np.arange(n_coarse) * DRIVE_STEP_S - onset_s
    playing = ((t_film >= 0) & (t_film < film.duration_s)).astype(float)
    envelope = film.envelopes[segment - 1]
    # linear interpolation on the uniform film-time grid (clipped outside, where weight is 0)
    position = np.clip(t_film / DRIVE_STEP_S, 0.0, envelope.shape[-1] - 1.0)
    lower = np.minimum(np.floor(position).astype(int), envelope.shape[-1] - 2)
    frac = position - lower
    shared = envelope[..., lower] * (1.0 - frac) + envelope[..., lower + 1] * frac
    return simulate_parcel_activity(
        len(sim.source_names), n_times, sim.sfreq_hz,
        _run_rng(sim.seed, index, _STREAM_ACTIVITY, _film_run(segment, has_bold=False)),
        groups=network_groups(sim.source_names), group_coupling=ENVELOPE_GROUP_COUPLING,
        shared_slow=shared, shared_weight=playing, shared_share=film.share,
    )


def _band_fraction(amplitude, exponent, sfreq_hz: float, df_hz: float = 0.05) -> np.ndarray:
    """Share of each band's analysed power carried by its band component (mean envelope).

    ``rho = A**2 q / (A**2 q + b)``: ``A`` the component's RMS amplitude, ``q`` the share of
    its (band-masked, unit-variance) power that the analysis mask of
    :func:`~samba_bids.simulate.band_log_power` keeps, ``b`` the share of the unit-variance
    1/f background's power (``max(f, 1) ** -beta``) inside that mask; spectra on a
    ``df_hz`` grid up to Nyquist.

    Returns
    -------
    ndarray, shape (n_parcels, n_bands)
    """
    freqs = np.arange(1, int(sfreq_hz / 2 / df_hz) + 1) * df_hz
    background = np.maximum(freqs, 1.0)[None] ** (-np.asarray(exponent, float)[:, None])
    background /= background.sum(axis=1, keepdims=True)
    out = np.empty(np.shape(amplitude))
    for k, (low, high) in enumerate(BANDS.values()):
        mask = _band_mask(freqs, low, high) ** 2  # power gain of the FFT mask
        kept = (mask**2).sum() / mask.sum()
        band = np.asarray(amplitude, float)[:, k] ** 2 * kept
        out[:, k] = band / (band + background @ mask)
    return out


def _stimulus_gain(activity: ParcelActivity, logpow, share: float) -> np.ndarray:
    """Stimulus envelope -> z-scored log band power, per parcel and band (first order).

    See :func:`stimulus_bold` for the derivation: ``2 rho ENVELOPE_LOG_SD sqrt(share) / sd``.

    Returns
    -------
    ndarray, shape (n_parcels, n_bands)
    """
    rho = _band_fraction(activity.band_amplitude, activity.background_exponent,
                         activity.sfreq_hz)
    return 2.0 * rho * ENVELOPE_LOG_SD * np.sqrt(share) / logpow.std(axis=-1)


def stimulus_bold(envelope, gain, weights, kernels, tr_s: float,
                  duration_s: float) -> np.ndarray:
    """Stimulus-driven parcel BOLD of one film segment, on film time.

    Derivation. A band component of a parcel is ``A exp(x(t)) carrier(t)``, with log
    amplitude ``x = ENVELOPE_LOG_SD * slow - ENVELOPE_LOG_SD**2`` and, while the film plays,
    ``slow = sqrt(1 - a) own + sqrt(a) stimulus`` (``a``: the stimulus share). The band power
    that :func:`~samba_bids.simulate.band_log_power` measures is about ``A**2 q exp(2 x) + b``
    (``q``: the component's power kept by the band mask, ``b``: the 1/f background's), so its
    log is ``2 x + const`` where the component dominates and, to first order around
    ``E[exp(2 x)] = 1``, ``2 rho x + const`` in general (``rho = A**2 q / (A**2 q + b)``).
    The stimulus part of the log band power is therefore
    ``2 rho ENVELOPE_LOG_SD sqrt(a) stimulus(t)``, and of the z-scored log band power that
    drives the BOLD, the same divided by the log band power's standard deviation over the
    run: ``gain * stimulus(t)``. The stimulus-driven BOLD is the planted mixing and HRFs
    applied to it, with a zero drive before the film starts:
    ``BOLD_GAIN * sum_{n,k} W[m, n, k] gain[n, k] (h_m * stimulus[n, k])(t)``. (The slope of
    the simulated log power on ``2 rho x`` is about 0.8-0.9 rather than 1: the log of the
    fluctuating power in 0.1 s bins; a factor common to the bands, which no correlation sees.)

    Parameters
    ----------
    envelope : ndarray, shape (N, n_bands, n_steps)
        The segment's stimulus envelope at film times ``j * DRIVE_STEP_S``
        (:func:`stimulus_envelopes`).
    gain : ndarray, shape (N, n_bands)
        Stimulus envelope -> z-scored log band power (the dataset uses the mean over its fMRI
        participants in the segment).
    weights : ndarray, shape (M, N, n_bands)
        Planted mixing weights.
    kernels : ndarray, shape (M, K + 1)
        Planted HRFs on the :data:`DRIVE_STEP_S` grid, unit sum.
    tr_s : float
        Repetition time, s.
    duration_s : float
        Length of the segment, s.

    Returns
    -------
    ndarray, shape (floor(duration_s / tr_s), M)
        Percent signal change at film times ``k * tr_s + tr_s / 2``.
    """
    from scipy.signal import fftconvolve

    drive = np.einsum("mnk,nk,nkt->mt", weights, gain, envelope)  # (M, n_steps)
    response = BOLD_GAIN * fftconvolve(drive, kernels, axes=-1)[:, : drive.shape[1]]
    t_steps = np.arange(drive.shape[1]) * DRIVE_STEP_S
    n_samples = int(np.floor(duration_s / tr_s + 1e-9))
    t_samples = np.arange(n_samples) * tr_s + tr_s / 2.0
    return np.stack([np.interp(t_samples, t_steps, row) for row in response], axis=1)


# --------------------------------------------------------------------------------------------
# The dataset


def simulate_stimulus_locked_dataset(
    root,
    templates_dir,
    *,
    n_ephys_subjects: int = 8,
    n_bold_subjects: int = 8,
    n_segments: int = 4,
    segment_duration_s: float = 300.0,
    modality: str = "meg",
    tr_s: float = 2.0,
    stimulus_share: float = 0.5,
    n_channels: int | None = None,
    sfreq_hz: float = 250.0,
    snr: float = DEFAULT_SNR,
    ephys_scale: int = 100,
    bold_scale: int = 200,
    spaces=("fsaverage5",),
    seed: int = 0,
    progress: bool = False,
) -> Path:
    """Write a BIDS dataset of MEG (or EEG) in some people and fMRI in others, one film.

    See the module docstring of :mod:`samba_bids.simulate.stimulus` for the layout and the
    generative model.

    Parameters
    ----------
    root : path-like
        Dataset folder to create (may exist; files of the same names are overwritten).
    templates_dir : path-like
        Templates folder, as for :func:`~samba_bids.simulate.simulate_dataset`.
    n_ephys_subjects : int
        Electrophysiology participants ``sub-01`` .. ``sub-<A>`` (at least 1).
    n_bold_subjects : int
        fMRI participants ``sub-<A+1>`` .. ``sub-<A+B>`` (at least 1).
    n_segments : int
        Film segments: run ``s`` of task ``film`` is segment ``s`` in every participant.
    segment_duration_s : float
        Length of each segment, s (at least 10 TRs).
    modality : {'meg', 'eeg'}
        Electrophysiology modality (as for :func:`~samba_bids.simulate.simulate_dataset`).
    tr_s : float
        Repetition time, s.
    stimulus_share : float
        Share of each slow log-envelope's variance driven by the film while it plays, 0..1.
    n_channels : int | None
        EEG electrodes or MEG magnetometers; None: the modality's default.
    sfreq_hz : float
        Sampling rate of the recordings (and of the fMRI participants' unrecorded activity),
        Hz.
    snr : float
        ``var(noiseless parcel BOLD) / var(noise)`` per parcel.
    ephys_scale, bold_scale : int
        Schaefer 2018 scales of the source and BOLD parcels (100, 200 or 400).
    spaces : sequence of {'fsaverage5', 'MNI152NLin6Asym', 'fsLR'}
        Spaces of the preprocessed BOLD.
    seed : int
        Random seed: the planted HRFs and mixing, the film and every participant.
    progress : bool
        Log each run at INFO level.

    Returns
    -------
    Path
        ``root``.

    Raises
    ------
    NoInputError
        If ``templates_dir`` is None or lacks the template files.
    UsageError
        If a parameter is out of range.
    """
    t_start = time.perf_counter()
    n_ephys, n_bold = n_ephys_subjects, n_bold_subjects
    for name, value in (("n_ephys_subjects", n_ephys), ("n_bold_subjects", n_bold),
                        ("n_segments", n_segments)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise UsageError(f"{name} must be an integer of at least 1, got {value!r}.")
    if not 0.0 <= stimulus_share <= 1.0:
        raise UsageError(f"stimulus_share must lie in 0..1, got {stimulus_share!r}.")
    if n_ephys + n_bold > 99:
        raise UsageError("At most 99 participants (two-digit labels) can be simulated, got "
                         f"{n_ephys} + {n_bold}.")
    templates_dir, n_channels, spaces, _ = _check_arguments(
        templates_dir, n_subjects=n_ephys + n_bold, duration_s=segment_duration_s,
        tr_s=tr_s, modality=modality, n_channels=n_channels, sfreq_hz=sfreq_hz, snr=snr,
        ephys_scale=ephys_scale, bold_scale=bold_scale, spaces=spaces,
    )
    root = Path(root)
    preproc = root / "derivatives" / "preproc"
    truth = root / "derivatives" / "truth"
    preproc.mkdir(parents=True, exist_ok=True)
    truth.mkdir(parents=True, exist_ok=True)
    sim, film = _stimulus_plan(
        templates_dir, root=root, n_segments=int(n_segments),
        segment_duration_s=float(segment_duration_s), modality=modality, tr_s=tr_s,
        stimulus_share=stimulus_share, n_channels=n_channels, sfreq_hz=sfreq_hz, snr=snr,
        ephys_scale=ephys_scale, bold_scale=bold_scale, spaces=spaces, seed=seed,
    )
    write_dataset_descriptions(root, preproc, truth, modality)
    _write_film_events_json(root)
    ephys_subjects = [f"{i:02d}" for i in range(1, n_ephys + 1)]
    bold_subjects = [f"{i:02d}" for i in range(n_ephys + 1, n_ephys + n_bold + 1)]
    for index in range(1, n_ephys + 1):
        for segment in range(1, film.n_segments + 1):
            _write_ephys_run(sim, film, index, segment, progress=progress)
    gains = np.zeros((film.n_segments, len(sim.source_names), len(BANDS)))
    for index in range(n_ephys + 1, n_ephys + n_bold + 1):
        for segment in range(1, film.n_segments + 1):
            run = _simulate_bold_run(sim, film, index, segment)
            _write_bold_run(sim, film, run, progress=progress)
            gains[segment - 1] += run.gain / n_bold
    for segment in range(1, film.n_segments + 1):
        _write_stimulus_truth(sim, film, segment, gains[segment - 1])
    _write_stimulus_parameters(sim, film, ephys_subjects, bold_subjects)
    _write_participants(root, bold_subjects)
    _write_readme(root, modality, ephys_subjects, bold_subjects, film)
    logger.info("Simulated %d %s and %d fMRI participant(s), %d film segment(s), in %.1f s "
                "into %s", n_ephys, modality.upper(), n_bold, film.n_segments,
                time.perf_counter() - t_start, root)
    return root


def _stimulus_plan(templates_dir, *, root, n_segments, segment_duration_s, modality, tr_s,
                   stimulus_share, n_channels, sfreq_hz, snr, ephys_scale, bold_scale, spaces,
                   seed) -> tuple[_Simulation, _Film]:
    """The shared plan (:func:`~samba_bids.simulate.dataset._plan`) and the film.

    The plan's timing fields describe a BOLD run of the film-time volumes only; each run
    replaces them with its own.
    """
    n_film_volumes = int(np.floor(segment_duration_s / tr_s + 1e-9))
    sim = _plan(templates_dir, root=Path(root), tr_s=tr_s, n_volumes=n_film_volumes,
                modality=modality, n_channels=n_channels, sfreq_hz=sfreq_hz, snr=snr,
                ephys_scale=ephys_scale, bold_scale=bold_scale, spaces=tuple(spaces),
                seed=seed)
    film = _Film(n_segments=n_segments, duration_s=segment_duration_s,
                 share=float(stimulus_share),
                 envelopes=[stimulus_envelopes(seed, s, sim.source_names, segment_duration_s)
                            for s in range(1, n_segments + 1)])
    return sim, film


# --------------------------------------------------------------------------------------------
# Electrophysiology participants


def _ephys_timing(sim: _Simulation, film: _Film, index: int, segment: int) -> tuple:
    """Lead of the recording before the film (on a sample), s, and the recording's samples."""
    rng = _run_rng(sim.seed, index, STREAM_LEAD, _film_run(segment, has_bold=False))
    lead_s = round(rng.uniform(*EPHYS_LEAD_S) * sim.sfreq_hz) / sim.sfreq_hz
    n_rec = int(round((lead_s + film.duration_s + EPHYS_TAIL_S) * sim.sfreq_hz))
    return lead_s, n_rec


def _ephys_band_power(sim: _Simulation, film: _Film, index: int,
                      segment: int) -> tuple[np.ndarray, np.ndarray]:
    """Planted source band power of an electrophysiology participant's run, on film time.

    Returns
    -------
    logpow : ndarray, shape (N, n_bands, n_bins)
        Log band power (:func:`~samba_bids.simulate.band_log_power`) of the simulated
        activity, lead-in included, in 0.1 s bins.
    t_film_s : ndarray, shape (n_bins,)
        Film time of each bin's centre, s (negative before the film).
    """
    lead_s, n_rec = _ephys_timing(sim, film, index, segment)
    activity = _film_activity(sim, film, index, segment, LEAD_IN_S + lead_s,
                              sim.n_lead + n_rec)
    logpow = band_log_power(activity.data, sim.sfreq_hz)
    t_film = (np.arange(logpow.shape[-1]) + 0.5) * DRIVE_STEP_S - LEAD_IN_S - lead_s
    return logpow, t_film


def _write_ephys_run(sim: _Simulation, film: _Film, index: int, segment: int, *,
                     progress: bool) -> None:
    """Simulate and write one segment's recording of electrophysiology participant ``index``."""
    t_run = time.perf_counter()
    subject = f"{index:02d}"
    run = _film_run(segment, has_bold=False)
    lead_s, n_rec = _ephys_timing(sim, film, index, segment)
    activity = _film_activity(sim, film, index, segment, LEAD_IN_S + lead_s,
                              sim.n_lead + n_rec)
    data, moment_am = project_to_sensors(sim.sensors, activity.data, sim.n_lead, n_rec,
                                         sim.sfreq_hz,
                                         _run_rng(sim.seed, index, _STREAM_SENSOR, run))
    del activity
    bids_path = write_ephys(sim.root, subject, data, sim.sensors.info, np.array([lead_s]),
                            sim.modality, run=run.run, task=STIMULUS_TASK, trigger=FILM_EVENT,
                            durations_s=film.duration_s)
    del data
    _add_stim_file(bids_path.copy().update(suffix="events", extension=".tsv").fpath, segment)
    tdir = sim.root / "derivatives" / "truth" / run.folder(subject) / sim.modality
    tdir.mkdir(parents=True, exist_ok=True)
    sensors = sim.sensors
    parameters = {
        **_run_parameters(sim, film, index, segment, lead_s, group=sim.modality.upper()),
        "FilmOnsetClock": "recording: s from the first sample",
        "RecordingDuration": n_rec / float(sim.sfreq_hz),
        "RecordingTail": EPHYS_TAIL_S,
        "LeadRange": list(EPHYS_LEAD_S),
        "Modality": sim.modality,
        "Channels": list(sensors.info["ch_names"]),
        "DipoleMomentPerVertex": float(moment_am),
        "DipoleMomentUnits": "A m per unit of parcel activity",
        "SensorNoiseSD": sensors.noise_sd,
        "SensorSignalRMS": sensors.signal_rms,
        "SensorUnits": sensors.unit,
        **sensors.description,
        "ForwardModel": sensors.forward_provenance,
    }
    write_json(tdir / f"{run.prefix(subject)}_desc-truth_parameters.json", parameters)
    logger.log(logging.INFO if progress else logging.DEBUG, "%s (%s) simulated in %.1f s",
               run.prefix(subject), sim.modality.upper(), time.perf_counter() - t_run)


def _add_stim_file(events_tsv: Path, segment: int) -> None:
    """Add the ``stim_file`` column to an ``_events.tsv`` written by MNE-BIDS (film rows)."""
    events = pd.read_csv(events_tsv, sep="\t", dtype=str, keep_default_na=False)
    events["stim_file"] = np.where(events["trial_type"] == FILM_EVENT, stim_file(segment),
                                   "n/a")
    events.to_csv(events_tsv, sep="\t", index=False)
    sidecar = events_tsv.with_suffix(".json")
    if sidecar.is_file():  # MNE-BIDS >= 0.14 describes its columns
        import json

        content = json.loads(sidecar.read_text())
        content["stim_file"] = _STIM_FILE_DESCRIPTION
        write_json(sidecar, content)


_STIM_FILE_DESCRIPTION = {
    "Description": "Film segment shown during the event, under stimuli/ (not included in "
                   "this simulated dataset).",
}


# --------------------------------------------------------------------------------------------
# fMRI participants


@dataclass
class _BoldRun:
    """One simulated segment of an fMRI participant."""

    index: int
    segment: int
    lead_s: float  # first volume onset -> film onset, s
    sim: _Simulation  # the plan with this run's timing
    bold: ParcelBold
    per_volume: np.ndarray  # (N, n_bands, V) mean log band power per volume
    gain: np.ndarray  # (N, n_bands) stimulus envelope -> z-scored log band power


def _simulate_bold_run(sim: _Simulation, film: _Film, index: int, segment: int) -> _BoldRun:
    """The unrecorded source activity and the BOLD of fMRI participant ``index`` in a segment.

    The run clock starts at the first volume's onset; the film starts ``lead_s`` after it.
    """
    run = _film_run(segment, has_bold=True)
    lead_s = float(_run_rng(sim.seed, index, STREAM_LEAD, run).uniform(*BOLD_LEAD_S))
    n_volumes = int(np.ceil((lead_s + film.duration_s + BOLD_TAIL_S) / sim.tr_s))
    n_rec = int(round((n_volumes * sim.tr_s + TAIL_S) * sim.sfreq_hz))
    run_sim = dataclasses.replace(sim, n_volumes=n_volumes, first_volume_s=0.0, n_rec=n_rec,
                                  onsets_s=np.arange(n_volumes) * sim.tr_s)
    activity = _film_activity(sim, film, index, segment, LEAD_IN_S + lead_s,
                              sim.n_lead + n_rec)
    logpow = band_log_power(activity.data, sim.sfreq_hz)
    gain = _stimulus_gain(activity, logpow, film.share)
    del activity
    bold = _simulate_bold(run_sim, logpow, _run_rng(sim.seed, index, _STREAM_BOLD, run))
    return _BoldRun(index=index, segment=segment, lead_s=lead_s, sim=run_sim, bold=bold,
                    per_volume=_band_power_per_volume(run_sim, logpow), gain=gain)


def _write_bold_run(sim: _Simulation, film: _Film, run: _BoldRun, *, progress: bool) -> None:
    """The preprocessed BOLD, the raw events and sidecar, and the truth of one fMRI run."""
    subject = f"{run.index:02d}"
    plan = _film_run(run.segment, has_bold=True)
    prefix = plan.prefix(subject)
    func = sim.root / "derivatives" / "preproc" / plan.folder(subject) / "func"
    func.mkdir(parents=True, exist_ok=True)
    write_bold_images(
        func, prefix, run.bold.noisy, run.bold.noise_sd, sim.tr_s,
        _run_rng(sim.seed, run.index, _STREAM_IMAGE, plan),
        surface_parcels=sim.bold_vertex_parcels if "fsaverage5" in sim.spaces else None,
        volume_parcels=sim.volume_atlas_small, grayordinates=sim.grayordinates,
        task=STIMULUS_TASK,
    )
    write_confounds(func, prefix, run.bold.noisy,
                    _run_rng(sim.seed, run.index, _STREAM_CONFOUNDS, plan))
    raw_func = sim.root / plan.folder(subject) / "func"
    raw_func.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"onset": [run.lead_s], "duration": [film.duration_s],
                  "trial_type": [FILM_EVENT], "stim_file": [stim_file(run.segment)]}).to_csv(
        raw_func / f"{prefix}_events.tsv", sep="\t", index=False)
    write_json(raw_func / f"{prefix}_bold.json",
               {"RepetitionTime": float(sim.tr_s), "TaskName": STIMULUS_TASK})
    tdir = sim.root / "derivatives" / "truth" / plan.folder(subject) / "func"
    tdir.mkdir(parents=True, exist_ok=True)
    bold = run.bold
    parameters = {
        **_run_parameters(sim, film, run.index, run.segment, run.lead_s, group="fMRI"),
        "FilmOnsetClock": "BOLD run: s from the first volume's acquisition start",
        "LeadRange": list(BOLD_LEAD_S),
        "BOLDTail": BOLD_TAIL_S,
        "SNR": float(sim.snr),
        "SNRDefinition": "var(noiseless parcel BOLD) / var(noise), per parcel",
        "ExpectedNoiseCeiling": expected_noise_ceiling(sim.snr),
        "MedianNoiseCeiling": float(np.median(bold.ceiling)),
        "RepetitionTime": float(sim.tr_s),
        "NumberOfVolumes": run.sim.n_volumes,
        "DurationBOLD": run.sim.n_volumes * float(sim.tr_s),
        "BOLDSampleTime": "onset + TR/2 (middle of each volume's acquisition)",
        "SourceBandPowerPerVolume": "mean of the 0.1 s log band power over [onset, "
                                    "onset + TR) (not z-scored)",
        "Hemodynamics": "linear",
        "HRF": "SPM double gamma (samba_bids.model.hrf.double_gamma), unit-sum kernel, "
               f"{HRF_SUPPORT_S} s support, causal",
        "BOLDGain": BOLD_GAIN,
        "BOLDUnits": "percent signal change (images: 100 + value)",
        "VertexNoiseFraction": VERTEX_NOISE_FRACTION,
        "Confounds": "random motion (not added to the BOLD), csf/white_matter noise, "
                     "global_signal = 100 + mean noisy parcel BOLD",
        "Spaces": list(sim.spaces),
    }
    write_truth(tdir, prefix, hrf=sim.truth_hrf, mixing=sim.mixing, bold=bold,
                bold_names=sim.bold_names, source_band_power=run.per_volume,
                source_names=sim.source_names, parameters=parameters)
    logger.log(logging.INFO if progress else logging.DEBUG,
               "%s (fMRI) simulated (median noise ceiling %.3f)", prefix,
               float(np.median(bold.ceiling)))


def _run_parameters(sim: _Simulation, film: _Film, index: int, segment: int, lead_s: float,
                    *, group: str) -> dict:
    """The truth parameters every participant's run shares."""
    return {
        "Description": "Parameters of the simulation of this run (samba-bids-simulate "
                       "--stimulus-locked).",
        "Seed": int(sim.seed),
        "SubjectIndex": index,
        "Group": group,
        "Task": STIMULUS_TASK,
        "Run": str(segment),
        "Segment": segment,
        "StimFile": stim_file(segment),
        "FilmOnset": float(lead_s),
        "Lead": float(lead_s),
        "SegmentDuration": float(film.duration_s),
        "StimulusShare": film.share,
        "RandomStreams": "numpy default_rng([Seed, SubjectIndex, stream, 0, Run]); stream 0 "
                         "activity (its spawned children: the network envelopes, then the "
                         "envelopes that stand in for the stimulus outside the film), 1 sensor "
                         f"noise, 2 BOLD noise, 3 image noise, 4 confounds, {STREAM_LEAD} the "
                         f"lead; [Seed, 0, {STREAM_STIMULUS}, 0, Run] the stimulus envelope; "
                         "[Seed, 0, 0] the shared HRFs and mixing",
        "StimulusEnvelope": "while the film plays, each slow log-envelope is sqrt(1 - "
                            "StimulusShare) * own + sqrt(StimulusShare) * stimulus (shared "
                            "by every participant on film time); outside, the stimulus part "
                            "is an independent own envelope of the same kind",
        "LeadIn": LEAD_IN_S,
        "SamplingFrequency": float(sim.sfreq_hz),
        "SourceParcels": f"Schaefer 2018, 7 networks, {sim.ephys_scale} parcels on "
                         f"{EPHYS_SUBJECT}",
        "BOLDParcels": f"Schaefer 2018, 7 networks, {sim.bold_scale} parcels",
        **source_model_parameters(),
    }


# --------------------------------------------------------------------------------------------
# Dataset-level files


def _write_stimulus_truth(sim: _Simulation, film: _Film, segment: int, gain) -> None:
    """``derivatives/truth/task-film_run-<s>_desc-stimulus_timeseries.tsv`` and its sidecar."""
    truth = sim.root / "derivatives" / "truth"
    bold = stimulus_bold(film.envelopes[segment - 1], gain, sim.weights, sim.kernels,
                         sim.tr_s, film.duration_s)
    stem = f"task-{STIMULUS_TASK}_run-{segment}_desc-stimulus_timeseries"
    pd.DataFrame(bold, columns=sim.bold_names).to_csv(truth / f"{stem}.tsv", sep="\t",
                                                      index=False, float_format="%.6g")
    write_json(truth / f"{stem}.json", {
        "Description": "Stimulus-driven BOLD of film segment "
                       f"{segment}: the planted mixing and HRFs applied to the stimulus "
                       "envelope's contribution to the z-scored log band power (gain "
                       "averaged over the fMRI participants), zero drive before the film "
                       "starts; the stimulus-locked part of the fMRI participants' mean "
                       "noiseless BOLD. One row per film-time volume, one column per BOLD "
                       "parcel.",
        "RepetitionTime": float(sim.tr_s),
        "FilmTimeOfFirstSample": float(sim.tr_s) / 2.0,
        "SampleTimes": "film time k * RepetitionTime + RepetitionTime / 2, s "
                       "(k = 0 .. floor(SegmentDuration / RepetitionTime) - 1)",
        "SegmentDuration": float(film.duration_s),
        "StimFile": stim_file(segment),
        "Units": "percent signal change",
    })


def _write_stimulus_parameters(sim: _Simulation, film: _Film, ephys_subjects,
                               bold_subjects) -> None:
    """``derivatives/truth/task-film_desc-stimulus_parameters.json``."""
    segments = range(1, film.n_segments + 1)
    write_json(sim.root / "derivatives" / "truth"
               / f"task-{STIMULUS_TASK}_desc-stimulus_parameters.json", {
        "Description": "The film of the stimulus-locked simulation (samba-bids-simulate "
                       "--stimulus-locked): segment s is run s of task film in every "
                       "participant.",
        "Task": STIMULUS_TASK,
        "Segments": [f"task-{STIMULUS_TASK}_run-{s}" for s in segments],
        "Runs": [str(s) for s in segments],
        "StimFiles": [stim_file(s) for s in segments],
        "SegmentDurations": [float(film.duration_s)] * film.n_segments,
        "StimulusShare": film.share,
        "Seed": int(sim.seed),
        "RandomStreams": f"numpy default_rng([Seed, 0, {STREAM_STIMULUS}, 0, Run]): the "
                         "stimulus envelope of the segment (correlation times, bands, then "
                         "network envelopes)",
        "StimulusEnvelope": "per source parcel and band, a Gaussian-spectrum process "
                            "(correlation time uniform in EnvelopeTimescaleRange) mixed with "
                            "its network's (EnvelopeGroupCoupling), unit variance, on the "
                            "DriveStep grid of film time",
        "EnvelopeTimescaleRange": list(ENVELOPE_TIMESCALE_S),
        "EnvelopeGroupCoupling": ENVELOPE_GROUP_COUPLING,
        "DriveStep": DRIVE_STEP_S,
        "StimulusDrivenBOLD": "BOLD_GAIN * sum over source parcels n and bands k of "
                              "W[m, n, k] * gain[n, k] * (HRF_m * stimulus[n, k])(t), gain = "
                              "2 rho EnvelopeLogSD sqrt(StimulusShare) / sd(log band power) "
                              "averaged over the fMRI participants (rho: the band "
                              "component's share of the band's power); see "
                              "samba_bids.simulate.stimulus.stimulus_bold",
        "RepetitionTime": float(sim.tr_s),
        "ElectrophysiologySubjects": list(ephys_subjects),
        "BOLDSubjects": list(bold_subjects),
        "Modality": sim.modality,
    })


def _write_film_events_json(root: Path) -> None:
    """``task-film_events.json`` at the top level: the columns of every film events file."""
    write_json(root / f"task-{STIMULUS_TASK}_events.json", {
        "trial_type": {"Description": "The event's kind",
                       "Levels": {FILM_EVENT: "a film segment plays"}},
        "stim_file": _STIM_FILE_DESCRIPTION,
    })


def _write_participants(root: Path, bold_subjects) -> None:
    """Add the fMRI participants to the ``participants.tsv`` that MNE-BIDS wrote."""
    path = root / "participants.tsv"
    frame = (pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
             if path.is_file() else pd.DataFrame({"participant_id": []}, dtype=str))
    ids = [f"sub-{s}" for s in bold_subjects]
    frame = frame[~frame["participant_id"].isin(ids)]
    added = pd.DataFrame({"participant_id": ids})
    frame = pd.concat([frame, added], ignore_index=True).fillna("n/a")
    frame.to_csv(path, sep="\t", index=False)


def _write_readme(root: Path, modality: str, ephys_subjects, bold_subjects,
                  film: _Film) -> None:
    """The dataset's ``README``."""
    kind = modality.upper()
    (root / "README").write_text(
        f"Simulated stimulus-locked {kind}/fMRI dataset written by samba-bids-simulate "
        f"--stimulus-locked: {kind} in some people, fMRI in others, who watched the same "
        f"film of {film.n_segments} segment(s) of {film.duration_s:g} s (task "
        f"{STIMULUS_TASK}, run s = segment s, stimulus file stimuli/film_seg-<s>.mp4, not "
        "included).\n\n"
        f"sub-{ephys_subjects[0]} .. sub-{ephys_subjects[-1]}: raw {kind} only, with one "
        f"'{FILM_EVENT}' event per recording in _events.tsv.\n"
        f"sub-{bold_subjects[0]} .. sub-{bold_subjects[-1]}: fMRI only. There is no raw "
        "BOLD image: the preprocessed BOLD is in derivatives/preproc; the raw dataset holds "
        "only each run's _events.tsv (the film event, onset from the first volume's "
        "acquisition start) and _bold.json (RepetitionTime).\n\n"
        "The ground truth (planted HRFs, mixing weights, noiseless BOLD, noise ceilings, "
        "film onsets) is in derivatives/truth, with the stimulus-driven BOLD of each segment "
        f"(task-{STIMULUS_TASK}_run-<s>_desc-stimulus_timeseries.tsv, on film time).\n"
    )
