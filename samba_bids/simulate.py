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
   :func:`samba_bids.ephys.source.make_template_forward` in fixed (normal) orientation. The
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
5. *Images*: every vertex (voxel) of a parcel carries ``100 + noisy parcel value`` plus small
   independent noise (standard deviation :data:`VERTEX_NOISE_FRACTION` of the parcel noise's,
   so the parcel mean is practically the noisy parcel series). Vertices of the medial wall and
   voxels in the atlas's background carry 100 plus that noise (NIfTI background: 0).
6. *Confounds*: small random motion (slow random walks, ~0.1 mm / 0.001 rad), ``csf`` and
   ``white_matter`` series with fMRIPrep's column names. They are **not** added to the BOLD:
   regressing them out (as the pipeline does) removes only chance-correlated variance.

The planted HRFs and mixing weights come from ``seed`` alone and are shared by all subjects
(a group-level "true" HRF map); activity and noise differ per subject. Both are written per
subject under ``derivatives/truth``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .bids.derivatives import write_json
from .errors import NoInputError, SambaBidsError, UsageError

logger = logging.getLogger(__name__)

#: Frequency bands of the simulated oscillations and of the BOLD-driving band power, Hz.
BANDS = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 45.0),
}
#: Root-mean-square amplitude range of each band's component relative to the 1/f background
#: (uniform per parcel; before the slow envelope, whose mean square is 1).
BAND_AMPLITUDE = {
    "delta": (0.3, 0.6),
    "theta": (0.3, 0.6),
    "alpha": (0.6, 1.5),
    "beta": (0.3, 0.7),
    "gamma": (0.15, 0.35),
}
#: Correlation time range of the slow band-power envelopes, s.
ENVELOPE_TIMESCALE_S = (10.0, 30.0)
#: Standard deviation of the log amplitude of the slow envelopes.
ENVELOPE_LOG_SD = 0.5
#: Share of each band's slow log-envelope variance common to a network (both hemispheres).
ENVELOPE_GROUP_COUPLING = 0.9
#: 1/f exponent range of the background (power ~ 1/f^beta).
BACKGROUND_EXPONENT = (1.0, 2.0)
#: Resolution of the band-power / neural-drive grid, s.
DRIVE_STEP_S = 0.1
#: Time from the start of the recording to the first volume onset, s.
FIRST_VOLUME_S = 5.0
#: Recording kept after the last volume ends, s.
TAIL_S = 2.0
#: Neural activity simulated before the recording starts (not written), so the first volumes
#: have a full HRF history, s.
LEAD_IN_S = 32.0
#: Support of the planted HRF kernels, s.
HRF_SUPPORT_S = 32.0
#: Range of the planted times to peak, s.
TIME_TO_PEAK_S = (4.0, 7.0)
#: Source parcels driving each BOLD parcel (nearest centroids).
N_SOURCES_PER_BOLD = 2
#: Percent signal change per unit of (z-scored log band power x weight), after the HRF.
BOLD_GAIN = 1.0
#: Baseline of the written BOLD images.
BOLD_BASELINE = 100.0
#: Standard deviation of the per-vertex noise relative to the parcel noise.
VERTEX_NOISE_FRACTION = 0.2
#: Median channel RMS of the brain signal at the sensors, V (EEG) before referencing.
EEG_SIGNAL_RMS_V = 10e-6
#: Standard deviation of the white EEG sensor noise, V.
EEG_NOISE_SD_V = 2e-6
#: Median channel RMS of the brain signal at the MEG magnetometers, T.
MEG_SIGNAL_RMS_T = 200e-15
#: Standard deviation of the white MEG sensor noise, T (the magnetometer noise of
#: :func:`mne.make_ad_hoc_cov`, which the pipeline's inverse assumes without empty-room data).
MEG_NOISE_SD_T = 20e-15
#: Per modality: median channel RMS of the brain signal, white noise SD, unit.
SENSOR_LEVELS = {
    "eeg": (EEG_SIGNAL_RMS_V, EEG_NOISE_SD_V, "V"),
    "meg": (MEG_SIGNAL_RMS_T, MEG_NOISE_SD_T, "T"),
}
#: Default number of channels per modality (EEG electrodes, MEG magnetometers).
DEFAULT_CHANNELS = {"eeg": 64, "meg": 102}
#: Radius of the synthetic MEG helmet (magnetometer centres) around the head sphere's centre, m.
MEG_HELMET_RADIUS_M = 0.12
#: Lowest elevation of the helmet's sensors above the head sphere's equator, degrees (-25:
#: about the level of the ears and the inion, 1 cm below the fiducial plane).
MEG_HELMET_LOWEST_ELEVATION_DEG = -25.0
#: Default SNR (variance ratio): expected noise ceiling sqrt(s / (1 + s)) = 0.8.
DEFAULT_SNR = 16.0 / 9.0
#: Chunk length for the sensor projection, s.
CHUNK_S = 60.0
TASK = "rest"
TRIGGER = "Volume"
EPHYS_SUBJECT = "fsaverage5"
#: Downsampling of the 2 mm MNI atlas grid for the written NIfTI (4 mm voxels).
VOLUME_DOWNSAMPLE = 2


# --------------------------------------------------------------------------------------------
# Small helpers


def expected_noise_ceiling(snr: float) -> float:
    """Expected Pearson r of noiseless and noisy BOLD for an SNR (variance ratio).

    Parameters
    ----------
    snr : float
        ``var(noiseless) / var(noise)`` per parcel, > 0.

    Returns
    -------
    float
        ``sqrt(snr / (1 + snr))``.
    """
    return float(np.sqrt(snr / (1.0 + snr)))


def _subject_rng(seed: int, subject_index: int, stream: int) -> np.random.Generator:
    """Independent random stream per subject (index from 1) and purpose; index 0 is shared."""
    return np.random.default_rng([int(seed), int(subject_index), int(stream)])


_STREAM_ACTIVITY, _STREAM_SENSOR, _STREAM_BOLD, _STREAM_IMAGE, _STREAM_CONFOUNDS = range(5)


def _shaped_noise(rng, n_rows, n_times, amplitude_of_freq, sfreq_hz) -> np.ndarray:
    """Gaussian noise with amplitude spectrum ``amplitude_of_freq(f)``, unit variance per row.

    ``amplitude_of_freq`` maps the rfft frequencies (Hz, shape (n_freqs,)) to an array that
    broadcasts to (n_rows, n_freqs).
    """
    freqs = np.fft.rfftfreq(n_times, 1.0 / sfreq_hz)
    spectrum = np.fft.rfft(rng.standard_normal((n_rows, n_times)), axis=-1)
    spectrum *= amplitude_of_freq(freqs)
    out = np.fft.irfft(spectrum, n=n_times, axis=-1)
    out -= out.mean(axis=-1, keepdims=True)
    out /= np.maximum(out.std(axis=-1, keepdims=True), np.finfo(float).tiny)
    return out


def _band_mask(freqs, low, high, edge_hz=0.5):
    """Smooth (raised-cosine edges of ``edge_hz``) pass band from ``low`` to ``high`` Hz."""
    rise = np.clip((freqs - (low - edge_hz / 2)) / edge_hz, 0, 1)
    fall = np.clip(((high + edge_hz / 2) - freqs) / edge_hz, 0, 1)
    return np.sin(0.5 * np.pi * rise) ** 2 * np.sin(0.5 * np.pi * fall) ** 2


def _check_positive(name, value):
    if not np.isfinite(value) or value <= 0:
        raise UsageError(f"{name} must be a positive number, got {value!r}.")


# --------------------------------------------------------------------------------------------
# Planted HRFs


