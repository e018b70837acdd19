"""Hemodynamics of the simulator: planted HRFs, planted neurovascular mixing, parcel BOLD.

The BOLD of a parcel is a weighted sum of its source parcels' z-scored log band power (the
planted mixing), convolved causally with the parcel's planted double-gamma HRF, sampled at the
volumes and given white noise of a chosen SNR (:func:`simulate_parcel_bold`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .sources import BANDS

#: Support of the planted HRF kernels, s.
HRF_SUPPORT_S = 32.0
#: Range of the planted times to peak, s.
TIME_TO_PEAK_S = (4.0, 7.0)
#: Source parcels driving each BOLD parcel (nearest centroids).
N_SOURCES_PER_BOLD = 2
#: Percent signal change per unit of (z-scored log band power x weight), after the HRF.
BOLD_GAIN = 1.0
#: Default SNR (variance ratio): expected noise ceiling sqrt(s / (1 + s)) = 0.8.
DEFAULT_SNR = 16.0 / 9.0


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

    It is deliberately an independent implementation, so that the ground truth is not made by
    the code under test.

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

    from ..model.hrf import HRF_PARAMETER_NAMES

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
# Parcel BOLD


@dataclass
class ParcelBold:
    """Simulated parcel BOLD of one subject (percent signal change), shape (V, M) each.

    Attributes
    ----------
    noiseless : ndarray, shape (V, M)
        Mixing and HRFs only.
    noisy : ndarray, shape (V, M)
        ``noiseless`` plus white noise of standard deviation ``noise_sd``.
    noise_sd : ndarray, shape (M,)
        Standard deviation of each parcel's noise: ``std(noiseless) / sqrt(snr)``.
    ceiling : ndarray, shape (M,)
        Pearson r of each parcel's noiseless and noisy series (the noise ceiling).
    """

    noiseless: np.ndarray
    noisy: np.ndarray
    noise_sd: np.ndarray
    ceiling: np.ndarray


def simulate_parcel_bold(band_power, weights, kernels, t_bins_s, t_acq_s, snr: float,
                         rng: np.random.Generator) -> ParcelBold:
    """Parcel BOLD from source-parcel band power through the planted mixing and HRFs.

    The log band power is z-scored per parcel and band, mixed (:func:`mixing_matrix`),
    convolved causally with the unit-sum HRF kernels (:func:`hrf_kernels`), scaled by
    :data:`BOLD_GAIN`, interpolated at the volumes' sample times, and given white noise of
    variance ``var(noiseless) / snr`` per parcel.

    Parameters
    ----------
    band_power : ndarray, shape (N, n_bands, n_bins)
        Log band power of the source parcels (:func:`samba_bids.simulate.band_log_power`).
    weights : ndarray, shape (M, N, n_bands)
        Planted mixing weights.
    kernels : ndarray, shape (M, K + 1)
        Planted HRFs on the bins' grid.
    t_bins_s : ndarray, shape (n_bins,)
        Time of each bin on the recording clock, s.
    t_acq_s : ndarray, shape (V,)
        Sample time of each volume on the recording clock, s.
    snr : float
        ``var(noiseless) / var(noise)`` per parcel.
    rng : numpy.random.Generator
        Random generator of the BOLD noise.

    Returns
    -------
    ParcelBold
        Noiseless and noisy BOLD, noise SD and noise ceiling per parcel.
    """
    from scipy.signal import fftconvolve

    logpow = band_power
    z = (logpow - logpow.mean(axis=-1, keepdims=True)) / logpow.std(axis=-1, keepdims=True)
    drive = np.einsum("mnk,nkt->mt", weights, z)  # (M, bins)
    response = BOLD_GAIN * fftconvolve(drive, kernels, axes=-1)[:, : drive.shape[1]]
    noiseless = np.stack([np.interp(t_acq_s, t_bins_s, row) for row in response], axis=1)
    return add_bold_noise(noiseless, snr, rng)


def add_bold_noise(noiseless, snr: float, rng: np.random.Generator) -> ParcelBold:
    """White noise of variance ``var(noiseless) / snr`` per parcel, and the noise ceiling.

    Parameters
    ----------
    noiseless : ndarray, shape (V, M)
        Noiseless parcel BOLD, percent signal change.
    snr : float
        ``var(noiseless) / var(noise)`` per parcel.
    rng : numpy.random.Generator
        Random generator of the BOLD noise (one standard normal per volume and parcel).

    Returns
    -------
    ParcelBold
        ``noiseless``, the noisy BOLD, the noise SD and the noise ceiling per parcel.
    """
    noise_sd = noiseless.std(axis=0) / np.sqrt(snr)
    noisy = noiseless + noise_sd * rng.standard_normal(noiseless.shape)
    ceiling = np.array([np.corrcoef(noiseless[:, m], noisy[:, m])[0, 1]
                        for m in range(noisy.shape[1])])
    return ParcelBold(noiseless=noiseless, noisy=noisy, noise_sd=noise_sd, ceiling=ceiling)
