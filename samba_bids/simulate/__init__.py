"""Simulated EEG-fMRI and MEG-fMRI datasets with a known ground truth (planted HRFs and mixing).

:func:`simulate_dataset` writes a complete BIDS dataset that the pipeline reads like real data:

* raw EEG (BrainVision) or MEG (FIF), written by MNE-BIDS, with a ``Volume`` event at each
  volume onset;
* ``derivatives/preproc``: fMRIPrep-named preprocessed BOLD on fsaverage5 (GIFTI pair) and in
  MNI152NLin6Asym (NIfTI on a 4 mm grid), optionally on fsLR 91k grayordinates (CIFTI
  ``.dtseries.nii``, ``spaces`` with ``"fsLR"``), sidecars with the TR, and a confounds table;
* ``derivatives/truth``: the planted HRFs, the mixing weights, the noiseless and noisy parcel
  BOLD, the source-parcel band power per volume, the noise ceiling and every parameter.

Generative model (one subject):

1. *Source-parcel activity* (``ephys_scale`` Schaefer 2018 parcels on fsaverage5, at
   ``sfreq_hz``): a 1/f^beta background (FFT-shaped Gaussian noise, beta uniform in 1-2,
   flat below 1 Hz) plus one band-limited component per band of :data:`BANDS` (Gaussian noise
   band-passed by FFT masking: it waxes and wanes in bursts of about 1/bandwidth), each
   multiplied by a slow log-normal amplitude envelope (a Gaussian process with a correlation
   time drawn uniform in 10-30 s, log-amplitude standard deviation 0.5), so that band power
   varies over tens of seconds.
2. *Sensors*: each parcel's signal is spread over its label's vertices with the sign that
   MNE's ``mean_flip`` label extraction uses (:func:`mne.label_sign_flip`), times a
   per-vertex dipole moment, and projected through the template forward model of
   :func:`samba_bids.ephys.forward.make_template_forward` in fixed (normal) orientation. The
   vertex sums are precomputed into a parcel gain matrix (n_channels x n_parcels), so nothing of
   size n_sources x n_times exists; sensor data are made in chunks of 60 s. The dipole moment
   is set so that the median channel RMS of the brain signal is :data:`EEG_SIGNAL_RMS_V`
   (EEG) or :data:`MEG_SIGNAL_RMS_T` (MEG), and white sensor noise (:data:`EEG_NOISE_SD_V`,
   :data:`MEG_NOISE_SD_T`) is added. The recording starts :data:`FIRST_VOLUME_S` s before the
   first volume. EEG: 10-05 electrodes of the ``fsaverage_1005`` montage, sphere model fitted
   to the template head (or a three-layer BEM in the templates folder). MEG: no MEG recording
   ships with MNE offline, so the sensors are a synthetic whole-head helmet of radial
   magnetometers (:func:`meg_helmet`; device frame = fsaverage head frame) and the head model
   is MNE's single-layer fsaverage inner-skull BEM. Either way the forward is the pipeline's
   own, so simulation and reconstruction share the head model.
3. *Band power*: per source parcel and band, the analytic-signal power of the parcel signal in
   the band (FFT Hilbert transform), averaged in 0.1 s bins, log-transformed and z-scored
   over the run.
4. *BOLD* (``bold_scale`` Schaefer 2018 parcels): each BOLD parcel is driven by its
   :data:`N_SOURCES_PER_BOLD` nearest source parcels (centroids on the fsaverage5 white
   surface), through alpha with a negative weight (the alpha-BOLD anticorrelation) plus one or
   two of the other bands with positive weights. The drive (0.1 s grid) is convolved causally
   with the parcel's planted double-gamma HRF (SPM form, unit-sum kernel over 32 s; time to
   peak uniform in 4-7 s) and sampled at the middle of each volume's acquisition
   (``onset + TR / 2``, fMRIPrep's default slice-timing reference). The result, in percent
   signal change, is the *noiseless* BOLD. White noise is added per parcel with variance
   ``var(noiseless) / snr``: the *noisy* BOLD. The noise ceiling of a parcel is the Pearson
   correlation of its noiseless and noisy series; its expected value is
   ``sqrt(snr / (1 + snr))`` (0.8 for the default ``snr = 16/9``).

   With ``hemodynamics="balloon"`` (``samba-bids-simulate --hemodynamics balloon``) the same
   drive becomes BOLD nonlinearly (:mod:`.balloon`): a saturating neurovascular coupling
   (``tanh``-shaped around rest; sustained flow limited to +50 % / -20 %) feeds the
   Balloon-Windkessel model (Buxton et al. 1998; Friston et al. 2000) with per-parcel
   parameters drawn from published priors, and Stephan et al. 2007's BOLD equation (1.5 T
   constants) gives the percent signal change; the noise is as above. The truth then holds
   each parcel's Balloon parameters and the time to peak of its effective HRF (the impulse
   response at rest) instead of double-gamma parameters. The recording, the mixing and the
   noise draws are those of the linear dataset of the same seed.
5. *Images*: every vertex (voxel) of a parcel carries ``100 + noisy parcel value`` plus small
   independent noise (standard deviation :data:`VERTEX_NOISE_FRACTION` of the parcel noise's,
   so the parcel mean is practically the noisy parcel series). Vertices of the medial wall and
   voxels in the atlas's background carry 100 plus that noise (NIfTI background: 0).
6. *Confounds*: small random motion (slow random walks, ~0.1 mm / 0.001 rad), ``csf`` and
   ``white_matter`` series with fMRIPrep's column names. They are **not** added to the BOLD:
   regressing them out (as the pipeline does) removes only chance-correlated variance.

7. *In the scanner* (``mr_artifacts=True``, ``samba-bids-simulate --mr-artifacts``; EEG only):
   the clean recording of steps 1-2 (identical to the one without the flag, same seed) is
   upsampled to ``scanner_sfreq_hz`` (5 kHz) and receives the MR gradient artefact of every
   slice and volume, the pulse (ballistocardiogram) artefact after every heartbeat and an
   ``ECG`` channel (:mod:`.scanner`); the clean EEG, the R-peaks and the true volume onsets
   go to ``derivatives/truth/.../eeg`` so that cleaning can be scored.

The planted HRFs and mixing weights come from ``seed`` alone and are shared by all subjects
(a group-level "true" HRF map); activity and noise differ per subject. Both are written per
subject under ``derivatives/truth``.

*Stimulus-locked design* (:func:`simulate_stimulus_locked_dataset`, ``samba-bids-simulate
--stimulus-locked``; :mod:`.stimulus`): MEG (or EEG) in some people, fMRI in others, who watched
the same film of ``n_segments`` segments (task ``film``, run ``s`` = segment ``s``, stimulus
file ``film_seg-<s>.mp4``), aligned by film time only, as in SAMBA's MEG-fMRI setting.
Electrophysiology participants (``sub-01`` ..) have raw recordings only, each starting 2-8 s
before its segment, with a ``film`` event (and ``stim_file``) in ``_events.tsv``; fMRI
participants (the following labels) have preprocessed BOLD only (the raw dataset holds their
``func`` events and ``_bold.json``), the first volume 4-12 s before the segment. Everybody
shares the planted HRFs and mixing; while the film plays, every slow log-envelope of step 1
is ``sqrt(1 - stimulus_share) * own + sqrt(stimulus_share) * stimulus``, the stimulus envelope
(same construction as the own ones) drawn per segment from the seed alone, so that band power
and BOLD correlate across people on film time. ``derivatives/truth`` adds, per segment, the
stimulus-driven BOLD on film time (``task-film_run-<s>_desc-stimulus_timeseries.tsv``), the
target of a translator from one group's electrophysiology to the other group's BOLD.

Layout: :mod:`.sources` (source-parcel activity and band power, steps 1 and 3),
:mod:`.sensors` (step 2), :mod:`.hemodynamics` (planted HRFs and mixing, parcel BOLD, step 4),
:mod:`.balloon` (the nonlinear alternative of step 4: coupling, Balloon-Windkessel model,
effective HRFs), :mod:`.scanner` (step 7), :mod:`.bids_writer` (every file written, steps 5
and 6),
:mod:`.dataset`
(:func:`simulate_dataset`, which composes them), :mod:`.stimulus`
(:func:`simulate_stimulus_locked_dataset`) and :mod:`.cli` (``samba-bids-simulate``).
"""

