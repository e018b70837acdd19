"""Source-parcel activity of the simulator: oscillations with slow envelopes, and band power.

The random streams of every simulated subject (:func:`_subject_rng`) are defined here too, so
that each step of :func:`samba_bids.simulate.simulate_dataset` draws from its own stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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


def coarse_grid_size(n_times: int, sfreq_hz: float) -> int:
    """Points of the slow-envelope grid of :func:`simulate_parcel_activity`.

    Parameters
    ----------
    n_times : int
        Samples of the call.
    sfreq_hz : float
        Sampling rate, Hz.

    Returns
    -------
    int
        ``ceil(n_times / sfreq_hz / DRIVE_STEP_S) + 2``: points ``k * DRIVE_STEP_S`` s after
        the first sample, past the last sample.
    """
    return int(np.ceil(n_times / sfreq_hz / DRIVE_STEP_S)) + 2


def _gaussian_spectrum(tau):
    """Amplitude spectrum of a Gaussian-spectrum process of correlation time ~ ``tau`` s."""
    return lambda f: np.exp(-0.5 * (f * np.pi * tau / 2) ** 2) * (f > 0)


def slow_log_envelopes(timescale_s, n_coarse: int, rng: np.random.Generator, *, groups=None,
                       group_coupling: float = 0.0) -> np.ndarray:
    """Unit-variance slow log-envelopes, the construction of :func:`simulate_parcel_activity`.

    Per parcel and band a Gaussian-spectrum process (Gaussian noise shaped by
    ``exp(-(pi f tau / 2)**2 / 2)``, correlation time ~ ``tau``) on the
    :data:`DRIVE_STEP_S` grid; with ``groups``, mixed with its group's process (correlation
    times drawn uniform in :data:`ENVELOPE_TIMESCALE_S`) as ``sqrt(1 - group_coupling) * own
    + sqrt(group_coupling) * group``. The draws are made band by band, all parcels at once
    (not in :func:`simulate_parcel_activity`'s order: use it for new streams).

    Parameters
    ----------
    timescale_s : ndarray, shape (n_parcels, n_bands)
        Correlation time of each parcel's own process, s.
    n_coarse : int
        Points of the grid.
    rng : numpy.random.Generator
        Random generator.
    groups : ndarray of int, shape (n_parcels,) | None
        Group of each parcel (:func:`network_groups`); None: every parcel independent.
    group_coupling : float
        Share of the variance common to a group, 0..1.

    Returns
    -------
    ndarray, shape (n_parcels, n_bands, n_coarse)
        Zero mean and unit variance per parcel and band (exactly, up to the group mixing).
    """
    timescale_s = np.asarray(timescale_s, dtype=float)
    n_parcels, n_bands = timescale_s.shape
    out = np.stack([_shaped_noise(rng, n_parcels, n_coarse,
                                  _gaussian_spectrum(timescale_s[:, k, None]), 1.0 / DRIVE_STEP_S)
                    for k in range(n_bands)], axis=1)
    if groups is not None and group_coupling > 0:
        groups = np.asarray(groups, dtype=int)
        n_groups = int(groups.max()) + 1
        group_tau = rng.uniform(*ENVELOPE_TIMESCALE_S, (n_groups, n_bands))
        group = slow_log_envelopes(group_tau, n_coarse, rng)
        out = np.sqrt(1.0 - group_coupling) * out + np.sqrt(group_coupling) * group[groups]
    return out


def _check_shared(shared_slow, shared_weight, shared_share, shape):
    """``shared_slow`` and ``shared_weight`` of :func:`simulate_parcel_activity`, checked."""
    shared_slow = np.asarray(shared_slow, dtype=float)
    if shared_slow.shape != shape:
        raise ValueError(f"shared_slow must have shape {shape} (parcels, bands, coarse grid), "
                         f"got {shared_slow.shape}.")
    if shared_weight is None:
        shared_weight = np.ones(shape[-1])
    shared_weight = np.asarray(shared_weight, dtype=float)
    if shared_weight.shape != shape[-1:]:
        raise ValueError(f"shared_weight must have shape {shape[-1:]}, got "
                         f"{shared_weight.shape}.")
    if np.any((shared_weight < 0) | (shared_weight > 1)) or not 0 <= shared_share <= 1:
        raise ValueError("shared_weight and shared_share must lie in 0..1.")
    return shared_slow, shared_weight


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
                             group_coupling: float = 0.0, shared_slow=None,
                             shared_weight=None, shared_share: float = 0.5) -> ParcelActivity:
    """1/f background plus band-limited components with slow envelopes, per source parcel.

    With ``groups``, each band's slow log-envelope of a parcel mixes its group's envelope
    (weight ``sqrt(group_coupling)``) with its own (``sqrt(1 - group_coupling)``): large-scale
    (network) co-fluctuation of band power, which scalp EEG can resolve, unlike the
    independent fluctuation of 100 neighbouring parcels.

    With ``shared_slow`` (a stimulus that other simulated people see too), the unit-variance
    slow log-envelope ``own`` of each parcel and band (the one drawn without it: same stream,
    same values) becomes ``sqrt(1 - a) * own + sqrt(a) * (c * shared + sqrt(1 - c**2) * fill)``
    with ``a = shared_share``, ``c = shared_weight`` (1 while the stimulus plays, 0 outside)
    and ``fill`` an independent envelope of the same kind as ``own`` (same correlation times,
    same group coupling; drawn from a generator spawned from ``rng`` after the group one, so
    ``rng``'s own stream is unchanged). Its variance stays 1 whatever ``c``.

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
    shared_slow : ndarray, shape (n_parcels, n_bands, n_coarse) | None
        Unit-variance slow log-envelopes shared with other people (:func:`slow_log_envelopes`)
        on this call's coarse grid: ``k * DRIVE_STEP_S`` s after the first sample,
        ``n_coarse = coarse_grid_size(n_times, sfreq_hz)``. None (default): the output is
        bit-identical to a call without the three ``shared_*`` arguments.
    shared_weight : ndarray, shape (n_coarse,) | None
        Weight ``c`` of ``shared_slow`` at each coarse time, in 0..1 (1: the stimulus plays);
        None: 1 throughout. Ignored without ``shared_slow``.
    shared_share : float
        Share ``a`` of the slow log-envelope variance from the shared part, 0..1. Ignored
        without ``shared_slow``.

    Returns
    -------
    ParcelActivity
        ``data`` shape (n_parcels, n_times), float32.

    Raises
    ------
    ValueError
        If ``shared_slow`` or ``shared_weight`` has the wrong shape, or ``shared_weight`` or
        ``shared_share`` is outside 0..1.
    """
    n_bands = len(BANDS)
    amplitude = np.column_stack([rng.uniform(*BAND_AMPLITUDE[b], n_parcels) for b in BANDS])
    exponent = rng.uniform(*BACKGROUND_EXPONENT, n_parcels)
    timescale = rng.uniform(*ENVELOPE_TIMESCALE_S, (n_parcels, n_bands))
    data = np.empty((n_parcels, n_times), dtype=np.float32)
    # envelopes on the coarse grid, interpolated to the samples
    step = DRIVE_STEP_S
    n_coarse = coarse_grid_size(n_times, sfreq_hz)
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
    fill = None
    if shared_slow is not None:
        shared_slow, shared_weight = _check_shared(shared_slow, shared_weight, shared_share,
                                                   (n_parcels, n_bands, n_coarse))
        fill = slow_log_envelopes(timescale, n_coarse, rng.spawn(1)[0], groups=groups,
                                  group_coupling=group_coupling)
        fill_weight = np.sqrt(1.0 - shared_weight**2)
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
            if fill is not None:
                part = (shared_weight * shared_slow[start:stop, k]
                        + fill_weight * fill[start:stop, k])
                slow = np.sqrt(1.0 - shared_share) * slow + np.sqrt(shared_share) * part
            log_amp = ENVELOPE_LOG_SD * slow - ENVELOPE_LOG_SD**2  # E[exp(2 log_amp)] = 1
            env = np.stack([np.interp(t, t_coarse, row) for row in np.exp(log_amp)])
            signal += amplitude[start:stop, k, None] * env * carrier
        data[start:stop] = signal
    return ParcelActivity(data=data, sfreq_hz=float(sfreq_hz), band_amplitude=amplitude,
                          background_exponent=exponent, envelope_timescale_s=timescale)


def source_model_parameters() -> dict:
    """The source model's constants, for the truth parameters JSON: bands, amplitudes,
    envelope time scales and coupling, background exponents, the band-power definition."""
    return {
        "Bands": {k: list(v) for k, v in BANDS.items()},
        "BandAmplitudeRange": {k: list(v) for k, v in BAND_AMPLITUDE.items()},
        "EnvelopeTimescaleRange": list(ENVELOPE_TIMESCALE_S),
        "EnvelopeLogSD": ENVELOPE_LOG_SD,
        "EnvelopeGroupCoupling": ENVELOPE_GROUP_COUPLING,
        "BackgroundExponentRange": list(BACKGROUND_EXPONENT),
        "DriveStep": DRIVE_STEP_S,
        "BandPower": "log mean analytic-signal power per 0.1 s bin, z-scored per parcel "
                     "and band over the simulated time",
    }


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

