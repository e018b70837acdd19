"""MR artefacts of EEG recorded inside the scanner: detection, gradient and pulse removal.

EEG recorded during fMRI carries two artefacts far larger than the EEG (Allen et al. 1998,
2000): the **gradient artefact**, induced by the switching imaging gradients, which repeats
with every slice and every volume, and the **pulse (ballistocardiogram) artefact**, locked to
the heartbeat. This module decides whether a recording carries the gradient artefact and
removes both with MNE's implementations:

- gradient: average artefact subtraction (AAS; Allen et al. 2000,
  https://doi.org/10.1006/nimg.2000.0599) by
  :func:`mne.preprocessing.remove_fmri_gradient_artifact`, on the raw sampling rate before
  any filtering or resampling, anchored on the volume triggers;
- pulse: R-peaks of the ECG channel (:func:`mne.preprocessing.find_ecg_events`, on the
  gradient-corrected ECG) and the optimal basis set (PCA-OBS; Niazy et al. 2005,
  https://doi.org/10.1016/j.neuroimage.2005.06.067) by
  :func:`mne.preprocessing.apply_pca_obs`, on the gradient-corrected, band-passed data at
  the raw sampling rate, before resampling (MNE places each fitted epoch one sample before
  the data it was fitted to: on a pure pulse artefact that leaves 4 % of its power at 100 Hz,
  0.06 % at 1 kHz).

What is our own, because MNE lacks it: the detection test (:func:`detect_gradient_artifact`),
the templates of the first and last volumes (MNE's AAS leaves the artefact of the first and
last ``window`` volumes in place, with a zero template; here they get a one-sided template of
as many volumes, from :class:`mne.preprocessing.GradientRemover`), the sub-sample shift of each
volume's template, the pulse artefact's delay after the R-peak (:func:`pulse_delay`), the
number of PCA-OBS components per channel (:func:`pulse_components`) and the PCA-OBS passes
that keep the pulse artefact out of the gradient templates
(:meth:`MRArtifactRemoval.remove_pulse`), the trigger checks with errors that name the file
and the fix, and the quality-control figures (power at the gradient harmonics before and
after, the average artefact epoch).

Both removals act on each channel separately, so :func:`~.preprocessing.preprocess_raw`
streams them by channel groups with the band-pass and resampling: the result equals the
whole-recording result. Slice triggers are not used (volume triggers anchor the templates).

At about 1,000 lines this module is over the others: it is one stage whose parts share one
object, :class:`MRArtifactRemoval` (the plan made from the detection and the markers is what
the removal steps and the quality control read, group by group); about half of the lines are
the docstrings the project asks for. If it grows further, the detection test
(:class:`GradientDetection` and the functions before :class:`ArtifactQC`) is the part to move
to a module of its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import mne
import numpy as np
from scipy.signal import detrend, welch

from ..config import CHOICES, check_option
from ..errors import DataError

logger = logging.getLogger(__name__)

#: ``--mr-artifacts`` values: ``auto`` detects the gradient artefact and removes it, with the
#: pulse artefact when an ECG channel is present.
MR_ARTIFACTS = CHOICES["mr_artifacts"]
#: Volume-marker descriptions of common scanner interfaces, tried in this order when
#: ``--volume-trigger`` is not given (Brain Products: ``R128``; BrainVision Analyzer exports:
#: ``Scan Start``; the simulator: ``Volume``).
SCANNER_TRIGGERS = ("R128", "Scan Start", "Volume", "T  1")
#: Fewest volume markers that make a scan (the AAS template needs neighbouring volumes).
MIN_TRIGGERS = 10
#: Below this sampling rate the gradient artefact (slice harmonics up to several kHz) is
#: aliased and cannot be subtracted reliably, Hz.
MIN_SFREQ_HZ = 1000.0
#: Volume-trigger spacings may deviate from their median by this much (jitter), s; at least
#: one sample.
TRIGGER_TOLERANCE_S = 0.001
#: AAS template: volumes averaged before and after each volume. The EEG left in a template
#: of n volumes adds 1/n of the EEG's power to the corrected data: MNE's default (4, 4) adds
#: 12.5 %, 15 + 15 volumes (Allen et al. 2000 averaged 25) 3.3 %.
AAS_WINDOW = (15, 15)
#: PCA-OBS: at most this many principal components are fitted per heartbeat beside the mean
#: artefact (MNE's default); each channel gets those that parallel analysis keeps
#: (:func:`pulse_components`). A fixed count fits EEG as well as artefact: the leading
#: components of the heartbeat-locked epochs of a channel whose pulse artefact varies little
#: from beat to beat are its EEG's strongest rhythm. On the development seed (11) PCA-OBS with
#: a fixed 3 components (Niazy et al.'s ``fmrib_pas`` default: 4 basis functions, the mean
#: among them) applied to the clean EEG alone changed its alpha-band power by 31 % (error
#: power relative to the clean EEG's), and by 13 % with 1.
PCA_OBS_MAX_COMPONENTS = 4
#: Parallel analysis (Horn 1965): surrogate sets of epochs at random times, and the
#: percentile of their eigenvalues that a heartbeat-locked component's must exceed.
PARALLEL_SURROGATES = 20
PARALLEL_PERCENTILE = 95.0
#: Rate at which components are counted, Hz (the data are band-passed below its Nyquist).
_COMPONENTS_SFREQ_HZ = 250.0
#: PCA-OBS passes. AAS averages each volume's neighbours into its template, and with them
#: their pulse artefact (heartbeats are not locked to volumes): the corrected data carry
#: about 1/n of the pulse artefact's power locked to the volumes, which PCA-OBS (locked to
#: the heartbeats) cannot remove. Each pass after the first takes the pulse artefact that the
#: previous pass estimated out of the data the gradient templates are made from (AAS and the
#: band-pass are linear, so this is done on the estimate alone). Development seed (11, 300 s,
#: 16 channels; 2 components, epochs centred 0.25 s after the R-peaks): error power in theta,
#: relative to the clean EEG's, 0.88 after one pass, 0.27 after two, 0.19 after three; 0.18
#: when the true pulse artefact is taken out of the templates instead.
PULSE_PASSES = 3
#: Where the pulse artefact's delay after the R-peak is looked for, s (its peak lies about
#: 0.2-0.3 s after the R-peak, and ``fmrib_pas`` shifts the R-peaks by a fixed 0.21 s, after
#: Allen et al. 1998; MNE's ``apply_pca_obs`` does not shift them; the ECG's own field at
#: 0 s is left out).
PULSE_DELAY_RANGE_S = (0.1, 0.6)
#: Detection thresholds: share of the power locked to the volume repetition (with triggers),
#: and share of the power in narrow spectral lines above 20 Hz (without triggers).
VOLUME_LOCKED_THRESHOLD = 0.2
LINE_SHARE_THRESHOLD = 0.25
#: Physiological heart rates, beats per minute.
HEART_RATE_BPM = (40.0, 150.0)
#: Data read for the detection: channels and seconds of the scan.
_DETECT_CHANNELS = 4
_DETECT_S = 120.0
#: EEG channels whose heartbeat-locked average gives the pulse artefact's delay; the rate
#: they are averaged at, Hz; the band they are filtered to, Hz.
_DELAY_CHANNELS = 8
_DELAY_SFREQ_HZ = 250.0
_DELAY_BAND_HZ = (1.0, 15.0)
#: Quality control: seconds of the scan (middle), highest frequency of the stored spectra.
_QC_S = 60.0
_QC_FMAX_HZ = 250.0


@dataclass
class GradientDetection:
    """The test for a gradient artefact in one recording (:func:`detect_gradient_artifact`).

    Attributes
    ----------
    present : bool
        Whether the recording carries a gradient artefact.
    trigger : str | None
        Description of the volume markers found (None: none found).
    n_triggers : int
        Volume markers found.
    tr_s : float | None
        Median spacing of the volume markers, s.
    volume_locked_share : float | None
        Share of the EEG's power (median over the channels tested) that repeats with every
        volume: the power of the average volume epoch, i.e. the power at the harmonics of
        1 / TR, corrected for the 1 / n_volumes an unlocked signal leaves in an average
        (0 for clean EEG, near 1 for a gradient artefact). None without markers.
    line_share : float
        Share of the power (0.5 Hz to Nyquist) in the 5 % strongest spectral bins above
        20 Hz, mains frequencies (50, 60 Hz and harmonics, +-1 Hz) left out: the line
        spectrum of a gradient artefact, tested without markers.
    slice_rate_hz : float | None
        The dominant repetition frequency of the artefact (the slice rate), a harmonic of
        1 / TR between 5 and 60 Hz; None without markers.
    sfreq_hz : float
        Sampling rate, Hz.
    """

    present: bool
    trigger: str | None
    n_triggers: int
    tr_s: float | None
    volume_locked_share: float | None
    line_share: float
    slice_rate_hz: float | None
    sfreq_hz: float

    def describe(self) -> str:
        """One line for the log with the test's figures."""
        markers = (f"{self.n_triggers} {self.trigger!r} volume markers (TR {self.tr_s:.4g} s), "
                   f"{100 * self.volume_locked_share:.1f} % of the power locked to the volume "
                   f"repetition (threshold {100 * VOLUME_LOCKED_THRESHOLD:.0f} %)"
                   if self.trigger else "no volume markers")
        rate = f", slice rate {self.slice_rate_hz:g} Hz" if self.slice_rate_hz else ""
        return (f"gradient artefact {'present' if self.present else 'absent'}: {markers}; "
                f"{100 * self.line_share:.1f} % of the power in spectral lines above 20 Hz "
                f"(threshold {100 * LINE_SHARE_THRESHOLD:.0f} %){rate}; {self.sfreq_hz:g} Hz")

    def to_sidecar(self) -> dict:
        """Sidecar entries (BIDS-style keys)."""
        return {
            "GradientArtifactPresent": bool(self.present),
            "VolumeTrigger": self.trigger,
            "VolumeTriggers": int(self.n_triggers),
            "VolumeTriggerSpacing": self.tr_s,
            "VolumeLockedPowerShare": _rounded(self.volume_locked_share),
            "SpectralLinePowerShare": _rounded(self.line_share),
            "SliceRepetitionFrequency": self.slice_rate_hz,
        }