from __future__ import annotations

import logging

from .balloon import (
    BALLOON_PARAMETER_NAMES,
    BALLOON_PRIOR_MEAN,
    BALLOON_PRIOR_SD,
    COUPLING_SLOPE,
    HEMODYNAMICS,
    INTEGRATION_STEP_S,
    BalloonParameters,
    balloon_bold,
    balloon_impulse_response,
    balloon_response,
    draw_balloon_parameters,
    effective_time_to_peak,
    neurovascular_coupling,
    steady_state_bold,
)
from .bids_writer import (
    BOLD_BASELINE,
    TASK,
    TRIGGER,
    VERTEX_NOISE_FRACTION,
    VOLUME_DOWNSAMPLE,
)
from .cli import build_parser, main
from .dataset import EPHYS_SUBJECT, FIRST_VOLUME_S, LEAD_IN_S, TAIL_S, simulate_dataset
from .hemodynamics import (
    BOLD_GAIN,
    DEFAULT_SNR,
    HRF_SUPPORT_S,
    N_SOURCES_PER_BOLD,
    TIME_TO_PEAK_S,
    expected_noise_ceiling,
    hrf_kernels,
    hrf_time_to_peak,
    mixing_matrix,
    plant_hrfs,
    plant_mixing,
    spm_double_gamma,
)
from .sensors import (
    CHUNK_S,
    DEFAULT_CHANNELS,
    EEG_NOISE_SD_V,
    EEG_SIGNAL_RMS_V,
    MEG_HELMET_LOWEST_ELEVATION_DEG,
    MEG_HELMET_RADIUS_M,
    MEG_NOISE_SD_T,
    MEG_SIGNAL_RMS_T,
    SENSOR_LEVELS,
    eeg_channel_names,
    head_sphere,
    meg_channel_names,
    meg_helmet,
    parcel_gain,
)
from .sources import (
    BACKGROUND_EXPONENT,
    BAND_AMPLITUDE,
    BANDS,
    DRIVE_STEP_S,
    ENVELOPE_GROUP_COUPLING,
    ENVELOPE_LOG_SD,
    ENVELOPE_TIMESCALE_S,
    ParcelActivity,
    band_log_power,
    coarse_grid_size,
    network_groups,
    simulate_parcel_activity,
    slow_log_envelopes,
)
from .sources import (
    _subject_rng as _subject_rng,  # tests draw the streams of a subject
)
from .stimulus import (
    BOLD_LEAD_S,
    BOLD_TAIL_S,
    EPHYS_LEAD_S,
    EPHYS_TAIL_S,
    STIMULUS_TASK,
    simulate_stimulus_locked_dataset,
    stim_file,
    stimulus_bold,
    stimulus_envelopes,
)