def hrf_time_to_peak(params, *, support_s: float = HRF_SUPPORT_S) -> np.ndarray:
    """Time to peak of SPM double-gamma HRFs, found by bounded scalar maximisation.

    Parameters
    ----------
    params : array_like, shape (6,) or (M, 6)
        Response delay (s), undershoot delay (s), response dispersion (s), undershoot
        dispersion (s), response/undershoot ratio, onset (s): the order of
        :data:`samba_bids.model.hrf.HRF_PARAMETER_NAMES`.
    support_s : float
        The search interval is ``(onset, onset + support_s)``.

    Returns
    -------
    ndarray, shape () or (M,)
        Time of the maximum, s after the neural event.
    """
    from scipy import optimize

    params = np.asarray(params, dtype=float)
    flat = np.atleast_2d(params)
    out = np.empty(len(flat))
    for i, p in enumerate(flat):
        grid = np.arange(0.0, support_s, 0.01)
        coarse = grid[np.argmax(spm_double_gamma(grid, p))]
        res = optimize.minimize_scalar(
            lambda t, p=p: -spm_double_gamma(np.array([t]), p)[0],
            bounds=(max(coarse - 0.02, 0.0), coarse + 0.02), method="bounded",
            options={"xatol": 1e-6},
        )
        out[i] = res.x
    return out.reshape(params.shape[:-1])


def spm_double_gamma(t_s, params) -> np.ndarray:
    """SPM double-gamma HRF at times ``t_s`` (numpy twin of ``model.hrf.double_gamma``).

    Parameters
    ----------
    t_s : array_like, shape (T,)
        Times after the neural event, s.
    params : array_like, shape (6,)
        The six parameters in :data:`samba_bids.model.hrf.HRF_PARAMETER_NAMES` order.

    Returns
    -------
    ndarray, shape (T,)
        ``gamma.pdf(t - o, d1 / s1, scale=s1) - gamma.pdf(t - o, d2 / s2, scale=s2) / r``, 1/s.
    """
    from scipy import stats

    d1, d2, s1, s2, ratio, onset = (float(v) for v in params)
    x = np.asarray(t_s, dtype=float) - onset
    return stats.gamma.pdf(x, d1 / s1, scale=s1) - stats.gamma.pdf(x, d2 / s2, scale=s2) / ratio


def plant_hrfs(n_parcels: int, rng: np.random.Generator) -> pd.DataFrame:
    """Draw one physiological double-gamma HRF per BOLD parcel with time to peak in 4-7 s.

    Undershoot delay uniform in 14-18 s, dispersions uniform in 0.8-1.2 s, ratio uniform in
    4-10, onset uniform in 0-0.5 s; the response delay is then solved (Brent's method) so that
    the time to peak equals a target drawn uniform in :data:`TIME_TO_PEAK_S`. Every value lies
    inside the bounds of :data:`samba_bids.model.hrf.HRF_PARAMETERS`.

    Parameters
    ----------
    n_parcels : int
        Number of BOLD parcels M.
    rng : numpy.random.Generator
        Random generator.

    Returns
    -------
    pandas.DataFrame, shape (M, 7)
        The six parameters (:data:`samba_bids.model.hrf.HRF_PARAMETER_NAMES`) and
        ``time_to_peak_s``.
    """
    from scipy import optimize

    from .model.hrf import HRF_PARAMETER_NAMES

    target = rng.uniform(*TIME_TO_PEAK_S, n_parcels)
    d2 = rng.uniform(14.0, 18.0, n_parcels)
    s1 = rng.uniform(0.8, 1.2, n_parcels)
    s2 = rng.uniform(0.8, 1.2, n_parcels)
    ratio = rng.uniform(4.0, 10.0, n_parcels)
    onset = rng.uniform(0.0, 0.5, n_parcels)
    d1 = np.empty(n_parcels)
    for m in range(n_parcels):
        def miss(delay, m=m):
            p = (delay, d2[m], s1[m], s2[m], ratio[m], onset[m])
            return float(hrf_time_to_peak(p)) - target[m]

        d1[m] = optimize.brentq(miss, 3.0, 10.0, xtol=1e-6)
    params = np.column_stack([d1, d2, s1, s2, ratio, onset])
    frame = pd.DataFrame(params, columns=list(HRF_PARAMETER_NAMES))
    frame["time_to_peak_s"] = hrf_time_to_peak(params)
    return frame


def hrf_kernels(params, step_s: float, support_s: float = HRF_SUPPORT_S) -> np.ndarray:
    """Planted HRFs sampled at ``k * step_s`` over ``support_s``, normalised to unit sum.

    Returns
    -------
    ndarray, shape (M, K + 1)
    """
    t = np.arange(int(round(support_s / step_s)) + 1) * step_s
    kernels = np.stack([spm_double_gamma(t, p) for p in np.atleast_2d(params)])
    return kernels / kernels.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------------------------
# Planted mixing


def plant_mixing(source_centroids_mm, bold_centroids_mm, source_names, bold_names,
                 rng: np.random.Generator) -> pd.DataFrame:
    """Sparse mixing from source-parcel band power to BOLD parcels.

    Each BOLD parcel is driven by its :data:`N_SOURCES_PER_BOLD` nearest source parcels (on the
    same hemisphere side, by centroid distance); the nearest with full weight, the next with
    half. Through each of them: ``alpha`` with weight ``-U(0.5, 1.0)`` (alpha power and BOLD are
    anticorrelated), plus one or two of ``delta``, ``theta``, ``beta``, ``gamma`` (``gamma``
    twice as likely as each other) with weight ``+U(0.5, 1.0)``; the bands are chosen once per
    BOLD parcel.

    Parameters
    ----------
    source_centroids_mm, bold_centroids_mm : ndarray, shape (N, 3) and (M, 3)
        Parcel centroids, mm.
    source_names, bold_names : list of str
        Parcel names.
    rng : numpy.random.Generator
        Random generator.

    Returns
    -------
    pandas.DataFrame
        Long format, one row per nonzero weight: ``bold_parcel``, ``source_parcel``, ``band``,
        ``weight`` (unitless: percent signal change per unit of z-scored log band power, before
        :data:`BOLD_GAIN` and the unit-sum HRF).
    """
    source_centroids_mm = np.asarray(source_centroids_mm, float)
    bold_centroids_mm = np.asarray(bold_centroids_mm, float)
    distance = np.linalg.norm(bold_centroids_mm[:, None] - source_centroids_mm[None], axis=-1)
    # same hemisphere only (x < 0: left): the Schaefer names carry it too
    src_lh = np.array(["_LH_" in n for n in source_names])
    bold_lh = np.array(["_LH_" in n for n in bold_names])
    distance[bold_lh[:, None] != src_lh[None, :]] = np.inf
    others = ["delta", "theta", "beta", "gamma"]
    probs = np.array([1.0, 1.0, 1.0, 2.0]) / 5.0
    rows = []
    for m, bold_name in enumerate(bold_names):
        nearest = np.argsort(distance[m])[:N_SOURCES_PER_BOLD]
        n_extra = int(rng.integers(1, 3))
        extra = list(rng.choice(others, size=n_extra, replace=False, p=probs))
        bands = ["alpha"] + sorted(extra, key=list(BANDS).index)
        for rank, n in enumerate(nearest):
            scale = 1.0 if rank == 0 else 0.5
            for band in bands:
                sign = -1.0 if band == "alpha" else 1.0
                rows.append({
                    "bold_parcel": bold_name,
                    "source_parcel": source_names[n],
                    "band": band,
                    "weight": round(sign * scale * float(rng.uniform(0.5, 1.0)), 6),
                })
    return pd.DataFrame(rows, columns=["bold_parcel", "source_parcel", "band", "weight"])


def mixing_matrix(mixing: pd.DataFrame, source_names, bold_names) -> np.ndarray:
    """Dense weights, shape (M, N, n_bands) in :data:`BANDS` order, from the long table."""
    w = np.zeros((len(bold_names), len(source_names), len(BANDS)))
    bi = {n: i for i, n in enumerate(bold_names)}
    si = {n: i for i, n in enumerate(source_names)}
    ki = {b: i for i, b in enumerate(BANDS)}
    for row in mixing.itertuples(index=False):
        w[bi[row.bold_parcel], si[row.source_parcel], ki[row.band]] += row.weight
    return w


# --------------------------------------------------------------------------------------------
# Source-parcel activity