def _rounded(value, digits=4):
    return None if value is None else round(float(value), digits)


def find_scanner_trigger(raw, trigger=None):
    """The volume markers of a recording made in the scanner.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        The recording.
    trigger : str | None
        The volume marker's description (``--volume-trigger``); None tries
        :data:`SCANNER_TRIGGERS` and takes the first with at least :data:`MIN_TRIGGERS`
        markers.

    Returns
    -------
    name : str | None
        The description found (None: none).
    samples : ndarray of int, shape (n_triggers,)
        Marker positions in samples from the first sample (empty when none).
    """
    from ..alignment import annotation_onsets

    sfreq = raw.info["sfreq"]
    names = [trigger] if trigger else list(SCANNER_TRIGGERS)
    for name in names:
        onsets = annotation_onsets(raw, name)
        if len(onsets) >= (1 if trigger else MIN_TRIGGERS):
            return name, np.round(onsets * sfreq).astype(np.int64)
    return None, np.zeros(0, np.int64)


def volume_locked_share(data, starts, spacing):
    """Share of each channel's power that repeats with every volume.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times)
        The recording at its sampling rate (any unit).
    starts : ndarray of int, shape (n_volumes,)
        First sample of each volume epoch; every epoch lies inside ``data``.
    spacing : int
        Samples per volume epoch.

    Returns
    -------
    ndarray, shape (n_channels,)
        ``(P_avg - 1 / n) / (1 - 1 / n)`` with ``P_avg = n * |mean epoch|^2 / sum |epoch|^2``
        over linearly detrended epochs (as AAS detrends them): 0 in expectation for a signal
        unrelated to the volumes, 1 for one that repeats exactly.
    """
    n = len(starts)
    epochs = detrend(data[:, starts[:, None] + np.arange(spacing)], axis=-1)
    power = np.sum(epochs ** 2, axis=(1, 2))
    locked = n * np.sum(epochs.mean(axis=1) ** 2, axis=-1)
    share = np.divide(locked, power, out=np.zeros_like(power), where=power > 0)
    return (share - 1.0 / n) / (1.0 - 1.0 / n)