#: Parent of the loggers of the simulator's modules.
logger = logging.getLogger(__name__)

__all__ = [
    "BACKGROUND_EXPONENT",
    "BALLOON_PARAMETER_NAMES",
    "BALLOON_PRIOR_MEAN",
    "BALLOON_PRIOR_SD",
    "BANDS",
    "BAND_AMPLITUDE",
    "BOLD_BASELINE",
    "BOLD_GAIN",
    "BOLD_LEAD_S",
    "BOLD_TAIL_S",
    "CHUNK_S",
    "COUPLING_SLOPE",
    "DEFAULT_CHANNELS",
    "DEFAULT_SNR",
    "DRIVE_STEP_S",
    "EEG_NOISE_SD_V",
    "EEG_SIGNAL_RMS_V",
    "ENVELOPE_GROUP_COUPLING",
    "ENVELOPE_LOG_SD",
    "ENVELOPE_TIMESCALE_S",
    "EPHYS_LEAD_S",
    "EPHYS_SUBJECT",
    "EPHYS_TAIL_S",
    "FIRST_VOLUME_S",
    "HEMODYNAMICS",
    "HRF_SUPPORT_S",
    "INTEGRATION_STEP_S",
    "LEAD_IN_S",
    "MEG_HELMET_LOWEST_ELEVATION_DEG",
    "MEG_HELMET_RADIUS_M",
    "MEG_NOISE_SD_T",
    "MEG_SIGNAL_RMS_T",
    "N_SOURCES_PER_BOLD",
    "SENSOR_LEVELS",
    "STIMULUS_TASK",
    "TAIL_S",
    "TASK",
    "TIME_TO_PEAK_S",
    "TRIGGER",
    "VERTEX_NOISE_FRACTION",
    "VOLUME_DOWNSAMPLE",
    "BalloonParameters",
    "ParcelActivity",
    "balloon_bold",
    "balloon_impulse_response",
    "balloon_response",
    "band_log_power",
    "build_parser",
    "coarse_grid_size",
    "draw_balloon_parameters",
    "eeg_channel_names",
    "effective_time_to_peak",
    "expected_noise_ceiling",
    "head_sphere",
    "hrf_kernels",
    "hrf_time_to_peak",
    "main",
    "meg_channel_names",
    "meg_helmet",
    "mixing_matrix",
    "network_groups",
    "neurovascular_coupling",
    "parcel_gain",
    "plant_hrfs",
    "plant_mixing",
    "simulate_dataset",
    "simulate_parcel_activity",
    "simulate_stimulus_locked_dataset",
    "slow_log_envelopes",
    "spm_double_gamma",
    "steady_state_bold",
    "stim_file",
    "stimulus_bold",
    "stimulus_envelopes",
]