@dataclass
class ParcelActivity:
    """Simulated source-parcel activity of one subject.

    Attributes
    ----------
    data : ndarray of float32, shape (n_parcels, n_times)
        Unit-free activity (1/f background of unit variance plus band components).
    sfreq_hz : float
        Sampling rate, Hz.
    band_amplitude : ndarray, shape (n_parcels, n_bands)
        RMS amplitude of each band component (before its envelope), :data:`BANDS` order.
    background_exponent : ndarray, shape (n_parcels,)
        1/f exponent beta of the background.
    envelope_timescale_s : ndarray, shape (n_parcels, n_bands)
        Correlation time of each slow envelope, s.
    """

    data: np.ndarray
    sfreq_hz: float
    band_amplitude: np.ndarray = field(default=None)
    background_exponent: np.ndarray = field(default=None)
    envelope_timescale_s: np.ndarray = field(default=None)


def network_groups(names, *, bilateral: bool = True) -> np.ndarray:
    """Group index per Schaefer parcel: its network (``Vis``), or hemisphere and network.

    Resting-state band-power fluctuations are shared by a network's regions and, strongly, by
    homotopic regions of the two hemispheres; the default groups both hemispheres of a network.

    Parameters
    ----------
    names : list of str
        Schaefer 2018 parcel names, e.g. ``7Networks_LH_Vis_1``.
    bilateral : bool
        True: one group per network (``Vis``); False: per hemisphere and network (``LH_Vis``).

    Returns
    -------
    ndarray of int, shape (n_parcels,)
        0-based group index, in order of first appearance.
    """
    parts = slice(2, 3) if bilateral else slice(1, 3)
    keys = ["_".join(str(n).split("_")[parts]) for n in names]
    order = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    return np.array([order[k] for k in keys], dtype=int)


def simulate_parcel_activity(n_parcels: int, n_times: int, sfreq_hz: float,
                             rng: np.random.Generator, *, block: int = 10, groups=None,
                             group_coupling: float = 0.0) -> ParcelActivity:
    """1/f background plus band-limited components with slow envelopes, per source parcel.

    With ``groups``, each band's slow log-envelope of a parcel mixes its group's envelope
    (weight ``sqrt(group_coupling)``) with its own (``sqrt(1 - group_coupling)``): large-scale
    (network) co-fluctuation of band power, which scalp EEG can resolve, unlike the
    independent fluctuation of 100 neighbouring parcels.

    Parameters
    ----------
    n_parcels : int
        Number of source parcels N.
    n_times : int
        Number of samples.
    sfreq_hz : float
        Sampling rate, Hz (at least 2 x 45 Hz).
    rng : numpy.random.Generator
        Random generator.
    block : int
        Parcels generated at once (bounds the FFT work arrays).
    groups : ndarray of int, shape (n_parcels,) | None
        Group of each parcel (:func:`network_groups`); None: every parcel independent.
    group_coupling : float
        Share of the slow log-envelope variance common to a group, 0..1.

    Returns
    -------
    ParcelActivity
        ``data`` shape (n_parcels, n_times), float32.
    """
    n_bands = len(BANDS)
    amplitude = np.column_stack([rng.uniform(*BAND_AMPLITUDE[b], n_parcels) for b in BANDS])
    exponent = rng.uniform(*BACKGROUND_EXPONENT, n_parcels)
    timescale = rng.uniform(*ENVELOPE_TIMESCALE_S, (n_parcels, n_bands))
    data = np.empty((n_parcels, n_times), dtype=np.float32)
    # envelopes on the coarse grid, interpolated to the samples
    step = DRIVE_STEP_S
    n_coarse = int(np.ceil(n_times / sfreq_hz / step)) + 2
    t_coarse = np.arange(n_coarse) * step
    t = np.arange(n_times) / sfreq_hz
    group_slow = None
    if groups is not None and group_coupling > 0:
        groups = np.asarray(groups, dtype=int)
        group_rng = rng.spawn(1)[0]  # leaves ``rng``'s own stream unchanged
        n_groups = int(groups.max()) + 1
        group_tau = group_rng.uniform(*ENVELOPE_TIMESCALE_S, (n_groups, n_bands, 1))
        group_slow = np.stack([
            _shaped_noise(group_rng, n_groups, n_coarse,
                          lambda f, tau=group_tau[:, k]: np.exp(-0.5 * (f * np.pi * tau / 2) ** 2)
                          * (f > 0), 1.0 / step)
            for k in range(n_bands)], axis=1)  # (n_groups, n_bands, n_coarse)
    for start in range(0, n_parcels, block):
        stop = min(start + block, n_parcels)
        rows = stop - start
        beta = exponent[start:stop, None]
        signal = _shaped_noise(
            rng, rows, n_times,
            lambda f, beta=beta: np.maximum(f, 1.0) ** (-beta / 2) * (f > 0), sfreq_hz,
        )
        for k, (name, (low, high)) in enumerate(BANDS.items()):
            carrier = _shaped_noise(
                rng, rows, n_times, lambda f, lo=low, hi=high: _band_mask(f, lo, hi)[None],
                sfreq_hz,
            )
            tau = timescale[start:stop, k, None]
            # Gaussian-spectrum process: correlation time ~ tau
            slow = _shaped_noise(
                rng, rows, n_coarse,
                lambda f, tau=tau: np.exp(-0.5 * (f * np.pi * tau / 2) ** 2) * (f > 0),
                1.0 / step,
            )
            if group_slow is not None:
                slow = (np.sqrt(1.0 - group_coupling) * slow
                        + np.sqrt(group_coupling) * group_slow[groups[start:stop], k])
            log_amp = ENVELOPE_LOG_SD * slow - ENVELOPE_LOG_SD**2  # E[exp(2 log_amp)] = 1
            env = np.stack([np.interp(t, t_coarse, row) for row in np.exp(log_amp)])
            signal += amplitude[start:stop, k, None] * env * carrier
        data[start:stop] = signal
    return ParcelActivity(data=data, sfreq_hz=float(sfreq_hz), band_amplitude=amplitude,
                          background_exponent=exponent, envelope_timescale_s=timescale)


def band_log_power(data, sfreq_hz: float, step_s: float = DRIVE_STEP_S, *,
                   block: int = 10) -> np.ndarray:
    """Log band power per parcel, band and ``step_s`` bin (FFT Hilbert transform).

    Parameters
    ----------
    data : ndarray, shape (N, n_times)
        Parcel signals.
    sfreq_hz : float
        Sampling rate, Hz.
    step_s : float
        Bin length, s; ``step_s * sfreq_hz`` should be an integer (else it is rounded).
    block : int
        Parcels transformed at once.

    Returns
    -------
    ndarray, shape (N, n_bands, n_bins)
        Natural log of the mean squared magnitude of the band's analytic signal in each bin
        (bands in :data:`BANDS` order; ``n_bins = n_times // round(step_s * sfreq_hz)``).
    """
    n_parcels, n_times = data.shape
    per_bin = max(1, int(round(step_s * sfreq_hz)))
    n_bins = n_times // per_bin
    freqs = np.fft.fftfreq(n_times, 1.0 / sfreq_hz)
    out = np.empty((n_parcels, len(BANDS), n_bins))
    tiny = np.finfo(float).tiny
    for start in range(0, n_parcels, block):
        stop = min(start + block, n_parcels)
        spectrum = np.fft.fft(np.asarray(data[start:stop], dtype=float), axis=-1)
        for k, (low, high) in enumerate(BANDS.values()):
            # analytic signal of the band: positive frequencies doubled, negative ones zeroed
            mask = 2.0 * _band_mask(np.abs(freqs), low, high) * (freqs > 0)
            analytic = np.fft.ifft(spectrum * mask, axis=-1)
            power = analytic.real**2 + analytic.imag**2
            binned = power[:, : n_bins * per_bin].reshape(stop - start, n_bins, per_bin)
            out[start:stop, k] = np.log(binned.mean(axis=-1) + tiny)
    return out


# --------------------------------------------------------------------------------------------
# Sensors