def spectral_line_share(data, sfreq_hz):
    """Share of each channel's power in narrow spectral lines above 20 Hz.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times)
        At least 4 s of the recording.
    sfreq_hz : float
        Sampling rate, Hz.

    Returns
    -------
    ndarray, shape (n_channels,)
        Power of the 5 % strongest bins between 20 Hz and Nyquist (Welch, 4-s Hann
        segments), bins within 1 Hz of 50 or 60 Hz and their harmonics (mains) left out,
        divided by the power from 0.5 Hz to Nyquist.
    """
    freqs, psd = welch(data, sfreq_hz, nperseg=min(data.shape[1], int(4 * sfreq_hz)))
    total = psd[:, freqs >= 0.5].sum(axis=1)
    mains = np.zeros(freqs.shape, bool)
    for line in (50.0, 60.0):
        mains |= (freqs >= line - 1) & (np.abs((freqs + line / 2) % line - line / 2) <= 1.0)
    high = psd[:, (freqs >= 20.0) & ~mains]
    if not high.shape[1]:
        return np.zeros(len(data))
    k = max(1, int(round(0.05 * high.shape[1])))
    top = np.sort(high, axis=1)[:, -k:].sum(axis=1)
    return np.divide(top, total, out=np.zeros_like(top), where=total > 0)


def slice_rate(freqs, psd, tr_s, sfreq_hz):
    """The dominant repetition frequency of a gradient artefact (the slice rate), Hz.

    The candidates are the harmonics of 1 / TR from 5 to 60 Hz; each scores the mean power
    at its first 10 multiples below 0.9 x Nyquist; the lowest candidate within half of the
    best score wins (so that the slice rate, not one of its multiples, is chosen).

    Parameters
    ----------
    freqs : ndarray, shape (n_freqs,)
        Frequencies of ``psd``, Hz.
    psd : ndarray, shape (n_freqs,)
        Power spectral density (one channel, or a median over channels).
    tr_s, sfreq_hz : float
        Volume spacing, s, and sampling rate, Hz.

    Returns
    -------
    float
    """
    step = freqs[1] - freqs[0]
    top = 0.9 * sfreq_hz / 2.0
    ks = np.arange(max(1, int(np.ceil(5.0 * tr_s))), int(np.floor(60.0 * tr_s)) + 1)
    candidates = ks / tr_s
    candidates = candidates[candidates * 2 < top] if (candidates * 2 < top).any() else candidates
    scores = []
    for f0 in candidates:
        harmonics = f0 * np.arange(1, 11)
        harmonics = harmonics[harmonics < top]
        scores.append(psd[np.round(harmonics / step).astype(int)].mean())
    scores = np.asarray(scores)
    return float(candidates[np.flatnonzero(scores >= 0.5 * scores.max())[0]])


