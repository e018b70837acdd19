"""EEG as recorded inside the MR scanner: gradient and pulse artefacts, and an ECG channel.

EEG recorded during fMRI carries two artefacts far larger than the EEG: the **gradient
artefact** (Allen et al. 2000, https://doi.org/10.1006/nimg.2000.0599), the voltage that the
switching imaging gradients induce in the loops of the electrode leads (Faraday's law: it
follows dB/dt), which repeats with every slice and every volume and is tens to hundreds of
times the EEG; and the **pulse (ballistocardiogram, BCG) artefact** (Allen et al. 1998,
https://doi.org/10.1006/nimg.1998.0361), from the pulsatile motion of the head and electrodes
in the static field, locked to the heartbeat a few hundred milliseconds after the ECG's R-peak,
a few times the EEG, and varying from beat to beat in amplitude and shape (Niazy et al. 2005,
https://doi.org/10.1016/j.neuroimage.2005.06.067).
:func:`simulate_scanner_recording` adds both to a clean simulated EEG, with an ECG channel, so
that artefact removal (:mod:`samba_bids.ephys.artifacts`) can be scored against the clean EEG.

What is modelled
----------------
* *Sampling*: the clean EEG (at the simulation's rate, 250 Hz by default) is upsampled to the
  scanner-compatible amplifier's rate (:data:`DEFAULT_SCANNER_SFREQ_HZ`) with
  :func:`scipy.signal.resample_poly`, one channel at a time.
* *Gradient artefact*: a 2D multi-slice EPI sequence whose slices fill the TR
  (:func:`slices_per_volume`: ``round(TR * 17.5 Hz)`` slices, e.g. 35 per 2 s). Each slice
  plays the same trapezoidal gradients on three axes (:func:`epi_gradients`): slice selection
  and rephasing (z), phase-encoding prephaser and blips (y), readout prephaser and an echo
  train of alternating lobes at about :data:`EPI_READOUT_HZ` (x), and spoilers; the first slice
  of each volume also plays a volume spoiler on all axes (a volume-level component, so the
  artefact repeats with the volume, not only with the slice). The basis waveforms are the time
  derivatives dG/dt of the three axes, computed exactly from their Fourier series (no
  aliasing), filtered by the amplifier's anti-aliasing low-pass (4th-order Butterworth
  magnitude, cut-off :data:`AMPLIFIER_LOWPASS_FRACTION` of the sampling rate: 1 kHz at 5 kHz)
  and normalised to unit RMS. Every channel (the ECG included) mixes the three with its own
  coupling vector (a random direction, log-normal length: channel-specific amplitude and
  shape), scaled so that the median EEG channel's artefact RMS is
  :data:`GRADIENT_RMS_RATIO` times the median clean EEG channel's RMS, and the ECG channel's
  :data:`ECG_GRADIENT_FRACTION` times that. A slow amplitude drift (per channel
  ``1 + GRADIENT_DRIFT_FRACTION * cos(2 pi t / P + phi)``, ``P`` 1-3 times the scan's length,
  constant within a volume) mimics changing lead positions and heating.
* *Volume timing*: the scanner's clock is not the amplifier's: each volume's true artefact
  onset lies at a sub-sample offset, uniform within :data:`VOLUME_JITTER_SAMPLES` samples of the
  ideal onset, and the ``Volume`` marker is written at the nearest sample, so the
  marker-to-artefact alignment jitters by up to half a sample. The artefact is present from the
  first volume's marker to the end of the last volume; the pre-scan segment (the simulator's
  ``FIRST_VOLUME_S``) and the tail carry the EEG and the pulse artefact only.
* *Heartbeats*: R-peaks with a heart rate drifting slowly around a rate drawn in
  :data:`HEART_RATE_BPM` (a sinusoid of :data:`HEART_RATE_DRIFT_BPM`, period
  :data:`HEART_RATE_DRIFT_PERIOD_S`) and beat-to-beat variability of the RR interval
  (:data:`RR_VARIABILITY`).
* *ECG channel* (:data:`ECG_CHANNEL`, type ``ecg``): a PQRST waveform per beat (sum of
  Gaussians, :data:`ECG_WAVES`; R-peak :data:`ECG_R_AMPLITUDE_V`) plus white noise, plus its
  own gradient artefact.
* *Pulse artefact* on every EEG channel: a smooth waveform 0.15-0.6 s after each R-peak, mixed
  per channel from two basis shapes (:func:`bcg_basis`; per-channel amplitude, sign and
  shape), with a per-beat amplitude factor (log-normal, :data:`BCG_BEAT_VARIABILITY`), scaled
  so that the median EEG channel's pulse-artefact RMS is :data:`BCG_RMS_RATIO` times the
  median clean EEG channel's RMS.

What is simplified
------------------
The gradient waveforms are idealised trapezoids with one coupling vector per channel (no
nonlinear or slew-rate-limited amplifier response, no helium-pump or ventilation artefacts, no
amplifier saturation); the sequence does not change between volumes apart from the drift and
the jitter (no slice-timing changes, no motion-dependent artefact change); the amplifier's
filter is zero-phase; the upsampled EEG carries no sensor noise above the simulation's Nyquist
frequency; the pulse artefact has a fixed latency after the R-peak (no beat-to-beat latency or
shape change beyond the amplitude factor) and no dependence on head motion; the ECG has no
baseline wander or T-wave changes with the heart rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Random stream (see :func:`samba_bids.simulate.sources._subject_rng`) of the MR artefacts;
#: streams 0-4 are the activity, sensor noise, BOLD noise, image noise and confounds, which the
#: artefacts leave unchanged.
_STREAM_SCANNER = 5

#: Default sampling rate of the in-scanner recording, Hz (BrainAmp MR plus, Allen et al. 2000).
DEFAULT_SCANNER_SFREQ_HZ = 5000.0
#: Slice rate of the simulated EPI sequence, Hz: ``round(TR * 17.5)`` slices fill the TR.
SLICE_RATE_HZ = 17.5
#: Readout frequency of the EPI echo train (one positive and one negative lobe), Hz.
EPI_READOUT_HZ = 1000.0
#: Readout lobes per slice (echo-train length).
EPI_ECHO_TRAIN = 64
#: Amplifier anti-aliasing low-pass: cut-off as a fraction of the sampling rate, and order
#: (Butterworth magnitude, zero phase).
AMPLIFIER_LOWPASS_FRACTION = 0.2
AMPLIFIER_LOWPASS_ORDER = 4
#: Median EEG channel's gradient-artefact RMS over the median clean EEG channel's RMS.
GRADIENT_RMS_RATIO = 100.0
#: Standard deviation of the log length of the channels' gradient coupling vectors.
GRADIENT_COUPLING_LOG_SD = 0.4
#: Amplitude of the slow drift of each channel's gradient artefact (fraction).
GRADIENT_DRIFT_FRACTION = 0.03
#: Period range of that drift, in multiples of the scan's duration.
GRADIENT_DRIFT_PERIOD = (1.0, 3.0)
#: True volume onsets lie uniformly within this many scanner samples of the ideal onset.
VOLUME_JITTER_SAMPLES = 1.0
#: ECG channel's gradient-artefact RMS over the median EEG channel's.
ECG_GRADIENT_FRACTION = 0.5
#: Name of the ECG channel.
ECG_CHANNEL = "ECG"
#: Range of the mean heart rate (drawn uniformly per run), beats per minute.
HEART_RATE_BPM = (62.0, 68.0)
#: Amplitude of the slow heart-rate drift, beats per minute, and its period range, s.
HEART_RATE_DRIFT_BPM = 3.0
HEART_RATE_DRIFT_PERIOD_S = (60.0, 180.0)
#: Beat-to-beat standard deviation of the RR interval (fraction; clipped at 2.5 SD).
RR_VARIABILITY = 0.02
#: R-peak amplitude of the ECG, V.
ECG_R_AMPLITUDE_V = 1.0e-3
#: Waves of the ECG around each R-peak: name, amplitude (V), latency (s), width (SD, s).
ECG_WAVES = (
    ("P", 0.15e-3, -0.20, 0.025),
    ("Q", -0.12e-3, -0.035, 0.010),
    ("R", ECG_R_AMPLITUDE_V, 0.0, 0.010),
    ("S", -0.25e-3, 0.035, 0.010),
    ("T", 0.30e-3, 0.25, 0.045),
)
#: Standard deviation of the white noise of the ECG channel, V.
ECG_NOISE_SD_V = 10e-6
#: Median EEG channel's pulse-artefact RMS over the median clean EEG channel's RMS.
BCG_RMS_RATIO = 3.0
#: Standard deviation of the log amplitude of the channels' pulse artefact.
BCG_CHANNEL_LOG_SD = 0.4
#: Standard deviation of the per-beat log amplitude factor of the pulse artefact.
BCG_BEAT_VARIABILITY = 0.15
#: Waves of the two pulse-artefact basis shapes after the R-peak: amplitude, latency (s),
#: width (SD, s); the second is the derivative-like (biphasic) shape.
BCG_WAVES = (
    ((1.0, 0.25, 0.040), (-0.6, 0.38, 0.050)),
    ((1.0, 0.22, 0.035), (-1.0, 0.32, 0.035), (0.4, 0.45, 0.050)),
)
#: Support of the per-beat ECG and pulse waveforms around the R-peak, s.
_ECG_SUPPORT_S = (-0.35, 0.55)
_BCG_SUPPORT_S = (0.0, 0.75)


@dataclass
class ScannerRecording:
    """An EEG recording made inside the scanner (:func:`simulate_scanner_recording`).

    Attributes
    ----------
    data : ndarray, shape (n_channels + 1, n_times)
        The EEG channels then the ECG channel, V, at ``sfreq_hz`` (float64: MNE's
        :class:`~mne.io.RawArray` takes it without a copy).
    ch_names : list of str
        EEG channel names then :data:`ECG_CHANNEL`.
    sfreq_hz : float
        Scanner sampling rate, Hz.
    tr_s : float
        Repetition time, s.
    marker_samples : ndarray of int, shape (n_volumes,)
        Sample of each ``Volume`` marker (the nearest sample to the true onset).
    true_onsets_s : ndarray, shape (n_volumes,)
        True onset of each volume's gradient artefact on the recording clock, s.
    r_peaks_s : ndarray, shape (n_beats,)
        R-peak times within the recording, s.
    beat_amplitude : ndarray, shape (n_beats,)
        Pulse-artefact amplitude factor of each of those beats.
    parameters : dict
        The ``MRArtifacts`` entry of the truth parameters.
    """

    data: np.ndarray
    ch_names: list
    sfreq_hz: float
    tr_s: float
    marker_samples: np.ndarray
    true_onsets_s: np.ndarray
    r_peaks_s: np.ndarray
    beat_amplitude: np.ndarray
    parameters: dict


# --------------------------------------------------------------------------------------------
# Gradient artefact


def slices_per_volume(tr_s: float) -> int:
    """Slices of the simulated EPI sequence per volume: ``round(tr_s * SLICE_RATE_HZ)``.

    Parameters
    ----------
    tr_s : float
        Repetition time, s.

    Returns
    -------
    int
        At least 1; the slices fill the TR (slice period ``tr_s / n_slices``, about 57 ms).
    """
    return max(1, int(round(tr_s * SLICE_RATE_HZ)))


def _trapezoids(slice_s: float) -> dict:
    """The gradient trapezoids of one slice, per axis: (start, ramp, flat, amplitude) rows.

    Times in s from the slice's start, amplitudes relative to the readout lobes. Returns the
    slice's trapezoids (``"x"``, ``"y"``, ``"z"``) and the volume spoiler played in the first
    slice of each volume only (``"volume"``: per axis).
    """
    ms = 1e-3
    lobe = 0.5 / EPI_READOUT_HZ  # one readout lobe; a positive and a negative one per period
    start = 6.0 * ms
    j = np.arange(EPI_ECHO_TRAIN)
    ramp = 0.2 * lobe
    readout = np.column_stack([start + j * lobe, np.full(len(j), ramp),
                               np.full(len(j), lobe - 2 * ramp), (-1.0) ** j])
    k = np.arange(1, EPI_ECHO_TRAIN)
    blips = np.column_stack([start + k * lobe - 0.05 * ms, np.full(len(k), 0.05 * ms),
                             np.zeros(len(k)), np.full(len(k), 0.15)])
    end = start + EPI_ECHO_TRAIN * lobe + 1.0 * ms  # spoilers after the echo train
    spoil = 0.6 * (slice_s - end)  # fits the slice whatever the TR
    x = np.vstack([[[4.0 * ms, 0.15 * ms, 0.8 * ms, -0.8]], readout,
                   [[end, 0.3 * ms, 0.5 * spoil, 0.6]]])
    y = np.vstack([[[4.0 * ms, 0.15 * ms, 0.8 * ms, -0.6]], blips])
    z = np.array([[1.0 * ms, 0.2 * ms, 2.6 * ms, 0.5],  # slice selection (RF)
                  [4.0 * ms, 0.2 * ms, 1.0 * ms, -0.7],  # rephaser
                  [end, 0.3 * ms, 0.5 * spoil, 0.8]])  # crusher
    vol_start = end + 0.6 * spoil
    volume = {axis: np.array([[vol_start, 0.5 * ms, 0.25 * spoil, amp]])
              for axis, amp in (("x", 1.0), ("y", -1.0), ("z", 1.0))}
    return {"x": x, "y": y, "z": z, "volume": volume}


def _slew_coefficients(trapezoids, period_s: float, k) -> np.ndarray:
    """Fourier coefficients of dG/dt of trapezoids repeating every ``period_s``, at bins ``k``.

    ``dG/dt`` of a trapezoid is a rectangle of height ``amp / ramp`` on the rising ramp and one
    of ``-amp / ramp`` on the falling ramp; the coefficient of a rectangle of height ``h`` over
    ``[a, b)`` is ``h (exp(-i w a) - exp(-i w b)) / (i w T)``, ``w = 2 pi k / T``.

    Returns
    -------
    ndarray of complex, shape (len(k),)
        Two-sided coefficients ``c_k`` of ``x(t) = sum_k c_k exp(i w_k t)`` (``c_0 = 0``).
    """
    k = np.asarray(k, dtype=float)
    w = 2.0 * np.pi * k / period_s
    safe = np.where(k == 0, 1.0, w)
    start, ramp, flat, amp = (np.asarray(trapezoids, dtype=float).T[:, :, None])
    edges = [start, start + ramp, start + ramp + flat, start + 2 * ramp + flat]

    def rect(a, b):
        return (np.exp(-1j * safe * a) - np.exp(-1j * safe * b)) / (1j * safe * period_s)

    coef = ((amp / ramp) * (rect(edges[0], edges[1]) - rect(edges[2], edges[3]))).sum(axis=0)
    return np.where(k == 0, 0.0, coef)


def epi_gradients(tr_s: float, sfreq_hz: float) -> tuple[np.ndarray, int]:
    """Basis waveforms of the gradient artefact over one volume: dG/dt of three axes.

    Each slice plays the trapezoids of :func:`_trapezoids` (x: readout, y: phase encoding,
    z: slice selection); the first slice of each volume adds the volume spoiler. The exact
    Fourier series of dG/dt (harmonics of ``1 / tr_s`` below the Nyquist frequency) is
    filtered by the amplifier's low-pass (Butterworth magnitude of order
    :data:`AMPLIFIER_LOWPASS_ORDER`, cut-off ``AMPLIFIER_LOWPASS_FRACTION * sfreq_hz``) and
    normalised to unit RMS per axis.

    Parameters
    ----------
    tr_s : float
        Repetition time, s.
    sfreq_hz : float
        Sampling rate, Hz; ``tr_s * sfreq_hz`` must be a whole number.

    Returns
    -------
    spectra : ndarray of complex, shape (3, n_per_volume // 2 + 1)
        ``numpy.fft.rfft`` of the x, y and z waveforms sampled from the volume's onset:
        ``numpy.fft.irfft(spectra, n_per_volume)`` is one volume of the artefact, unit RMS per
        axis (arbitrary unit).
    n_per_volume : int
        Samples per volume, ``round(tr_s * sfreq_hz)``.
    """
    n_per_volume = int(round(tr_s * sfreq_hz))
    n_slices = slices_per_volume(tr_s)
    slice_s = tr_s / n_slices
    k = np.arange(n_per_volume // 2 + 1)
    in_band = k < n_per_volume / 2.0  # no Nyquist bin
    freqs = k / tr_s
    gain = 1.0 / np.sqrt(1.0 + (freqs / (AMPLIFIER_LOWPASS_FRACTION * sfreq_hz))
                         ** (2 * AMPLIFIER_LOWPASS_ORDER))
    trapezoids = _trapezoids(slice_s)
    slice_bins = (k % n_slices == 0) & in_band
    spectra = np.zeros((3, len(k)), dtype=complex)
    for row, axis in enumerate(("x", "y", "z")):
        # the slice's waveform repeats every slice: harmonics of the slice rate only, and its
        # coefficient over the volume equals its coefficient over one slice
        spectra[row, slice_bins] = _slew_coefficients(trapezoids[axis], slice_s,
                                                      k[slice_bins] // n_slices)
        spectra[row, in_band] += _slew_coefficients(trapezoids["volume"][axis], tr_s,
                                                    k[in_band])
    spectra *= gain
    two_sided_power = 2.0 * np.sum(np.abs(spectra) ** 2, axis=1, keepdims=True)
    spectra /= np.sqrt(two_sided_power)  # unit RMS (c_0 = 0, no Nyquist bin)
    return spectra * n_per_volume, n_per_volume


def volume_timing(onsets_s, sfreq_hz: float, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """True gradient-artefact onsets (sub-sample jitter) and the marker samples.

    Parameters
    ----------
    onsets_s : ndarray, shape (n_volumes,)
        Ideal volume onsets on the recording clock, s.
    sfreq_hz : float
        Scanner sampling rate, Hz.
    rng : numpy.random.Generator
        Random generator of the jitter.

    Returns
    -------
    true_onsets_s : ndarray, shape (n_volumes,)
        Ideal onsets plus a uniform offset within :data:`VOLUME_JITTER_SAMPLES` samples, s.
    marker_samples : ndarray of int, shape (n_volumes,)
        The nearest sample to each true onset (where the ``Volume`` marker is written).
    """
    onsets_s = np.asarray(onsets_s, dtype=float)
    offsets = rng.uniform(-VOLUME_JITTER_SAMPLES, VOLUME_JITTER_SAMPLES, len(onsets_s))
    true_samples = onsets_s * sfreq_hz + offsets
    return true_samples / sfreq_hz, np.round(true_samples).astype(np.int64)


def _add_gradient(out, spectra, n_per_volume, coupling, drift, true_onsets_s,
                  marker_samples, sfreq_hz) -> None:
    """Add the gradient artefact to ``out`` (in place), one volume at a time.

    Volume ``v`` fills the samples from its marker to the next volume's marker (the last one:
    one volume's length), ``out[:, n] += coupling * drift[:, v] @ x((n - true onset) / fs)``
    with ``x`` the periodic basis of :func:`epi_gradients` delayed by the sub-sample offset.
    """
    k = np.arange(spectra.shape[1])
    ends = np.append(marker_samples[1:], marker_samples[-1] + n_per_volume)
    for v, (start, stop) in enumerate(zip(marker_samples, ends)):
        delay = true_onsets_s[v] * sfreq_hz - start  # in [-0.5, 0.5] samples
        basis = np.fft.irfft(spectra * np.exp(-2j * np.pi * k * delay / n_per_volume),
                             n_per_volume)
        index = np.arange(stop - start) % n_per_volume  # a volume one sample long wraps
        out[:, start:stop] += (coupling * drift[:, v, None]) @ basis[:, index]


# --------------------------------------------------------------------------------------------
# Heartbeats, ECG and pulse artefact


def heartbeats(duration_s: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """R-peak times of a heart rate drifting slowly around 60-70 bpm.

    The rate is ``hr0 + HEART_RATE_DRIFT_BPM * sin(2 pi t / P + phi)`` (``hr0`` uniform in
    :data:`HEART_RATE_BPM`, ``P`` uniform in :data:`HEART_RATE_DRIFT_PERIOD_S`); each RR interval
    is ``60 / rate`` times ``1 + RR_VARIABILITY * z`` (``z`` standard normal, clipped at 2.5).

    Parameters
    ----------
    duration_s : float
        Length of the recording, s.
    rng : numpy.random.Generator
        Random generator.

    Returns
    -------
    r_peaks_s : ndarray, shape (n_beats,)
        R-peaks from one second before the recording (so the first pulse artefacts are whole)
        to its end, s.
    description : dict
        Mean rate, drift amplitude and period (for the truth).
    """
    hr0 = rng.uniform(*HEART_RATE_BPM)
    period = rng.uniform(*HEART_RATE_DRIFT_PERIOD_S)
    phase = rng.uniform(0.0, 2.0 * np.pi)
    t = -1.0 + rng.uniform(0.0, 60.0 / hr0)
    beats = []
    while t < duration_s:
        beats.append(t)
        rate = hr0 + HEART_RATE_DRIFT_BPM * np.sin(2.0 * np.pi * t / period + phase)
        t += 60.0 / rate * (1.0 + RR_VARIABILITY * np.clip(rng.standard_normal(), -2.5, 2.5))
    return np.asarray(beats), {"MeanHeartRate": float(hr0),
                               "HeartRateDriftAmplitude": HEART_RATE_DRIFT_BPM,
                               "HeartRateDriftPeriod": float(period)}


def ecg_waveform(t_s) -> np.ndarray:
    """One heartbeat of the ECG (PQRST, :data:`ECG_WAVES`) at times from the R-peak.

    Parameters
    ----------
    t_s : ndarray
        Times relative to the R-peak, s.

    Returns
    -------
    ndarray, same shape as ``t_s``
        ECG, V (R-peak :data:`ECG_R_AMPLITUDE_V`).
    """
    t_s = np.asarray(t_s, dtype=float)
    return sum(amp * np.exp(-0.5 * ((t_s - lat) / sd) ** 2) for _, amp, lat, sd in ECG_WAVES)


def bcg_basis(t_s) -> np.ndarray:
    """The two basis shapes of the pulse artefact at times from the R-peak.

    Sums of Gaussians (:data:`BCG_WAVES`) between about 0.15 and 0.6 s after the R-peak,
    smooth (below about 10 Hz): a monophasic-then-rebound shape and a biphasic one. Every EEG
    channel mixes them with its own weights.

    Parameters
    ----------
    t_s : ndarray, shape (n,)
        Times relative to the R-peak, s.

    Returns
    -------
    ndarray, shape (2, n)
        Unit peak amplitude per shape (arbitrary unit).
    """
    t_s = np.asarray(t_s, dtype=float)
    shapes = np.array([sum(amp * np.exp(-0.5 * ((t_s - lat) / sd) ** 2)
                           for amp, lat, sd in waves) for waves in BCG_WAVES])
    dense = np.linspace(*_BCG_SUPPORT_S, 2001)
    peaks = np.array([np.abs(sum(amp * np.exp(-0.5 * ((dense - lat) / sd) ** 2)
                                 for amp, lat, sd in waves)).max() for waves in BCG_WAVES])
    return shapes / peaks[:, None]


def _beat_trains(r_peaks_s, beat_amplitude, n_times, sfreq_hz):
    """The ECG and the two pulse-artefact trains over the recording.

    Returns
    -------
    ecg : ndarray, shape (n_times,)
        Sum of :func:`ecg_waveform` over the beats, V.
    trains : ndarray, shape (2, n_times)
        Sum over the beats of ``beat_amplitude * bcg_basis``.
    """
    ecg = np.zeros(n_times)
    trains = np.zeros((2, n_times))
    for peak, amp in zip(r_peaks_s, beat_amplitude):
        lo = max(0, int(np.ceil((peak + _ECG_SUPPORT_S[0]) * sfreq_hz)))
        hi = min(n_times, int(np.floor((peak + _BCG_SUPPORT_S[1]) * sfreq_hz)) + 1)
        if hi <= lo:
            continue
        t_rel = np.arange(lo, hi) / sfreq_hz - peak
        ecg[lo:hi] += ecg_waveform(t_rel)
        trains[:, lo:hi] += amp * bcg_basis(t_rel)
    return ecg, trains


# --------------------------------------------------------------------------------------------
# The recording


def simulate_scanner_recording(clean, *, sfreq_hz: float, onsets_s, tr_s: float,
                               scanner_sfreq_hz: float, ch_names,
                               rng: np.random.Generator) -> ScannerRecording:
    """The in-scanner recording of a clean EEG: upsampled, gradient and pulse artefacts, ECG.

    See the module docstring for the model. Memory: the result (float64) plus one channel's
    worth of temporaries and the two pulse-artefact trains; the clean EEG is upsampled one
    channel at a time.

    Parameters
    ----------
    clean : ndarray, shape (n_channels, n_times)
        Clean EEG at ``sfreq_hz``, V.
    sfreq_hz : float
        Sampling rate of ``clean``, Hz.
    onsets_s : ndarray, shape (n_volumes,)
        Ideal volume onsets on the recording clock, s.
    tr_s : float
        Repetition time, s.
    scanner_sfreq_hz : float
        Sampling rate of the in-scanner recording, Hz: an integer multiple of ``sfreq_hz``,
        with ``tr_s * scanner_sfreq_hz`` a whole number.
    ch_names : list of str
        Names of the EEG channels of ``clean``.
    rng : numpy.random.Generator
        Random generator of the artefacts (stream :data:`_STREAM_SCANNER`).

    Returns
    -------
    ScannerRecording
        The EEG channels and the ECG channel at ``scanner_sfreq_hz``, the marker samples, the
        true onsets, the R-peaks and the truth parameters.
    """
    from scipy.signal import resample_poly

    n_eeg, n_clean = clean.shape
    up = int(round(scanner_sfreq_hz / sfreq_hz))
    n_times = n_clean * up
    onsets_s = np.asarray(onsets_s, dtype=float)
    eeg_rms = float(np.median(np.sqrt(np.mean(clean ** 2, axis=1))))

    # draws, in a fixed order: gradient coupling, drift, volume jitter, heart, pulse, ECG noise
    n_rows = n_eeg + 1
    direction = rng.standard_normal((n_rows, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    coupling = direction * np.exp(GRADIENT_COUPLING_LOG_SD * rng.standard_normal((n_rows, 1)))
    scan_s = len(onsets_s) * tr_s
    drift_period = rng.uniform(*GRADIENT_DRIFT_PERIOD, n_rows) * scan_s
    drift_phase = rng.uniform(0.0, 2.0 * np.pi, n_rows)
    true_onsets_s, marker_samples = volume_timing(onsets_s, scanner_sfreq_hz, rng)
    r_peaks_s, heart = heartbeats(n_times / scanner_sfreq_hz, rng)
    bcg_angle = rng.uniform(0.0, 2.0 * np.pi, n_eeg)
    bcg_size = np.exp(BCG_CHANNEL_LOG_SD * rng.standard_normal(n_eeg))
    beat_amplitude = np.exp(BCG_BEAT_VARIABILITY * rng.standard_normal(len(r_peaks_s)))

    # gradient: scale so the median EEG channel's RMS over the scan is GRADIENT_RMS_RATIO times
    # the clean EEG's, the ECG's ECG_GRADIENT_FRACTION times that
    spectra, n_per_volume = epi_gradients(tr_s, scanner_sfreq_hz)
    basis = np.fft.irfft(spectra, n_per_volume)
    gram = basis @ basis.T / n_per_volume
    t_volume = onsets_s - onsets_s[0]
    drift = 1.0 + GRADIENT_DRIFT_FRACTION * np.cos(
        2.0 * np.pi * t_volume[None, :] / drift_period[:, None] + drift_phase[:, None])
    unit_rms = np.sqrt(np.einsum("ca,ab,cb->c", coupling, gram, coupling)
                       * np.mean(drift ** 2, axis=1))
    target = GRADIENT_RMS_RATIO * eeg_rms
    coupling[:n_eeg] *= target / np.median(unit_rms[:n_eeg])
    coupling[n_eeg] *= ECG_GRADIENT_FRACTION * target / unit_rms[n_eeg]
    gradient_rms = np.sqrt(np.einsum("ca,ab,cb->c", coupling, gram, coupling)
                           * np.mean(drift ** 2, axis=1))

    # pulse artefact: scale so the median EEG channel's RMS is BCG_RMS_RATIO times the EEG's
    ecg, trains = _beat_trains(r_peaks_s, beat_amplitude, n_times, scanner_sfreq_hz)
    weights = bcg_size[:, None] * np.column_stack([np.cos(bcg_angle), np.sin(bcg_angle)])
    train_gram = trains @ trains.T / n_times
    bcg_rms = np.sqrt(np.einsum("ca,ab,cb->c", weights, train_gram, weights))
    weights *= BCG_RMS_RATIO * eeg_rms / np.median(bcg_rms)
    bcg_rms *= BCG_RMS_RATIO * eeg_rms / np.median(bcg_rms)

    data = np.empty((n_rows, n_times))
    for ch in range(n_eeg):
        data[ch] = resample_poly(clean[ch], up, 1) if up > 1 else clean[ch]
        data[ch] += weights[ch] @ trains
    del trains
    data[n_eeg] = ecg
    del ecg
    data[n_eeg] += ECG_NOISE_SD_V * rng.standard_normal(n_times)
    _add_gradient(data, spectra, n_per_volume, coupling, drift, true_onsets_s,
                  marker_samples, scanner_sfreq_hz)

    inside = (r_peaks_s >= 0.0) & (r_peaks_s < n_times / scanner_sfreq_hz)
    rr = np.diff(r_peaks_s[inside])
    names = list(ch_names)
    parameters = {
        "Description": "EEG recorded inside the MR scanner: the clean EEG upsampled, plus a "
                       "gradient artefact (dG/dt of a multi-slice EPI sequence) and a pulse "
                       "(ballistocardiogram) artefact locked to the simulated ECG "
                       "(samba_bids.simulate.scanner).",
        "RandomStream": _STREAM_SCANNER,
        "ScannerSamplingFrequency": float(scanner_sfreq_hz),
        "UpsamplingFactor": up,
        "Upsampling": "scipy.signal.resample_poly(x, up, 1) per channel (Kaiser window)",
        "SlicesPerVolume": slices_per_volume(tr_s),
        "SliceRate": slices_per_volume(tr_s) / float(tr_s),
        "EPIReadoutFrequency": EPI_READOUT_HZ,
        "EPIEchoTrainLength": EPI_ECHO_TRAIN,
        "GradientBasis": "dG/dt of the x (readout), y (phase encoding), z (slice selection) "
                         "gradients; the first slice of each volume adds a volume spoiler",
        "AmplifierLowpass": {"Cutoff": AMPLIFIER_LOWPASS_FRACTION * float(scanner_sfreq_hz),
                             "Order": AMPLIFIER_LOWPASS_ORDER,
                             "Type": "Butterworth magnitude, zero phase"},
        "CleanEEGRMS": eeg_rms,
        "CleanEEGRMSDefinition": "median over the EEG channels of the RMS of the clean EEG "
                                 "over the recording",
        "GradientToEEGRMSRatio": float(np.median(gradient_rms[:n_eeg]) / eeg_rms),
        "GradientRMSDefinition": "RMS of a channel's gradient artefact from the first volume "
                                 "onset to the end of the last volume",
        "GradientRMS": dict(zip(names, gradient_rms[:n_eeg].tolist())),
        "GradientCoupling": dict(zip(names + [ECG_CHANNEL], coupling.tolist())),
        "ECGGradientRMS": float(gradient_rms[n_eeg]),
        "GradientDrift": f"1 + {GRADIENT_DRIFT_FRACTION} cos(2 pi t / P + phi) per channel, "
                         f"P uniform in {list(GRADIENT_DRIFT_PERIOD)} times the scan's length, "
                         "constant within a volume",
        "GradientDriftFraction": GRADIENT_DRIFT_FRACTION,
        "VolumeJitter": f"true artefact onset = ideal onset + U(-{VOLUME_JITTER_SAMPLES:g}, "
                        f"{VOLUME_JITTER_SAMPLES:g}) scanner samples; the Volume marker is at "
                        "the nearest sample (marker - true onset within half a sample); "
                        "both per volume in _desc-volumes_events.tsv",
        "VolumeJitterSamples": VOLUME_JITTER_SAMPLES,
        "ArtifactSpan": "from the first volume's marker to the end of the last volume; the "
                        "recording before and after carries the EEG and the pulse artefact",
        "ECGChannel": ECG_CHANNEL,
        "ECGRPeakAmplitude": ECG_R_AMPLITUDE_V,
        "ECGNoiseSD": ECG_NOISE_SD_V,
        "ECGWaves": {name: {"Amplitude": amp, "Latency": lat, "Width": sd}
                     for name, amp, lat, sd in ECG_WAVES},
        **heart,
        "HeartRateRange": [float(60.0 / rr.max()), float(60.0 / rr.min())],
        "RRVariability": RR_VARIABILITY,
        "NumberOfHeartbeats": int(inside.sum()),
        "BCGToEEGRMSRatio": BCG_RMS_RATIO,
        "BCGRMS": dict(zip(names, bcg_rms.tolist())),
        "BCGWeights": dict(zip(names, weights.tolist())),
        "BCGLatency": "0.15-0.6 s after the R-peak (basis shapes: sums of Gaussians, "
                      "samba_bids.simulate.scanner.BCG_WAVES)",
        "BCGBeatVariability": "per-beat amplitude factor exp(N(0, "
                              f"{BCG_BEAT_VARIABILITY}^2)), in _desc-rpeaks_events.tsv",
        "Units": "V",
    }
    return ScannerRecording(data=data, ch_names=names + [ECG_CHANNEL],
                            sfreq_hz=float(scanner_sfreq_hz), tr_s=float(tr_s),
                            marker_samples=marker_samples,
                            true_onsets_s=true_onsets_s, r_peaks_s=r_peaks_s[inside],
                            beat_amplitude=beat_amplitude[inside], parameters=parameters)


def scanner_info(eeg_info, scanner_sfreq_hz: float):
    """Measurement info of the in-scanner recording: the EEG channels and the ECG channel.

    Parameters
    ----------
    eeg_info : mne.Info
        Info of the clean EEG (channel names and montage).
    scanner_sfreq_hz : float
        Sampling rate, Hz.

    Returns
    -------
    mne.Info
        The EEG channels (same names and positions) then :data:`ECG_CHANNEL` (type ``ecg``).
    """
    import mne

    names = list(eeg_info["ch_names"])
    info = mne.create_info(names + [ECG_CHANNEL], float(scanner_sfreq_hz),
                           ["eeg"] * len(names) + ["ecg"])
    info.set_montage(eeg_info.get_montage(), verbose=False)
    return info