def eeg_channel_names(n_channels: int) -> list[str]:
    """``n_channels`` spread-out 10-05 electrode names.

    Farthest-point sampling (starting at Cz) over the 72 easycap-M1 positions that the
    ``fsaverage_1005`` montage holds (over all of ``fsaverage_1005`` above 72 channels);
    positions from ``fsaverage_1005``.

    Raises
    ------
    UsageError
        If ``n_channels`` is not between 8 and the montage's size.
    """
    import mne

    montage = mne.channels.make_standard_montage("fsaverage_1005")
    positions = montage.get_positions()["ch_pos"]
    easycap = mne.channels.make_standard_montage("easycap-M1").ch_names
    pool = [n for n in easycap if n in positions]
    if n_channels > len(pool):
        pool = list(positions)
    if not 8 <= n_channels <= len(pool):
        raise UsageError(
            f"n_channels must be between 8 and {len(positions)} for EEG, got {n_channels}."
        )
    xyz = np.array([positions[n] for n in pool])
    chosen = [pool.index("Cz")]
    dist = np.linalg.norm(xyz - xyz[chosen[0]], axis=1)
    while len(chosen) < n_channels:
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(xyz - xyz[nxt], axis=1))
    return [pool[i] for i in sorted(chosen)]


def _eeg_info(n_channels: int, sfreq_hz: float):
    import mne

    names = eeg_channel_names(n_channels)
    info = mne.create_info(names, sfreq_hz, "eeg")
    info.set_montage(mne.channels.make_standard_montage("fsaverage_1005"), verbose=False)
    return info


def head_sphere() -> tuple[np.ndarray, float]:
    """Sphere fitted to MNE's fsaverage scalp above the fiducial plane, in head coordinates.

    The scalp is ``mne/data/fsaverage/fsaverage-head.fif`` moved into the head frame with
    MNE's ``fsaverage-trans.fif`` (the transform the template forward uses); points below the
    fiducial plane (face, neck) are left out, as in the EEG sphere model of
    :func:`samba_bids.ephys.source.make_template_forward`.

    Returns
    -------
    centre : ndarray, shape (3,)
        Centre in head coordinates, m (about (0, 12, 42) mm).
    radius : float
        Radius, m (about 96 mm).
    """
    import mne
    from mne.transforms import apply_trans, invert_transform

    from .ephys.source import FSAVERAGE_HEAD, FSAVERAGE_TRANS

    scalp = mne.read_bem_surfaces(FSAVERAGE_HEAD, verbose=False)[0]["rr"]
    scalp = apply_trans(invert_transform(mne.read_trans(FSAVERAGE_TRANS, verbose=False)), scalp)
    points = scalp[scalp[:, 2] > 0]
    # least squares: |p|^2 = 2 p.c + (r^2 - |c|^2)
    design = np.column_stack([2.0 * points, np.ones(len(points))])
    sol = np.linalg.lstsq(design, (points**2).sum(axis=1), rcond=None)[0]
    centre = sol[:3]
    return centre, float(np.sqrt(sol[3] + centre @ centre))