def detect_gradient_artifact(raw, *, picks, trigger=None):
    """Test whether a recording carries the MR gradient artefact.

    Reads at most :data:`_DETECT_CHANNELS` channels over the middle :data:`_DETECT_S` s of
    the scan (or of the recording, without markers).

    Parameters
    ----------
    raw : mne.io.BaseRaw
        The recording as read (preloaded or not).
    picks : array of int
        The data channels (EEG); every ``len(picks) // 4``-th is tested.
    trigger : str | None
        The volume marker's description (``--volume-trigger``); None tries
        :data:`SCANNER_TRIGGERS`.

    Returns
    -------
    GradientDetection
        ``present`` when the volume-locked share is at least
        :data:`VOLUME_LOCKED_THRESHOLD` (markers found), or the line share at least
        :data:`LINE_SHARE_THRESHOLD` (no markers).
    """
    sfreq = raw.info["sfreq"]
    picks = np.asarray(picks)
    tested = picks[:: max(1, len(picks) // _DETECT_CHANNELS)][:_DETECT_CHANNELS]
    name, samples = find_scanner_trigger(raw, trigger)
    samples = samples[(samples >= 0) & (samples < raw.n_times)]
    n_detect = int(_DETECT_S * sfreq)
    if name is None or len(samples) < 2:
        start = max(0, (raw.n_times - n_detect) // 2)
        data = raw.get_data(picks=tested, start=start, stop=min(raw.n_times, start + n_detect))
        line = float(np.median(spectral_line_share(data, sfreq)))
        return GradientDetection(present=line >= LINE_SHARE_THRESHOLD, trigger=name,
                                 n_triggers=len(samples), tr_s=None, volume_locked_share=None,
                                 line_share=line, slice_rate_hz=None, sfreq_hz=sfreq)
    spacing = int(np.median(np.diff(samples)))
    inside = samples[samples + spacing <= raw.n_times]
    n_vol = max(2, min(len(inside), n_detect // max(spacing, 1)))
    first = max(0, (len(inside) - n_vol) // 2)
    chosen = inside[first:first + n_vol]
    start, stop = int(chosen[0]), int(chosen[-1] + spacing)
    data = raw.get_data(picks=tested, start=start, stop=stop)
    locked = float(np.median(volume_locked_share(data, chosen - start, spacing)))
    line = float(np.median(spectral_line_share(data, sfreq)))
    tr_s = spacing / sfreq
    freqs, psd = welch(data, sfreq, nperseg=min(data.shape[1], 4 * spacing))
    rate = slice_rate(freqs, np.median(psd, axis=0), tr_s, sfreq)
    return GradientDetection(present=locked >= VOLUME_LOCKED_THRESHOLD, trigger=name,
                             n_triggers=len(samples), tr_s=tr_s, volume_locked_share=locked,
                             line_share=line, slice_rate_hz=rate, sfreq_hz=sfreq)


@dataclass
class ArtifactQC:
    """Quality control of the gradient removal, filled channel group by channel group.

    Attributes
    ----------
    freqs : ndarray, shape (n_freqs,)
        Frequencies of the stored spectra (up to 250 Hz), Hz.
    psd_before, psd_after : dict of str to ndarray, shape (n_freqs,)
        Welch spectrum of each channel over the middle 60 s of the scan, before and after
        the gradient removal, V^2/Hz.
    harmonic_db : dict of str to float
        Per channel: power at the slice-rate harmonics (up to 0.9 x Nyquist) after the
        removal relative to before, dB.
    in_band_db : dict of str to float
        Per channel: the same at the harmonics of 1 / TR inside the band-pass, dB.
    epoch_channel : str | None
        The channel with the largest artefact, whose average volume epoch is kept.
    epoch_before, epoch_after : ndarray, shape (n_samples,) | None
        Its average (linearly detrended) volume epoch over the QC segment, V.
    epoch_power : float
        Power of ``epoch_before`` (the channel choice).
    """

    freqs: np.ndarray | None = None
    psd_before: dict = field(default_factory=dict)
    psd_after: dict = field(default_factory=dict)
    harmonic_db: dict = field(default_factory=dict)
    in_band_db: dict = field(default_factory=dict)
    epoch_channel: str | None = None
    epoch_before: np.ndarray | None = None
    epoch_after: np.ndarray | None = None
    epoch_power: float = -1.0


@dataclass
class MRArtifactRemoval:
    """What is removed from one recording and how (:func:`plan_mr_artifacts`).

    The removal steps are called by :func:`~.preprocessing.preprocess_raw` on each channel
    group, on the raw data before the band-pass: :meth:`remove_gradient`, then
    :meth:`remove_pulse`.

    Attributes
    ----------
    name : str
        The recording's file name (for messages).
    sfreq_hz : float
        Sampling rate of the recording as read, Hz.
    steps : tuple of str
        ``()`` (nothing removed), ``('gradient',)`` or ``('gradient', 'pulse')``.
    reason : str
        Why nothing (or no pulse artefact) was removed, for the sidecar and the log.
    detection : GradientDetection | None
        The test's figures (None when no test was made: ``--mr-artifacts none`` or a
        recording from a derivatives folder).
    volume_samples : ndarray of int, shape (n_volumes,)
        First sample of each volume (from the first sample of the recording).
    tolerance_samples : int
        ``tr_tol`` of the AAS: allowed deviation of a volume spacing from the median.
    volume_shifts : ndarray, shape (n_volumes,) | None
        Sub-sample delay of each volume's artefact after its marker, relative to the average
        volume, in samples (:func:`volume_shifts`); None: not corrected.
    band_hz : tuple of float | None
        The band-pass that follows (for the in-band QC figure), Hz.
    ecg_channel : str | None
        The ECG channel whose R-peaks anchor the pulse removal.
    heartbeats_s : ndarray, shape (n_beats,) | None
        R-peak times, s from the first sample.
    pulse_delay_s : float
        Delay of the pulse artefact's peak after the R-peak (:func:`pulse_delay`), s: the
        PCA-OBS epochs are centred there.
    pulse_components : dict of str to int
        PCA-OBS components of each channel (:func:`pulse_components`), filled by
        :meth:`remove_pulse`.
    qc : ArtifactQC
    """

    name: str
    sfreq_hz: float
    steps: tuple = ()
    reason: str = ""
    detection: GradientDetection | None = None
    volume_samples: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    tolerance_samples: int = 0
    volume_shifts: np.ndarray | None = None
    band_hz: tuple | None = None
    ecg_channel: str | None = None
    heartbeats_s: np.ndarray | None = None
    pulse_delay_s: float = 0.0
    pulse_components: dict = field(default_factory=dict)
    qc: ArtifactQC = field(default_factory=ArtifactQC)

    @property
    def spacing(self) -> int:
        """Samples per volume (median marker spacing)."""
        return int(np.round(np.median(np.diff(self.volume_samples))))

    @property
    def heart_rate_bpm(self) -> float | None:
        """Median heart rate from the R-peaks, beats per minute."""
        if self.heartbeats_s is None or len(self.heartbeats_s) < 2:
            return None
        return float(60.0 / np.median(np.diff(self.heartbeats_s)))

    # -- the removal steps ----------------------------------------------------------------
    def remove_gradient(self, part, *, qc=True):
        """Subtract the gradient artefact from a preloaded channel group, in place.

        :func:`mne.preprocessing.remove_fmri_gradient_artifact` (AAS, window
        :data:`AAS_WINDOW`, ``tr_tol`` :attr:`tolerance_samples`); the first and last
        ``window`` volumes, which MNE leaves uncorrected, get a one-sided template of the
        next (previous) ``sum(window)`` volumes (:class:`mne.preprocessing.GradientRemover`).
        With :attr:`volume_shifts`, each volume's template is then delayed by its sub-sample
        shift (first order: ``T(t - d) = T(t) - d T'(t)``): MNE subtracts the template at
        the marker's sample, so a volume whose artefact starts between two samples (the
        scanner's clock is not the amplifier's) keeps a residual that grows with frequency.

        Parameters
        ----------
        part : mne.io.BaseRaw
            Preloaded, at the recording's sampling rate, the channels to correct only.
        qc : bool
            Add the group's channels to :attr:`qc`.
        """
        from mne.preprocessing import GradientRemover, remove_fmri_gradient_artifact

        if "gradient" not in self.steps:
            return
        picks = np.arange(len(part.ch_names))
        before = part.get_data()
        window = _aas_window(len(self.volume_samples))
        remove_fmri_gradient_artifact(part, self.volume_samples, window=window,
                                      tr_tol=self.tolerance_samples, picks=picks, copy=False,
                                      verbose=False)
        n_tr, width = len(self.volume_samples), sum(window)
        spacing = self.spacing
        edges = [((0, width), range(window[0])),
                 ((width, 0), range(n_tr - window[1], n_tr))]
        for one_sided, volumes in edges:
            if not len(volumes) or n_tr <= width:
                continue
            remover = GradientRemover(before, self.volume_samples, window=one_sided,
                                      tr_tol=self.tolerance_samples)
            for n in volumes:
                start = self.volume_samples[n]
                part._data[:, start:start + spacing] = remover.get_tr_corrected(n)
        if self.volume_shifts is not None:
            # the artefact of volume n is the template delayed by shift_n samples:
            # T(t - d) = T(t) - d T'(t) to first order, so add d T' back; the template is
            # what MNE subtracted from the detrended epoch
            for n, shift in enumerate(self.volume_shifts):
                seg = slice(self.volume_samples[n], self.volume_samples[n] + spacing)
                template = detrend(before[:, seg], axis=-1) - part._data[:, seg]
                part._data[:, seg] += shift * np.gradient(template, axis=-1)
        if qc:
            self._add_qc(part.ch_names, before, part._data)

    def remove_pulse(self, part, band_pass):
        """Remove the pulse artefact from a preloaded, gradient-corrected channel group, in place.

        :func:`mne.preprocessing.apply_pca_obs` with, per channel, the mean artefact and the
        components that :func:`pulse_components` keeps (at most
        :data:`PCA_OBS_MAX_COMPONENTS`), with epochs centred :attr:`pulse_delay_s` after the
        R-peaks of :attr:`ecg_channel` (MNE centres its epochs, +- half the median RR
        interval, on the times it is given; the pulse artefact spans about 0.1-0.6 s after
        the R-peak, so epochs centred on the R-peak cut it in two), in :data:`PULSE_PASSES`
        passes: pass ``k + 1`` starts from the data whose gradient templates were made without
        the pulse artefact estimated by pass ``k``, i.e. ``F(AAS(x - p_k)) + p_k =
        F(AAS(x)) - F(AAS(p_k)) + p_k`` (``F`` the band-pass, ``AAS`` :meth:`remove_gradient`,
        both linear), and estimates ``p_{k+1}``. Our own: the passes, the delay and the
        component counts; PCA-OBS itself is MNE's.

        Parameters
        ----------
        part : mne.io.BaseRaw
            Preloaded, at the recording's sampling rate, the EEG channels only, after
            :meth:`remove_gradient` and ``band_pass``.
        band_pass : callable
            ``band_pass(raw)`` applies the band-pass that followed :meth:`remove_gradient`
            to a preloaded recording, in place.
        """
        from mne.preprocessing import apply_pca_obs

        if "pulse" not in self.steps:
            return
        anchors = self.heartbeats_s + self.pulse_delay_s
        anchors = anchors[(anchors >= 0) & (anchors < part.times[-1] - 1.0)]
        for i, name in enumerate(part.ch_names):
            self.pulse_components[name] = pulse_components(part._data[i], self.sfreq_hz,
                                                           anchors)
        counts = np.array([self.pulse_components[name] for name in part.ch_names])
        corrected = part._data.copy()  # F(AAS(x))
        pulse = None
        for k in range(PULSE_PASSES):
            if pulse is not None:
                share = part.copy()
                share._data[:] = pulse
                self.remove_gradient(share, qc=False)
                band_pass(share)
                part._data[:] = corrected - share._data + pulse
                del share
            start = part._data.copy()
            for n in np.unique(counts):
                apply_pca_obs(part, picks=np.flatnonzero(counts == n), qrs_times=anchors,
                              n_components=int(n), copy=False, verbose=False)
            pulse = start - part._data
            del start

    # -- quality control ------------------------------------------------------------------
    def _qc_window(self):
        """Whole volumes over the middle :data:`_QC_S` s of the scan: (start, stop, starts)."""
        spacing = self.spacing
        n_qc = max(2, min(len(self.volume_samples), int(_QC_S * self.sfreq_hz) // spacing))
        first = (len(self.volume_samples) - n_qc) // 2
        starts = self.volume_samples[first:first + n_qc]
        return int(starts[0]), int(starts[-1] + spacing), starts

    def _add_qc(self, names, before, after):
        qc, sfreq, spacing = self.qc, self.sfreq_hz, self.spacing
        start, stop, starts = self._qc_window()
        seg_before, seg_after = before[:, start:stop], after[:, start:stop]
        nperseg = min(seg_before.shape[1], 4 * spacing)
        freqs, p_before = welch(seg_before, sfreq, nperseg=nperseg)
        _, p_after = welch(seg_after, sfreq, nperseg=nperseg)
        step = freqs[1] - freqs[0]
        top = 0.9 * sfreq / 2.0
        rate = self.detection.slice_rate_hz or 1.0 / (spacing / sfreq)
        harmonics = np.round(rate * np.arange(1, int(top // rate) + 1) / step).astype(int)
        lo, hi = self.band_hz or (0.5, 45.0)
        volume_rate = sfreq / spacing
        in_band = np.arange(volume_rate, min(hi or top, top) + 1e-9, volume_rate)
        in_band = np.round(in_band[in_band >= (lo or 0.0)] / step).astype(int)
        keep = freqs <= _QC_FMAX_HZ
        qc.freqs = freqs[keep]
        for i, name in enumerate(names):
            qc.psd_before[name] = p_before[i, keep]
            qc.psd_after[name] = p_after[i, keep]
            qc.harmonic_db[name] = _db(p_after[i, harmonics].sum(), p_before[i, harmonics].sum())
            qc.in_band_db[name] = _db(p_after[i, in_band].sum(), p_before[i, in_band].sum())
        rel = starts - start
        ep_before = detrend(seg_before[:, rel[:, None] + np.arange(spacing)], axis=-1).mean(1)
        ep_after = detrend(seg_after[:, rel[:, None] + np.arange(spacing)], axis=-1).mean(1)
        power = np.sum(ep_before ** 2, axis=1)
        best = int(np.argmax(power))
        if power[best] > qc.epoch_power:
            qc.epoch_channel, qc.epoch_power = names[best], float(power[best])
            qc.epoch_before, qc.epoch_after = ep_before[best], ep_after[best]

    def residual_db(self) -> dict:
        """Median over channels of the residual power at the gradient harmonics, dB.

        Returns
        -------
        dict
            ``{"SliceHarmonics": dB, "InBandVolumeHarmonics": dB}`` (None before any channel
            group was corrected).
        """
        def median(values):
            return round(float(np.median(list(values.values()))), 2) if values else None

        return {"SliceHarmonics": median(self.qc.harmonic_db),
                "InBandVolumeHarmonics": median(self.qc.in_band_db)}

    def to_sidecar(self) -> dict:
        """The ``MRArtifacts`` sidecar entry: what was removed, how, and what remains."""
        detection = self.detection.to_sidecar() if self.detection is not None else {}
        if not self.steps:
            return {"Removed": [], "Reason": self.reason, **detection}
        window = _aas_window(len(self.volume_samples))
        out = {
            "Removed": list(self.steps),
            **detection,
            "GradientMethod": (
                "average artefact subtraction (Allen et al. 2000), "
                "mne.preprocessing.remove_fmri_gradient_artifact on the raw data at "
                f"{self.sfreq_hz:g} Hz before filtering, template of {window[0]} volumes "
                f"before and {window[1]} after, tr_tol {self.tolerance_samples} samples; the "
                f"first and last volumes with a one-sided template of {sum(window)} volumes"
                + ("; each volume's template delayed by its sub-sample shift (first order; "
                   "shifts by least squares on up to 4 channels low-passed at 250 Hz)"
                   if self.volume_shifts is not None else "")),
            "SamplingFrequency": self.sfreq_hz,
            "AASWindow": list(window),
            "TriggerToleranceSamples": int(self.tolerance_samples),
            "VolumeShiftSamples": (None if self.volume_shifts is None else {
                "MedianAbsolute": _rounded(np.median(np.abs(self.volume_shifts))),
                "MaxAbsolute": _rounded(np.max(np.abs(self.volume_shifts)))}),
            "ResidualGradientPowerDb": self.residual_db(),
            "ResidualGradientPowerDefinition": (
                "10 log10(power after / before) at the slice-rate harmonics up to 0.9 x "
                "Nyquist, and at the harmonics of 1/TR inside the band-pass; Welch spectra "
                f"over the middle {_QC_S:g} s of the scan; median over channels"),
        }
        if "pulse" in self.steps:
            out["PulseMethod"] = (
                "PCA-OBS (Niazy et al. 2005), mne.preprocessing.apply_pca_obs with the "
                "mean artefact and, per channel, the principal components that parallel "
                f"analysis (Horn 1965) keeps (at most {PCA_OBS_MAX_COMPONENTS}; heartbeat-"
                f"locked epochs against {PARALLEL_SURROGATES} sets at random times, "
                f"{PARALLEL_PERCENTILE:g}th percentile) on the gradient-corrected, "
                f"band-passed data at {self.sfreq_hz:g} Hz before resampling, epochs centred "
                f"{self.pulse_delay_s:.3f} s after the R-peaks (the delay of the "
                "heartbeat-locked average's peak), in "
                f"{PULSE_PASSES} passes (each pass after the first makes the gradient "
                "templates without the pulse artefact that the previous pass estimated); "
                f"R-peaks of channel {self.ecg_channel} by mne.preprocessing.find_ecg_events "
                "on the gradient-corrected ECG")
            out["ECGChannel"] = self.ecg_channel
            counts = list(self.pulse_components.values())
            out["PCAOBSComponents"] = {
                "Maximum": PCA_OBS_MAX_COMPONENTS,
                "Channels": {str(n): counts.count(n) for n in sorted(set(counts))}}
            out["PCAOBSPasses"] = PULSE_PASSES
            out["PulseDelay"] = _rounded(self.pulse_delay_s, 3)
            out["Heartbeats"] = int(len(self.heartbeats_s))
            out["HeartRate"] = _rounded(self.heart_rate_bpm, 1)
        elif self.reason:
            out["PulseNotRemoved"] = self.reason
        return out


def _db(after, before):
    return float(10 * np.log10(after / before)) if before > 0 and after > 0 else float("nan")


def _aas_window(n_volumes):
    """:data:`AAS_WINDOW`, shrunk for short scans: at most (n_volumes - 1) // 4 volumes each
    side, so that the one-sided templates of the first and last volumes (twice as many
    volumes, all on one side) exist for every edge volume."""
    half = max(1, min(AAS_WINDOW[0], (n_volumes - 1) // 4))
    return (half, half)


def plan_mr_artifacts(raw, *, mode="auto", picks, trigger=None, band_hz=None,
                      from_derivatives=False):
    """Decide what to remove from a recording, check its markers, find its heartbeats.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        The recording as read (:func:`~.preprocessing.read_ephys`; preloaded or not).
    mode : {'auto', 'gradient', 'gradient+pulse', 'none'}
        ``--mr-artifacts``. ``auto`` runs :func:`detect_gradient_artifact` and, when the
        artefact is present, removes it, with the pulse artefact when the recording has an
        ECG channel (else a warning); for a recording read from an EEG derivatives folder
        (``from_derivatives``) ``auto`` means ``none``.
    picks : array of int
        The EEG channels that will be kept.
    trigger : str | None
        ``--volume-trigger`` (None: :data:`SCANNER_TRIGGERS`).
    band_hz : tuple of float | None
        The band-pass that follows (for the in-band QC figure), Hz.
    from_derivatives : bool
        The recording comes from a derivatives folder (cleaned already).

    Returns
    -------
    MRArtifactRemoval
        What will be removed; its ``steps`` are empty when nothing is (its ``reason`` says
        why; the detection's figures are logged).

    Raises
    ------
    DataError
        If the artefact is present (or asked for) and no volume marker is found, the
        markers' spacing varies by more than :data:`TRIGGER_TOLERANCE_S`, the sampling
        rate is below :data:`MIN_SFREQ_HZ`, or ``gradient+pulse`` is asked for and there is
        no ECG channel or no heartbeat is found in it.
    UsageError
        If ``mode`` is not one of :data:`MR_ARTIFACTS`.
    """
    from .preprocessing import _recording_name

    check_option("--mr-artifacts", mode, MR_ARTIFACTS)
    name = _recording_name(raw)
    sfreq = raw.info["sfreq"]
    if mode == "none":
        return MRArtifactRemoval(name, sfreq, reason="--mr-artifacts none: not tested")
    if mode == "auto" and from_derivatives:
        logger.info("%s: read from an EEG derivatives folder (cleaned already): no MR artefact "
                    "removal (--mr-artifacts auto).", name)
        return MRArtifactRemoval(name, sfreq, reason="read from a derivatives folder (cleaned "
                                 "already; --mr-artifacts auto)")
    detection = detect_gradient_artifact(raw, picks=picks, trigger=trigger)
    logger.info("%s: %s", name, detection.describe())
    if mode == "auto" and not detection.present:
        return MRArtifactRemoval(name, sfreq, detection=detection,
                                 reason="no gradient artefact detected")
    asked = "--mr-artifacts auto found it" if mode == "auto" else f"--mr-artifacts {mode}"
    if detection.trigger is None:
        raise DataError(
            f"{name}: the MR gradient artefact is present ({detection.describe()}) but no "
            f"volume marker was found (tried {', '.join(map(repr, SCANNER_TRIGGERS))}); pass "
            "the scanner's volume marker with --volume-trigger, or give a cleaned recording "
            "with -d and --mr-artifacts none.")
    if sfreq < MIN_SFREQ_HZ:
        raise DataError(
            f"{name}: sampled at {sfreq:g} Hz, too low to resolve the MR gradient artefact "
            f"({asked}); removal needs at least {MIN_SFREQ_HZ:g} Hz: record at 1 kHz or "
            "more (5 kHz is usual), or clean the recording elsewhere and give it with -d "
            "(then --mr-artifacts none).")
    _, samples = find_scanner_trigger(raw, detection.trigger)
    samples = _check_volume_markers(samples, raw.n_times, sfreq, name, detection.trigger)
    tolerance = max(1, int(round(TRIGGER_TOLERANCE_S * sfreq)))
    tested = np.asarray(picks)[:: max(1, len(picks) // _DETECT_CHANNELS)][:_DETECT_CHANNELS]
    removal = MRArtifactRemoval(name=name, sfreq_hz=sfreq, steps=("gradient",),
                                detection=detection, volume_samples=samples,
                                tolerance_samples=tolerance, band_hz=band_hz,
                                volume_shifts=volume_shifts(raw, tested, samples, tolerance))
    if mode in ("auto", "gradient+pulse"):
        _plan_pulse(raw, removal, picks=picks, required=mode == "gradient+pulse")
    logger.info("%s: removing the MR %s artefact%s (%d volumes of %.4g s%s).", name,
                " and ".join(removal.steps), "s" if len(removal.steps) > 1 else "",
                len(samples), removal.spacing / sfreq,
                f", {len(removal.heartbeats_s)} heartbeats at {removal.heart_rate_bpm:.0f} bpm"
                if "pulse" in removal.steps else "")
    return removal


def volume_shifts(raw, picks, volume_samples, limit):
    """Sub-sample delay of each volume's gradient artefact relative to the average volume.

    Least squares of the first-order model ``epoch_n(t) = T(t) - d_n T'(t)`` (``T`` the
    average volume epoch, ``T'`` its derivative per sample), summed over ``picks``, on the
    data low-passed at 250 Hz (where a delay of a fraction of a sample is a small phase, so
    the first-order model holds), after linear detrending of each epoch (as AAS detrends).
    One channel is read at a time.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        The recording (preloaded or not).
    picks : array of int
        Channels to estimate from (a few EEG channels).
    volume_samples : ndarray of int, shape (n_volumes,)
        First sample of each volume.
    limit : float
        Delays are clipped to +-``limit`` samples (the markers' tolerance).

    Returns
    -------
    ndarray, shape (n_volumes,)
        Delays, samples (positive: the artefact comes later than the marker says).
    """
    from scipy.signal import butter, sosfiltfilt

    sfreq = raw.info["sfreq"]
    spacing = int(np.round(np.median(np.diff(volume_samples))))
    sos = butter(4, min(250.0, 0.2 * sfreq) / (sfreq / 2.0), output="sos")
    index = volume_samples[:, None] + np.arange(spacing)
    numerator, denominator = np.zeros(len(volume_samples)), 0.0
    for pick in picks:
        data = sosfiltfilt(sos, raw.get_data(picks=[pick])[0])
        epochs = detrend(data[index], axis=-1)  # (n_volumes, spacing)
        template = epochs.mean(axis=0)
        slope = np.gradient(template)
        numerator -= (epochs - template) @ slope
        denominator += slope @ slope
    return np.clip(numerator / denominator, -limit, limit)


def pulse_components(data, sfreq_hz, anchors_s, *, max_components=PCA_OBS_MAX_COMPONENTS,
                     seed=0):
    """How many principal components of the pulse artefact PCA-OBS should fit on a channel.

    Parallel analysis (Horn 1965, https://doi.org/10.1007/BF02289447) of the heartbeat-locked
    epochs beyond the mean artefact: the variability of the pulse artefact's shape from beat
    to beat is what the components are for (Niazy et al. 2005). The epochs (+- half the
    median RR interval around each anchor, as in :func:`mne.preprocessing.apply_pca_obs`) are
    taken from the channel with the mean epoch subtracted at every beat over its half RR
    intervals, and each epoch's projection on the mean epoch is removed (PCA-OBS fits its
    multiple per beat); the eigenvalues of their covariance across beats are compared with
    those of as many epochs at random times of the same data, treated alike
    (:data:`PARALLEL_SURROGATES` sets): component ``k`` is
    kept while its eigenvalue exceeds the :data:`PARALLEL_PERCENTILE` th percentile of the
    surrogates' ``k`` th. EEG is not locked to the heartbeat, so its components are as
    strong at random times and are not kept; a pulse artefact that changes shape from beat
    to beat gives components that are stronger locked. Counted at about 250 Hz (every
    ``sfreq_hz // 250`` th sample of the band-passed data).

    Parameters
    ----------
    data : ndarray, shape (n_times,)
        One channel, gradient-corrected and band-passed (below 125 Hz), V.
    sfreq_hz : float
        Its sampling rate, Hz.
    anchors_s : ndarray, shape (n_beats,)
        Epoch centres (R-peaks plus the pulse delay), s from the first sample.
    max_components : int
        The most components returned.
    seed : int
        Seed of the random epoch times (fixed: the same channel gives the same count).

    Returns
    -------
    int
        Components to fit, 0 to ``max_components``.
    """
    step = max(1, int(sfreq_hz // _COMPONENTS_SFREQ_HZ))
    x = np.asarray(data, dtype=float)[::step]
    anchors = np.round(np.asarray(anchors_s) * sfreq_hz / step).astype(int)
    half = int(round(np.median(np.diff(anchors)) / 2))
    anchors = anchors[(anchors >= half) & (anchors + half < len(x))]
    if len(anchors) < 3 * max_components or half < 1:
        return 0
    lags = np.arange(-half, half + 1)
    epochs = x[anchors[:, None] + lags]
    template = (epochs - epochs.mean(axis=1, keepdims=True)).mean(axis=0)
    # the data with the mean artefact subtracted at every beat (over its half RR intervals),
    # so that the epochs at random times hold as little of it as the locked ones
    residual = x.copy()
    edges = np.concatenate([[0], (anchors[1:] + anchors[:-1] + 1) // 2, [len(x)]])
    for anchor, lo, hi in zip(anchors, edges[:-1], edges[1:]):
        lo, hi = max(lo, anchor - half), min(hi, anchor + half + 1)
        residual[lo:hi] -= template[lo - anchor + half:hi - anchor + half]
    unit = template / max(np.linalg.norm(template), np.finfo(float).tiny)

    def eigenvalues(centres):
        # each epoch without its own multiple of the mean artefact (PCA-OBS fits that
        # multiple per beat, so a varying amplitude needs no component)
        block = residual[centres[:, None] + lags]
        block -= block.mean(axis=1, keepdims=True)
        block -= np.outer(block @ unit, unit)
        block -= block.mean(axis=0)
        values = np.linalg.svd(block, compute_uv=False)[:max_components] ** 2
        return values / (len(centres) - 1)

    locked = eigenvalues(anchors)
    rng = np.random.default_rng(seed)
    null = np.array([eigenvalues(rng.integers(half, len(x) - half, len(anchors)))
                     for _ in range(PARALLEL_SURROGATES)])
    above = locked > np.percentile(null, PARALLEL_PERCENTILE, axis=0)
    return int(max_components if above.all() else np.argmin(above))


def _check_volume_markers(samples, n_times, sfreq, name, trigger):
    """Markers inside the recording, evenly spaced within the tolerance (DataError if not)."""
    samples = np.sort(samples[(samples >= 0) & (samples < n_times)])
    if len(samples) < 3:
        raise DataError(
            f"{name}: only {len(samples)} {trigger!r} volume markers; the gradient artefact's "
            "template needs at least 3 volumes: check --volume-trigger.")
    diffs = np.diff(samples)
    median = float(np.median(diffs))
    tolerance = max(1, int(round(TRIGGER_TOLERANCE_S * sfreq)))
    if np.any(np.abs(diffs - median) > tolerance):
        worst = int(np.argmax(np.abs(diffs - median)))
        raise DataError(
            f"{name}: the {trigger!r} volume markers are not evenly spaced (median "
            f"{median / sfreq:.4f} s; between markers {worst + 1} and {worst + 2}: "
            f"{diffs[worst] / sfreq:.4f} s; tolerance {tolerance} "
            f"sample{'s' if tolerance > 1 else ''} = "
            f"{tolerance / sfreq * 1e3:.2g} ms): look for missing or extra markers (a paused "
            "scan, dummy scans marked differently) and split or repair the recording, or clean "
            "it elsewhere and give it with -d (then --mr-artifacts none).")
    spacing = int(round(median))
    inside = samples[samples + spacing <= n_times]
    if len(inside) < len(samples):
        logger.info("%s: the last %d volume marker(s) start less than one volume before the "
                    "end of the recording; their volumes are left uncorrected.",
                    name, len(samples) - len(inside))
    return inside


def _plan_pulse(raw, removal, *, picks, required):
    """R-peaks of the ECG channel after gradient removal (or a warning / DataError), and the
    pulse artefact's delay after them on the EEG channels ``picks``."""
    ecg = [raw.ch_names[i] for i in mne.pick_types(raw.info, meg=False, ecg=True, exclude=[])]
    if not ecg:
        if required:
            raise DataError(
                f"{removal.name}: --mr-artifacts gradient+pulse needs an ECG channel and the "
                "recording has none; set the ECG channel's type to ECG in channels.tsv, or use "
                "--mr-artifacts gradient.")
        logger.warning("%s: no ECG channel, so the pulse (ballistocardiogram) artefact is not "
                       "removed (gradient only); set the ECG channel's type to ECG in "
                       "channels.tsv to remove it.", removal.name)
        removal.reason = "no ECG channel"
        return
    heart = raw.copy().pick([ecg[0]]).load_data(verbose=False)
    removal.remove_gradient(heart, qc=False)
    events, _, _ = mne.preprocessing.find_ecg_events(heart, ch_name=ecg[0], verbose=False)
    beats = (events[:, 0] - heart.first_samp) / removal.sfreq_hz
    rate = 60.0 / np.median(np.diff(beats)) if len(beats) > 1 else 0.0
    if len(beats) < 10 or not HEART_RATE_BPM[0] <= rate <= HEART_RATE_BPM[1]:
        message = (f"{removal.name}: {len(beats)} heartbeats found in channel {ecg[0]} "
                   f"({rate:.0f} beats per minute; expected at least 10 at "
                   f"{HEART_RATE_BPM[0]:.0f}-{HEART_RATE_BPM[1]:.0f})")
        if required:
            raise DataError(message + "; check the ECG channel, or use --mr-artifacts gradient.")
        logger.warning("%s; the pulse artefact is not removed (gradient only).", message)
        removal.reason = message.split(": ", 1)[1]
        return
    removal.ecg_channel, removal.heartbeats_s = ecg[0], beats
    removal.steps = ("gradient", "pulse")
    eeg = np.asarray(picks)[:: max(1, len(picks) // _DELAY_CHANNELS)][:_DELAY_CHANNELS]
    removal.pulse_delay_s = pulse_delay(raw, removal, eeg)
    logger.info("%s: pulse artefact peaks %.3f s after the R-peaks (heartbeat-locked average "
                "of %d EEG channels).", removal.name, removal.pulse_delay_s, len(eeg))


def pulse_delay(raw, removal, picks):
    """Delay of the pulse artefact after the R-peak: the peak of its heartbeat-locked average.

    Each channel in ``picks`` is read alone, gradient-corrected (:meth:`MRArtifactRemoval.
    remove_gradient`), resampled to 250 Hz and band-passed to 1-15 Hz (where the pulse
    artefact's power is); the epochs from each R-peak are averaged, and the delay is where
    the mean over channels of the squared average, each channel scaled by its variance,
    peaks within :data:`PULSE_DELAY_RANGE_S`.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        The recording as read.
    removal : MRArtifactRemoval
        The plan, with :attr:`~MRArtifactRemoval.heartbeats_s`.
    picks : array of int
        EEG channels to average.

    Returns
    -------
    float
        The delay, s.
    """
    sfreq = _DELAY_SFREQ_HZ
    lags = np.arange(int(PULSE_DELAY_RANGE_S[0] * sfreq), int(PULSE_DELAY_RANGE_S[1] * sfreq))
    beats = np.round(removal.heartbeats_s * sfreq).astype(int)
    power = np.zeros(len(lags))
    for pick in picks:
        one = raw.copy().pick([raw.ch_names[pick]]).load_data(verbose=False)
        removal.remove_gradient(one, qc=False)
        one.resample(sfreq, verbose=False)
        x = mne.filter.filter_data(one.get_data()[0], sfreq, *_DELAY_BAND_HZ, verbose=False)
        keep = beats[beats + lags[-1] < len(x)]
        average = x[keep[:, None] + lags].mean(axis=0)
        power += average ** 2 / max(np.var(x), np.finfo(float).tiny)
    return float(lags[int(np.argmax(power))] / sfreq)