def meg_helmet(n_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions and normals of a synthetic whole-head magnetometer helmet.

    ``n_channels`` points spread evenly (golden-angle spiral, equal area per point) over a
    spherical cap of radius :data:`MEG_HELMET_RADIUS_M` around the centre of
    :func:`head_sphere`, from the vertex down to :data:`MEG_HELMET_LOWEST_ELEVATION_DEG`
    (about the level of the ears and the inion). With the defaults the sensors lie 12 mm or
    more from the fsaverage scalp (median about 24 mm), 3.4 cm apart for 102 sensors.

    Parameters
    ----------
    n_channels : int
        Number of sensors.

    Returns
    -------
    positions : ndarray, shape (n_channels, 3)
        Sensor centres in head coordinates, m (the helmet's device frame is the head frame).
    normals : ndarray, shape (n_channels, 3)
        Unit outward radial normals (the magnetometers' axes).
    """
    centre, _ = head_sphere()
    z_low = np.sin(np.radians(MEG_HELMET_LOWEST_ELEVATION_DEG))
    step = (np.arange(n_channels) + 0.5) / n_channels
    z = 1.0 - step * (1.0 - z_low)  # equal-area steps in z over the cap
    azimuth = (np.arange(n_channels) + 0.5) * np.pi * (3.0 - np.sqrt(5.0))  # golden angle
    ring = np.sqrt(1.0 - z**2)
    normals = np.column_stack([ring * np.cos(azimuth), ring * np.sin(azimuth), z])
    return centre + MEG_HELMET_RADIUS_M * normals, normals


def meg_channel_names(n_channels: int) -> list[str]:
    """``MEG0001`` .. ``MEG<n>``: names of the helmet's magnetometers."""
    return [f"MEG{i:04d}" for i in range(1, n_channels + 1)]


def _meg_info(n_channels: int, sfreq_hz: float):
    """Measurement info of the helmet: magnetometers, device frame = head frame.

    Each channel's ``loc`` is its centre and the coil's x, y and z (normal) axes; the coil type
    is :data:`mne.io.constants.FIFF.FIFFV_COIL_VV_MAG_T3` (a Vectorview magnetometer). The
    fsaverage fiducials (in head coordinates) are stored as digitisation points, so the head
    frame of the recording is the one of MNE's ``fsaverage-trans.fif``.
    """
    import mne
    from mne.io.constants import FIFF
    from mne.transforms import Transform, apply_trans, invert_transform

    from .ephys.source import FSAVERAGE_TRANS

    if not 8 <= n_channels <= 400:
        raise UsageError(f"n_channels must be between 8 and 400 for MEG, got {n_channels}.")
    positions, normals = meg_helmet(n_channels)
    info = mne.create_info(meg_channel_names(n_channels), sfreq_hz, "mag")
    with info._unlock():
        info["dev_head_t"] = Transform("meg", "head")  # identity
    for ch, pos, ez in zip(info["chs"], positions, normals):
        # tangential axes: ex horizontal (along the azimuth), ey = ez x ex
        ex = np.cross([0.0, 0.0, 1.0], ez)
        norm = np.linalg.norm(ex)
        ex = ex / norm if norm > 1e-6 else np.array([1.0, 0.0, 0.0])
        ey = np.cross(ez, ex)
        ch["loc"] = np.concatenate([pos, ex, ey, ez])
        ch["coil_type"] = FIFF.FIFFV_COIL_VV_MAG_T3
        ch["kind"] = FIFF.FIFFV_MEG_CH
        ch["unit"] = FIFF.FIFF_UNIT_T
        ch["coord_frame"] = FIFF.FIFFV_COORD_DEVICE
    fiducials, _ = mne.io.read_fiducials(FSAVERAGE_TRANS.with_name("fsaverage-fiducials.fif"),
                                         verbose=False)
    mri_head = invert_transform(mne.read_trans(FSAVERAGE_TRANS, verbose=False))
    points = {int(f["ident"]): apply_trans(mri_head, f["r"]) for f in fiducials}
    montage = mne.channels.make_dig_montage(
        nasion=points[FIFF.FIFFV_POINT_NASION], lpa=points[FIFF.FIFFV_POINT_LPA],
        rpa=points[FIFF.FIFFV_POINT_RPA], coord_frame="head")
    info.set_montage(montage, verbose=False)
    return info


def parcel_gain(forward, labels) -> tuple[np.ndarray, np.ndarray]:
    """Gain of each parcel's signed, uniform vertex activity at the sensors.

    A parcel with activity ``s(t)`` puts ``flip_j * s(t)`` (unit dipole moment, A m) on each of
    its vertices ``j``, with ``flip_j`` the sign from :func:`mne.label_sign_flip` (the sign of
    the vertex normal on the label's dominant orientation): MNE's ``mean_flip`` extraction of
    the source estimate returns ``s(t)``.

    Parameters
    ----------
    forward : mne.Forward
        Fixed-orientation forward (``force_fixed=True, surf_ori=True``).
    labels : list of mne.Label, length N
        Parcels.

    Returns
    -------
    gain : ndarray, shape (n_channels, N)
        Sensor signal per unit (A m per vertex) of parcel activity, V/(A m) or T/(A m).
    n_vertices : ndarray of int, shape (N,)
        Vertices of each label in the forward's source space.
    """
    import mne

    src = forward["src"]
    G = forward["sol"]["data"]
    offsets = [0, len(src[0]["vertno"])]
    gain = np.zeros((G.shape[0], len(labels)))
    counts = np.zeros(len(labels), dtype=int)
    for p, label in enumerate(labels):
        h = 0 if label.hemi == "lh" else 1
        vertno = src[h]["vertno"]
        sel = np.intersect1d(label.vertices, vertno)
        if not len(sel):
            continue
        cols = offsets[h] + np.searchsorted(vertno, sel)
        flip = mne.label_sign_flip(label, src)
        gain[:, p] = G[:, cols] @ flip
        counts[p] = len(sel)
    return gain, counts


# --------------------------------------------------------------------------------------------
# Writers


def _gifti(data, structure, tr_s):
    import nibabel as nib

    meta = {"AnatomicalStructurePrimary": structure, "TimeStep": f"{tr_s * 1000:.1f}"}
    darrays = [
        nib.gifti.GiftiDataArray(col, intent="NIFTI_INTENT_TIME_SERIES",
                                 datatype="NIFTI_TYPE_FLOAT32")
        for col in np.ascontiguousarray(data.T, dtype=np.float32)
    ]
    return nib.gifti.GiftiImage(darrays=darrays, meta=nib.gifti.GiftiMetaData(meta))


def _description(name, kind, **extra):
    from . import __version__

    out = {"Name": name, "BIDSVersion": "1.9.0", "DatasetType": kind}
    if kind == "derivative":
        out["GeneratedBy"] = [{"Name": "samba-bids-simulate", "Version": __version__}]
    out.update(extra)
    return out


def _small_volume_atlas(templates_dir, n_parcels):
    """Schaefer volume atlas on a 4 mm grid (nearest neighbour): labels, affine."""
    import nibabel as nib
    from nilearn.image import resample_img

    from .templates import volume_atlas

    path, _ = volume_atlas(templates_dir, "MNI152NLin6Asym", n_parcels)
    atlas = nib.load(str(path))
    affine = atlas.affine.copy()
    affine[:3, :3] *= VOLUME_DOWNSAMPLE
    shape = tuple(int(np.ceil(s / VOLUME_DOWNSAMPLE)) for s in atlas.shape[:3])
    small = resample_img(atlas, target_affine=affine, target_shape=shape,
                         interpolation="nearest", force_resample=True, copy_header=True)
    return np.rint(np.asarray(small.dataobj)).astype(int), affine


def _grayordinate_parcels(templates_dir, n_parcels, bold_names):
    """fsLR 91k dlabel as indices into ``bold_names`` (1-based, 0 = none), its grayordinates.

    The dlabel's parcels are matched to the simulated BOLD parcels by Schaefer name.
    """
    from .templates import cifti_atlas, read_cifti_labels

    path, _ = cifti_atlas(templates_dir, n_parcels)
    labels, names, brain_models = read_cifti_labels(path)
    index = {name: k for k, name in enumerate(bold_names)}
    missing = [n for n in names if n not in index]
    if missing:
        raise NoInputError(
            f"{path.name} has parcels not among the fsaverage5 BOLD parcels ({missing[:3]}); "
            "use a templates folder whose fsLR and fsaverage5 atlases are both Schaefer 2018."
        )
    lut = np.zeros(len(names) + 1, dtype=int)
    lut[1:] = [index[n] + 1 for n in names]
    return lut[labels], brain_models


def _dtseries(data, brain_models, tr_s):
    """(n_grayordinates, n_volumes) data as a CIFTI-2 dense time series, float32."""
    import nibabel as nib
    from nibabel.cifti2.cifti2_axes import SeriesAxis

    series = SeriesAxis(start=0.0, step=float(tr_s), size=data.shape[1], unit="SECOND")
    img = nib.Cifti2Image(np.ascontiguousarray(data.T, dtype=np.float32),
                          header=(series, brain_models))
    img.nifti_header.set_intent("NIFTI_INTENT_CONNECTIVITY_DENSE_SERIES")
    return img


# --------------------------------------------------------------------------------------------
# The dataset


def simulate_dataset(
    root,
    templates_dir,
    *,
    n_subjects: int = 1,
    duration_s: float = 600.0,
    tr_s: float = 2.0,
    modality: str = "eeg",
    n_channels: int | None = None,
    sfreq_hz: float = 250.0,
    snr: float = DEFAULT_SNR,
    ephys_scale: int = 100,
    bold_scale: int = 200,
    spaces=("fsaverage5", "MNI152NLin6Asym"),
    seed: int = 0,
    progress: bool = False,
) -> Path:
    """Write a BIDS EEG-fMRI (or MEG-fMRI) dataset with a known ground truth.

    See the module docstring for the generative model.

    Parameters
    ----------
    root : path-like
        Dataset folder to create (may exist; files of the same names are overwritten).
    templates_dir : path-like
        Templates folder (``--templates-dir`` layout): ``fsaverage5/`` with surfaces and
        Schaefer annotations, ``MNI152NLin6Asym/`` with the Schaefer volume atlas (or the
        offline fallback of :func:`samba_bids.templates.build_fallback_templates`, which has
        no MNI folder).
    n_subjects : int
        Participants ``sub-01`` .. ``sub-<n>``.
    duration_s : float
        Length of the BOLD run, s; ``n_volumes = floor(duration_s / tr_s)``. The recording is
        ``FIRST_VOLUME_S + n_volumes * tr_s + TAIL_S`` long.
    tr_s : float
        Repetition time, s.
    modality : {'eeg', 'meg'}
        Electrophysiology modality: EEG (BrainVision, 10-05 electrodes, sphere model or
        three-layer BEM) or MEG (FIF, magnetometers of the synthetic helmet of
        :func:`meg_helmet`, single-layer inner-skull BEM).
    n_channels : int | None
        EEG electrodes (10-05 positions, spread out; see :func:`eeg_channel_names`) or MEG
        magnetometers (8-400); None: :data:`DEFAULT_CHANNELS` (64 EEG, 102 MEG).
    sfreq_hz : float
        Sampling rate of the recording, Hz (>= 100, and ``sfreq_hz * 0.1`` an integer).
    snr : float
        ``var(noiseless parcel BOLD) / var(noise)`` per parcel (a variance ratio); the expected
        noise ceiling is ``sqrt(snr / (1 + snr))`` (default 16/9: 0.8).
    ephys_scale : int
        Schaefer 2018 scale of the source parcels (100, 200 or 400).
    bold_scale : int
        Schaefer 2018 scale of the BOLD parcels (100, 200 or 400).
    spaces : sequence of {'fsaverage5', 'MNI152NLin6Asym', 'fsLR'}
        BOLD spaces to write. ``MNI152NLin6Asym`` is skipped, with a logged warning, when the
        templates folder has no ``MNI152NLin6Asym/``, and ``fsLR`` when it has no fsLR 91k
        Schaefer dlabel at ``bold_scale`` (the truth parameters list the spaces written).
        ``fsLR`` writes ``_space-fsLR_den-91k_bold.dtseries.nii`` (fMRIPrep's CIFTI name):
        each grayordinate of a dlabel parcel carries the simulated BOLD of the parcel of the
        same Schaefer name plus noise, like a fsaverage5 vertex; the other grayordinates
        (medial wall, subcortex) carry the baseline plus noise.
    seed : int
        Seed of everything: the planted HRFs and mixing (shared by the subjects) and each
        subject's activity and noise.
    progress : bool
        Log each subject's timing and noise ceiling at INFO level (else DEBUG).

    Returns
    -------
    Path
        ``root``.

    Raises
    ------
    NoInputError
        If ``templates_dir`` is None or lacks the template files (or the MNI folder when
        ``spaces`` asks for MNI152NLin6Asym or fsLR alone).
    UsageError
        If a parameter is out of range.
    """
    import mne
    import mne_bids
    import nibabel as nib
    from scipy.signal import fftconvolve

    from .ephys.source import make_template_forward, template_labels
    from .templates import (
        is_fallback_templates,
        surface_atlas,
        surface_parcel_centroids,
    )

    t_start = time.perf_counter()
    if templates_dir is None:
        raise NoInputError(
            "simulate_dataset needs a templates folder (fsaverage5 surfaces and Schaefer "
            "atlases); pass --templates-dir PATH, or build an offline one with "
            "samba_bids.templates.find_templates_dir(fallback=True)."
        )
    templates_dir = Path(templates_dir)
    if not templates_dir.is_dir():
        raise NoInputError(f"{templates_dir} does not exist; pass the templates folder.")
    if modality not in SENSOR_LEVELS:
        raise UsageError(f"modality must be 'eeg' or 'meg', got {modality!r}.")
    if n_channels is None:
        n_channels = DEFAULT_CHANNELS[modality]
    for name, value in (("duration_s", duration_s), ("tr_s", tr_s), ("snr", snr),
                        ("sfreq_hz", sfreq_hz)):
        _check_positive(name, value)
    if sfreq_hz < 100:
        raise UsageError(f"sfreq_hz must be at least 100 Hz (bands up to 45 Hz), got {sfreq_hz}.")
    if abs(sfreq_hz * DRIVE_STEP_S - round(sfreq_hz * DRIVE_STEP_S)) > 1e-9:
        raise UsageError(f"sfreq_hz x {DRIVE_STEP_S} s must be a whole number, got {sfreq_hz}.")
    for name, value in (("ephys_scale", ephys_scale), ("bold_scale", bold_scale)):
        if value not in (100, 200, 400):
            raise UsageError(f"{name} must be 100, 200 or 400, got {value!r}.")
    spaces = tuple(spaces)
    unknown = sorted(set(spaces) - {"fsaverage5", "MNI152NLin6Asym", "fsLR"})
    if unknown or not spaces:
        raise UsageError(
            f"spaces must be among fsaverage5, MNI152NLin6Asym, fsLR; got {spaces}."
        )
    fslr_dlabel = Path(templates_dir) / "fsLR" / (
        f"tpl-fsLR_den-91k_atlas-Schaefer2018_desc-{bold_scale}Parcels7Networks_dseg.dlabel.nii"
    )
    if "fsLR" in spaces and not fslr_dlabel.is_file():
        spaces = tuple(s for s in spaces if s != "fsLR")
        if not spaces:
            raise NoInputError(
                f"{fslr_dlabel} is missing, and fsLR is the only space asked for; pass a "
                "templates folder with the fsLR 91k Schaefer dlabel or another space."
            )
        logger.warning("%s is missing: the fsLR space is skipped, only %s is written.",
                       fslr_dlabel, ", ".join(spaces))
    if "MNI152NLin6Asym" in spaces and not (templates_dir / "MNI152NLin6Asym").is_dir():
        spaces = tuple(s for s in spaces if s != "MNI152NLin6Asym")
        if not spaces:
            raise NoInputError(
                f"{templates_dir} has no MNI152NLin6Asym folder, the only space asked for; "
                "pass a templates folder with the MNI atlas or spaces=('fsaverage5',)."
            )
        logger.warning("%s has no MNI152NLin6Asym folder%s: the MNI152NLin6Asym space is "
                       "skipped, only %s is written.", templates_dir,
                       " (offline fallback templates)" if is_fallback_templates(templates_dir)
                       else "", ", ".join(spaces))
    n_volumes = int(np.floor(duration_s / tr_s + 1e-9))
    if n_volumes < 10:
        raise UsageError(f"duration_s / tr_s gives {n_volumes} volumes; at least 10 are needed.")
    if n_subjects < 1:
        raise UsageError(f"n_subjects must be at least 1, got {n_subjects}.")

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    preproc = root / "derivatives" / "preproc"
    truth = root / "derivatives" / "truth"
    preproc.mkdir(parents=True, exist_ok=True)
    truth.mkdir(parents=True, exist_ok=True)

    # --- what every subject shares: atlases, forward, planted HRFs and mixing ---------------
    src_vertex_parcels, source_names = surface_atlas(templates_dir, EPHYS_SUBJECT, ephys_scale)
    source_centroids = surface_parcel_centroids(templates_dir, EPHYS_SUBJECT, src_vertex_parcels)
    bold_vertex_parcels, bold_names = surface_atlas(templates_dir, "fsaverage5", bold_scale)
    bold_centroids = surface_parcel_centroids(templates_dir, "fsaverage5", bold_vertex_parcels)
    shared_rng = _subject_rng(seed, 0, 0)
    hrf = plant_hrfs(len(bold_names), shared_rng)
    hrf.insert(0, "parcel", bold_names)
    mixing = plant_mixing(source_centroids, bold_centroids, source_names, bold_names, shared_rng)
    weights = mixing_matrix(mixing, source_names, bold_names)  # (M, N, bands)
    kernels = hrf_kernels(hrf.iloc[:, 1:7].to_numpy(), DRIVE_STEP_S)

    info = (_eeg_info if modality == "eeg" else _meg_info)(n_channels, sfreq_hz)
    signal_rms, noise_sd_sensor, sensor_unit = SENSOR_LEVELS[modality]
    if modality == "eeg":
        sensors = {"Sensors": f"{n_channels} EEG electrodes at fsaverage_1005 10-05 positions "
                              "(spread by farthest-point sampling from Cz)"}
    else:
        centre, _ = head_sphere()
        sensors = {
            "Sensors": f"{n_channels} synthetic magnetometers (coil type FIFFV_COIL_VV_MAG_T3, "
                       "radial axes), spread by a golden-angle spiral with equal area per "
                       f"sensor over a spherical cap of radius {MEG_HELMET_RADIUS_M * 1000:g} "
                       "mm around the centre of a sphere fitted to the fsaverage scalp "
                       f"(({', '.join(f'{v * 1000:.1f}' for v in centre)}) mm in head "
                       "coordinates), from the vertex down to "
                       f"{MEG_HELMET_LOWEST_ELEVATION_DEG:g} degrees elevation",
            "DeviceToHeadTransform": "identity (device frame = fsaverage head frame)",
        }
    forward, fwd_prov = make_template_forward(info, templates_dir, subject=EPHYS_SUBJECT,
                                              modality=modality)
    forward = mne.convert_forward_solution(forward, surf_ori=True, force_fixed=True,
                                           verbose=False)
    labels = template_labels(templates_dir, EPHYS_SUBJECT, ephys_scale)
    gain, n_label_vertices = parcel_gain(forward, labels)
    info = mne.pick_info(info, [info["ch_names"].index(n) for n in forward["info"]["ch_names"]])
    volume_atlas_small = None
    if "MNI152NLin6Asym" in spaces:
        volume_atlas_small = _small_volume_atlas(templates_dir, bold_scale)
    grayordinates = None
    if "fsLR" in spaces:
        grayordinates = _grayordinate_parcels(templates_dir, bold_scale, bold_names)

    write_json(root / "dataset_description.json", _description(
        f"samba-bids simulated {modality.upper()}-fMRI", "raw",
        Authors=["samba-bids simulator"],
        GeneratedBy=[{"Name": "samba-bids-simulate"}],
    ))
    write_json(preproc / "dataset_description.json", _description(
        "samba-bids simulated preprocessed BOLD", "derivative"))
    write_json(truth / "dataset_description.json", _description(
        "samba-bids simulation ground truth", "derivative",
        Description="Planted HRFs, mixing weights, noiseless and noisy parcel BOLD.",
    ))
    (truth / ".bidsignore").write_text("*_hrf.tsv\n*_metrics.tsv\n*_weights.tsv\n")

    first_volume_s = FIRST_VOLUME_S
    rec_duration_s = first_volume_s + n_volumes * tr_s + TAIL_S
    n_rec = int(round(rec_duration_s * sfreq_hz))
    n_lead = int(round(LEAD_IN_S * sfreq_hz))
    onsets_s = first_volume_s + np.arange(n_volumes) * tr_s
    band_list = list(BANDS)
    ceilings_all = []
    for index in range(1, n_subjects + 1):
        subject = f"{index:02d}"
        t_sub = time.perf_counter()
        # --- neural activity (lead-in + recording) --------------------------------------
        activity = simulate_parcel_activity(len(source_names), n_lead + n_rec, sfreq_hz,
                                            _subject_rng(seed, index, _STREAM_ACTIVITY),
                                            groups=network_groups(source_names),
                                            group_coupling=ENVELOPE_GROUP_COUPLING)
        # --- sensors ---------------------------------------------------------------------
        sensor_rng = _subject_rng(seed, index, _STREAM_SENSOR)
        probe = gain @ activity.data[:, n_lead: n_lead + min(n_rec, int(60 * sfreq_hz))]
        moment_am = signal_rms / np.median(np.sqrt(np.mean(probe**2, axis=1)))
        data = np.empty((len(info["ch_names"]), n_rec))
        step = int(CHUNK_S * sfreq_hz)
        for start in range(0, n_rec, step):
            stop = min(start + step, n_rec)
            data[:, start:stop] = moment_am * (gain @ activity.data[:, n_lead + start:
                                                                    n_lead + stop])
            data[:, start:stop] += noise_sd_sensor * sensor_rng.standard_normal(
                (data.shape[0], stop - start))
        raw = mne.io.RawArray(data, info.copy(), verbose=False)
        raw.set_meas_date(None)
        raw.set_annotations(mne.Annotations(onsets_s, 0.0, TRIGGER))
        bids_path = mne_bids.BIDSPath(subject=subject, task=TASK, root=root,
                                      datatype=modality)
        mne_bids.write_raw_bids(raw, bids_path, allow_preload=True, overwrite=True,
                                format="BrainVision" if modality == "eeg" else "FIF",
                                verbose=False)
        if modality == "meg":  # MNE-BIDS guesses the maker from the .fif extension
            mne_bids.update_sidecar_json(
                bids_path.copy().update(suffix="meg", extension=".json"),
                {"Manufacturer": "n/a",
                 "ManufacturersModelName": "synthetic magnetometer helmet (samba-bids-simulate)"},
                verbose=False,
            )
        del raw, data

        # --- band power and BOLD ----------------------------------------------------------
        logpow = band_log_power(activity.data, sfreq_hz)  # (N, bands, bins), bins from lead-in
        z = (logpow - logpow.mean(axis=-1, keepdims=True)) / logpow.std(axis=-1, keepdims=True)
        drive = np.einsum("mnk,nkt->mt", weights, z)  # (M, bins)
        response = BOLD_GAIN * fftconvolve(drive, kernels, axes=-1)[:, : drive.shape[1]]
        t_bins = (np.arange(drive.shape[1]) + 0.5) * DRIVE_STEP_S - LEAD_IN_S  # recording clock
        t_acq = onsets_s + tr_s / 2.0
        noiseless = np.stack([np.interp(t_acq, t_bins, row) for row in response], axis=1)
        bold_rng = _subject_rng(seed, index, _STREAM_BOLD)
        noise_sd = noiseless.std(axis=0) / np.sqrt(snr)
        noisy = noiseless + noise_sd * bold_rng.standard_normal(noiseless.shape)
        ceiling = np.array([np.corrcoef(noiseless[:, m], noisy[:, m])[0, 1]
                            for m in range(noisy.shape[1])])
        ceilings_all.append(ceiling)
        # band power per volume (truth for the reverse direction): mean log power in [t, t+TR)
        per_volume = np.empty((len(source_names), len(BANDS), n_volumes))
        for v, onset in enumerate(onsets_s):
            lo = int(round((onset + LEAD_IN_S) / DRIVE_STEP_S))
            hi = int(round((onset + tr_s + LEAD_IN_S) / DRIVE_STEP_S))
            per_volume[:, :, v] = logpow[:, :, lo:hi].mean(axis=-1)
        del activity

        # --- preprocessed BOLD -----------------------------------------------------------
        func = preproc / f"sub-{subject}" / "func"
        func.mkdir(parents=True, exist_ok=True)
        prefix = f"sub-{subject}_task-{TASK}"
        image_rng = _subject_rng(seed, index, _STREAM_IMAGE)
        padded = np.vstack([np.zeros((1, n_volumes)), noisy.T])  # row 0: no parcel
        vertex_sd = np.concatenate([[np.median(noise_sd)], noise_sd]) * VERTEX_NOISE_FRACTION
        sidecar = {"RepetitionTime": tr_s, "TaskName": TASK,
                   "SliceTimingCorrected": True, "StartTime": tr_s / 2.0,
                   "Description": "Simulated by samba-bids-simulate (parcel BOLD plus noise)."}
        if "fsaverage5" in spaces:
            for hemi, key, structure in (("L", "lh", "CortexLeft"), ("R", "rh", "CortexRight")):
                lab = bold_vertex_parcels[key]
                values = BOLD_BASELINE + padded[lab] + vertex_sd[lab, None] * \
                    image_rng.standard_normal((len(lab), n_volumes))
                nib.save(_gifti(values, structure, tr_s),
                         func / f"{prefix}_hemi-{hemi}_space-fsaverage5_bold.func.gii")
            write_json(func / f"{prefix}_space-fsaverage5_bold.json", sidecar)
        if volume_atlas_small is not None:
            lab, affine = volume_atlas_small
            inside = lab > 0
            values = np.zeros(lab.shape + (n_volumes,), dtype=np.float32)
            idx = lab[inside]
            values[inside] = (BOLD_BASELINE + padded[idx] + vertex_sd[idx, None]
                              * image_rng.standard_normal((len(idx), n_volumes)))
            img = nib.Nifti1Image(values, affine)
            img.header.set_xyzt_units("mm", "sec")
            img.header["pixdim"][4] = tr_s
            nib.save(img, func / f"{prefix}_space-MNI152NLin6Asym_desc-preproc_bold.nii.gz")
            write_json(func / f"{prefix}_space-MNI152NLin6Asym_desc-preproc_bold.json", sidecar)
        if grayordinates is not None:
            lab, brain_models = grayordinates
            values = BOLD_BASELINE + padded[lab] + vertex_sd[lab, None] * \
                image_rng.standard_normal((len(lab), n_volumes))
            nib.save(_dtseries(values, brain_models, tr_s),
                     func / f"{prefix}_space-fsLR_den-91k_bold.dtseries.nii")
            write_json(func / f"{prefix}_space-fsLR_den-91k_bold.json", sidecar)
        conf_rng = _subject_rng(seed, index, _STREAM_CONFOUNDS)
        motion = np.cumsum(conf_rng.standard_normal((n_volumes, 6)), axis=0)
        motion -= motion.mean(axis=0)
        motion *= np.array([0.02] * 3 + [0.0002] * 3)  # mm, rad
        confounds = pd.DataFrame(motion, columns=["trans_x", "trans_y", "trans_z",
                                                  "rot_x", "rot_y", "rot_z"])
        for col in list(confounds.columns):
            confounds[f"{col}_derivative1"] = confounds[col].diff()
        confounds["csf"] = 100.0 + conf_rng.standard_normal(n_volumes)
        confounds["white_matter"] = 100.0 + conf_rng.standard_normal(n_volumes)
        confounds["global_signal"] = BOLD_BASELINE + noisy.mean(axis=1)
        confounds.to_csv(func / f"{prefix}_desc-confounds_timeseries.tsv", sep="\t",
                         index=False, na_rep="n/a")

        # --- truth -----------------------------------------------------------------------
        tdir = truth / f"sub-{subject}" / "func"
        tdir.mkdir(parents=True, exist_ok=True)
        hrf.to_csv(tdir / f"{prefix}_desc-truth_hrf.tsv", sep="\t", index=False,
                   float_format="%.6f")
        mixing.to_csv(tdir / f"{prefix}_desc-mixing_weights.tsv", sep="\t", index=False)
        pd.DataFrame(noiseless, columns=bold_names).to_csv(
            tdir / f"{prefix}_desc-noiseless_timeseries.tsv", sep="\t", index=False,
            float_format="%.6g")
        pd.DataFrame(noisy, columns=bold_names).to_csv(
            tdir / f"{prefix}_desc-noisy_timeseries.tsv", sep="\t", index=False,
            float_format="%.6g")
        pd.DataFrame(
            per_volume.transpose(2, 0, 1).reshape(n_volumes, -1),
            columns=[f"{n}_{b}" for n in source_names for b in band_list],
        ).to_csv(tdir / f"{prefix}_desc-sourcebandpower_timeseries.tsv", sep="\t",
                 index=False, float_format="%.5g")
        pd.DataFrame({"parcel": bold_names, "noise_ceiling_r": ceiling,
                      "noise_sd": noise_sd, "noiseless_sd": noiseless.std(axis=0)}).to_csv(
            tdir / f"{prefix}_desc-noiseceiling_metrics.tsv", sep="\t", index=False,
            float_format="%.6f")
        write_json(tdir / f"{prefix}_desc-truth_parameters.json", {
            "Description": "Parameters of the simulation of this subject (samba-bids-simulate).",
            "Seed": int(seed),
            "SubjectIndex": index,
            "RandomStreams": "numpy default_rng([Seed, SubjectIndex, stream]); stream 0 "
                             "activity, 1 sensor noise, 2 BOLD noise, 3 image noise, "
                             "4 confounds; [Seed, 0, 0] the shared HRFs and mixing",
            "SNR": float(snr),
            "SNRDefinition": "var(noiseless parcel BOLD) / var(noise), per parcel",
            "ExpectedNoiseCeiling": expected_noise_ceiling(snr),
            "MedianNoiseCeiling": float(np.median(ceiling)),
            "RepetitionTime": float(tr_s),
            "NumberOfVolumes": n_volumes,
            "DurationBOLD": n_volumes * float(tr_s),
            "RecordingDuration": n_rec / float(sfreq_hz),
            "FirstVolumeOnset": first_volume_s,
            "VolumeTrigger": TRIGGER,
            "BOLDSampleTime": "onset + TR/2 (middle of each volume's acquisition)",
            "LeadIn": LEAD_IN_S,
            "Modality": modality,
            "Channels": list(info["ch_names"]),
            "SamplingFrequency": float(sfreq_hz),
            "SourceParcels": f"Schaefer 2018, 7 networks, {ephys_scale} parcels on "
                             f"{EPHYS_SUBJECT}",
            "BOLDParcels": f"Schaefer 2018, 7 networks, {bold_scale} parcels",
            "Bands": {k: list(v) for k, v in BANDS.items()},
            "BandAmplitudeRange": {k: list(v) for k, v in BAND_AMPLITUDE.items()},
            "EnvelopeTimescaleRange": list(ENVELOPE_TIMESCALE_S),
            "EnvelopeLogSD": ENVELOPE_LOG_SD,
            "EnvelopeGroupCoupling": ENVELOPE_GROUP_COUPLING,
            "BackgroundExponentRange": list(BACKGROUND_EXPONENT),
            "DriveStep": DRIVE_STEP_S,
            "BandPower": "log mean analytic-signal power per 0.1 s bin, z-scored per parcel "
                         "and band over the simulated time",
            "SourceBandPowerPerVolume": "mean of the 0.1 s log band power over [onset, "
                                        "onset + TR) (not z-scored)",
            "HRF": "SPM double gamma (samba_bids.model.hrf.double_gamma), unit-sum kernel, "
                   f"{HRF_SUPPORT_S} s support, causal",
            "BOLDGain": BOLD_GAIN,
            "BOLDUnits": "percent signal change (images: 100 + value)",
            "VertexNoiseFraction": VERTEX_NOISE_FRACTION,
            "DipoleMomentPerVertex": float(moment_am),
            "DipoleMomentUnits": "A m per unit of parcel activity",
            "SensorNoiseSD": noise_sd_sensor,
            "SensorSignalRMS": signal_rms,
            "SensorUnits": sensor_unit,
            "SensorSignalRMSDefinition": "median over channels of the RMS of the noiseless "
                                         "brain signal over the first 60 s"
                                         + (" (before referencing)" if modality == "eeg"
                                            else ""),
            **sensors,
            "LabelVertices": dict(zip(source_names, n_label_vertices.tolist())),
            "ForwardModel": fwd_prov,
            "Confounds": "random motion (not added to the BOLD), csf/white_matter noise, "
                         "global_signal = 100 + mean noisy parcel BOLD",
            "Spaces": list(spaces),
        })
        logger.log(logging.INFO if progress else logging.DEBUG,
                   "sub-%s simulated in %.1f s (median noise ceiling %.3f)", subject,
                   time.perf_counter() - t_sub, float(np.median(ceiling)))
    (root / "README").write_text(
        f"Simulated {modality.upper()}-fMRI dataset written by samba-bids-simulate. The "
        "ground truth (planted HRFs, mixing weights, noiseless BOLD, noise ceilings) is in "
        "derivatives/truth.\n"
    )
    logger.info("Simulated %d subject(s) in %.1f s into %s (median noise ceiling %.3f)",
                n_subjects, time.perf_counter() - t_start, root,
                float(np.median(np.concatenate(ceilings_all))))
    return root


# --------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``samba-bids-simulate``."""
    parser = argparse.ArgumentParser(
        prog="samba-bids-simulate",
        description="Write a simulated BIDS EEG-fMRI (or MEG-fMRI) dataset with a known "
                    "ground truth (planted HRFs and mixing) for testing samba-bids.",
    )
    parser.add_argument("output_dir", type=Path, help="dataset folder to write")
    parser.add_argument("--templates-dir", type=Path, default=None,
                        help="templates folder (default: $SAMBA_TEMPLATES, then the cache, "
                             "else an offline fallback with sphere parcels, fsaverage5 only)")
    parser.add_argument("--subjects", type=int, default=1, help="number of participants")
    parser.add_argument("--duration", type=float, default=600.0, help="BOLD run length, s")
    parser.add_argument("--tr", type=float, default=2.0, help="repetition time, s")
    parser.add_argument("--modality", choices=tuple(SENSOR_LEVELS), default="eeg",
                        help="electrophysiology: EEG (BrainVision) or MEG (FIF, synthetic "
                             "magnetometer helmet)")
    parser.add_argument("--channels", type=int, default=None,
                        help="EEG electrodes or MEG magnetometers (default: 64 EEG, 102 MEG)")
    parser.add_argument("--snr", type=float, default=DEFAULT_SNR,
                        help="BOLD SNR as variance ratio (default 16/9: noise ceiling 0.8)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--sfreq", type=float, default=250.0, help="EEG/MEG sampling rate, Hz")
    parser.add_argument("--ephys-scale", type=int, default=100, choices=(100, 200, 400))
    parser.add_argument("--bold-scale", type=int, default=200, choices=(100, 200, 400))
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return parser


def main(argv=None) -> int:
    """Entry point of ``samba-bids-simulate``; returns the exit code.

    Parameters
    ----------
    argv : list of str | None
        Arguments (None: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, else the BIDS-App exit code of the error (64 usage, 66 no input, ...).
    """
    from .templates import find_templates_dir

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 for usage errors, 0 for --help
        return 0 if exc.code in (0, None) else UsageError.exit_code
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        templates_dir = find_templates_dir(args.templates_dir, fallback=True)
        simulate_dataset(
            args.output_dir, templates_dir, n_subjects=args.subjects, duration_s=args.duration,
            tr_s=args.tr, modality=args.modality, n_channels=args.channels, sfreq_hz=args.sfreq, snr=args.snr,
            ephys_scale=args.ephys_scale, bold_scale=args.bold_scale, seed=args.seed,
            progress=args.verbose,
        )
    except SambaBidsError as err:
        sys.stderr.write(f"samba-bids-simulate: {err}\n")
        return err.exit_code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
