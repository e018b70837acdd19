"""Read EEG/MEG recordings from a BIDS dataset and preprocess them for source imaging.

Reading goes through MNE-BIDS (:func:`mne_bids.read_raw_bids`), so channel types, bad channels,
electrode positions and events come from the BIDS sidecars. Preprocessing follows the usual
MNE order: pick the modality's good data channels, band-pass (FIR, MNE defaults), resample,
and for EEG add the average reference as a projector (required by the inverse).
Memory is bounded: recordings are read lazily and preprocessed a group of channels at a time
(see :func:`preprocess_raw`), so a 60-minute 64-channel 1 kHz recording never sits in memory
whole. Nothing here writes into the input dataset.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import warnings
from pathlib import Path

import mne
import numpy as np

from ..config import CHOICES, check_option
from ..errors import DataError, NoInputError, UsageError

logger = logging.getLogger(__name__)

#: Modalities this stage knows; ``auto`` prefers MEG when the recording has MEG channels.
MODALITIES = CHOICES["modality"]

#: Human-readable reader name per file extension (for error messages).
_FORMATS = {
    ".vhdr": "BrainVision",
    ".eeg": "BrainVision",
    ".fif": "FIF",
    ".edf": "EDF",
    ".bdf": "BDF",
    ".set": "EEGLAB",
    ".ds": "CTF",
    ".con": "KIT",
    ".sqd": "KIT",
    ".pdf": "4D/BTi",
    ".mff": "EGI MFF",
}

#: Bytes per sample of the BrainVision binary formats.
_BV_BYTES = {"INT_16": 2, "UINT_16": 2, "INT_32": 4, "IEEE_FLOAT_32": 4}

#: Samples of slack when comparing the data length with the sidecar's RecordingDuration.
_DURATION_SLACK_SAMPLES = 2

_CHUNK_SAMPLES = 100_000


@contextlib.contextmanager
def without_sidecar_locks():
    """Stop MNE-BIDS from creating ``<sidecar>.lock`` files in the dataset while reading.

    MNE-BIDS (0.17+) takes a ``filelock.SoftFileLock`` beside every sidecar it opens, also for
    reading: a file created and removed inside the input dataset (and left there if the job is
    killed). The input dataset is never written to, so while MNE-BIDS reads, ``filelock`` is
    made unimportable; MNE-BIDS then reads without locks, as it does when ``filelock`` is not
    installed. Modules that already imported ``filelock`` are unaffected.
    """
    missing = object()
    saved = sys.modules.get("filelock", missing)
    sys.modules["filelock"] = None  # makes ``import filelock`` raise ImportError
    try:
        yield
    finally:
        if saved is missing:
            sys.modules.pop("filelock", None)
        else:
            sys.modules["filelock"] = saved


def _check_modality(modality: str) -> str:
    return check_option("modality (--modality)", modality, MODALITIES)


def _format_name(path: Path) -> str:
    return _FORMATS.get(path.suffix.lower(), path.suffix.lstrip(".").upper() or "EEG/MEG")


def read_ephys(path, *, modality: str = "auto", preload: bool = False) -> mne.io.BaseRaw:
    """Read an EEG/MEG recording of a BIDS dataset, with its sidecars.

    Parameters
    ----------
    path : path-like
        The data file inside a BIDS dataset, e.g.
        ``<bids_root>/sub-01/eeg/sub-01_task-rest_eeg.vhdr`` or ``..._meg.fif``; BrainVision,
        EDF/BDF, EEGLAB ``.set``, FIF and the other formats MNE-BIDS reads.
    modality : {'auto', 'eeg', 'meg'}
        The modality the caller will use; when not ``'auto'``, the recording must have
        channels of that type (checked here so that a wrong choice fails before any work).
    preload : bool
        Hold the data in memory. By default they stay in the file and are read when needed:
        :func:`preprocess_raw` then reads a few channels at a time, so that a long
        recording is never in memory whole (60 min of 64 channels at 1 kHz: 1.84 GB as
        float64).

    Returns
    -------
    mne.io.BaseRaw
        The recording (preloaded only if ``preload``), with channel types, bad channels,
        electrode positions (head frame) and events (as annotations, onsets in s) from the
        BIDS sidecars.

    Raises
    ------
    NoInputError
        If ``path`` does not exist.
    DataError
        If the file is not named and placed as BIDS, the reader fails (corrupt or truncated file), or
        the data are shorter than the sidecar's ``RecordingDuration`` or not a whole number of
        samples (BrainVision), i.e. the file is truncated; or if ``modality`` names a
        modality the recording has no channels of.
    UsageError
        If ``modality`` is not one of the allowed values.

    Notes
    -----
    Follows :func:`mne_bids.get_bids_path_from_fname` and :func:`mne_bids.read_raw_bids`
    (``verbose=False``); MNE's warnings while reading (e.g. EOG channels without positions)
    are passed to this module's logger at INFO level. Without ``preload`` the whole file is
    still read once, in chunks of 100,000 samples (51 MB for 64 channels), so that a corrupt
    or truncated data file fails here, as it does when preloading. Nothing is written into the
    dataset (not even MNE-BIDS's transient sidecar lock files, see
    :func:`without_sidecar_locks`).
    """
    import mne_bids

    _check_modality(modality)
    path = Path(path)
    if not path.exists():
        raise NoInputError(f"{path} does not exist; check the BIDS dataset path.")
    fmt = _format_name(path)
    fix = (
        "name it 'sub-<label>[_ses-<label>]_task-<label>[_run-<index>]_<eeg|meg>.<ext>' "
        "inside a BIDS dataset (sub-<label>/[ses-<label>/]<eeg|meg>/)"
    )
    try:
        bids_path = mne_bids.get_bids_path_from_fname(path, check=False, verbose=False)
    except Exception as err:  # mne-bids raises several types for unparsable names
        raise DataError(f"{path}: not a BIDS electrophysiology file ({err}); {fix}.") from err
    if bids_path.subject is None or bids_path.root is None or bids_path.datatype is None:
        raise DataError(f"{path}: not a BIDS electrophysiology file; {fix}.")

    try:
        with warnings.catch_warnings(record=True) as caught, without_sidecar_locks():
            warnings.simplefilter("always")
            raw = mne_bids.read_raw_bids(bids_path, verbose=False)
            if preload:
                raw.load_data(verbose=False)
            else:
                _read_through(raw)
    except Exception as err:
        raise DataError(
            f"{path.name}: cannot be read as {fmt} ({type(err).__name__}: {err}); check the "
            "file is complete (not truncated by a copy or download) and that its header, "
            "marker and data files belong together, then re-export or re-copy it."
        ) from err
    for item in caught:
        logger.info("%s: %s", path.name, str(item.message).replace("\n", " "))

    _check_complete(raw, bids_path, path, fmt)
    if modality != "auto":
        detect_modality(raw, modality)
    logger.info(
        "%s: %d channels at %g Hz, %.1f s",
        path.name,
        len(raw.ch_names),
        raw.info["sfreq"],
        raw.n_times / raw.info["sfreq"],
    )
    return raw


def _read_through(raw: mne.io.BaseRaw) -> None:
    """Read every sample of a recording that is not preloaded, in chunks, keeping none."""
    for start in range(0, raw.n_times, _CHUNK_SAMPLES):
        raw.get_data(start=start, stop=min(start + _CHUNK_SAMPLES, raw.n_times))


def _check_complete(raw: mne.io.BaseRaw, bids_path, path: Path, fmt: str) -> None:
    """Raise DataError when the data file is visibly shorter than its headers say."""
    sfreq = raw.info["sfreq"]
    if path.suffix.lower() == ".vhdr":
        _check_brainvision_size(path, fmt)
    sidecar = bids_path.find_matching_sidecar(extension=".json", on_error="ignore")
    if sidecar is None:
        return
    try:
        expected_s = json.loads(Path(sidecar).read_text(encoding="utf-8")).get(
            "RecordingDuration"
        )
        expected_s = float(expected_s)
    except (OSError, ValueError, TypeError):
        return  # absent or "n/a": nothing to compare with
    # MNE-BIDS writes RecordingDuration as the time of the last sample (raw.times[-1]).
    got_s = (raw.n_times - 1) / sfreq
    if got_s + _DURATION_SLACK_SAMPLES / sfreq < expected_s:
        raise DataError(
            f"{path.name}: cannot be read as {fmt} (the data hold {got_s:.2f} s but "
            f"{Path(sidecar).name} says RecordingDuration {expected_s:.2f} s: the file is "
            "truncated); check the file is complete and copy it again from its source."
        )


def _check_brainvision_size(vhdr: Path, fmt: str) -> None:
    """A binary BrainVision data file must hold a whole number of multiplexed samples."""
    try:
        header = vhdr.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    fields = dict(re.findall(r"^\s*(\w+)\s*=\s*([^\r\n;]*)", header, flags=re.MULTILINE))
    if fields.get("DataFormat", "BINARY").strip().upper() != "BINARY":
        return
    n_bytes = _BV_BYTES.get(fields.get("BinaryFormat", "").strip().upper())
    try:
        n_channels = int(fields.get("NumberOfChannels", ""))
    except ValueError:
        return
    data_file = vhdr.parent / fields.get("DataFile", "").strip()
    if n_bytes is None or not data_file.is_file():
        return
    size = data_file.stat().st_size
    if size % (n_bytes * n_channels):
        raise DataError(
            f"{data_file.name}: cannot be read as {fmt} ({size} bytes is not a whole number of "
            f"samples of {n_channels} channels x {n_bytes} bytes: the file is truncated); check "
            "the file is complete and copy it again from its source."
        )


def detect_modality(raw: mne.io.BaseRaw, modality: str = "auto") -> str:
    """Decide whether a recording is analysed as EEG or MEG.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        The recording.
    modality : {'auto', 'eeg', 'meg'}
        Requested modality; ``'auto'`` chooses MEG when the recording has MEG channels
        (magnetometers or gradiometers, reference sensors excluded), else EEG.

    Returns
    -------
    str
        ``'eeg'`` or ``'meg'``.

    Raises
    ------
    DataError
        If the recording has no channels of the requested (or, for ``'auto'``, of either)
        modality.
    UsageError
        If ``modality`` is not one of the allowed values.
    """
    _check_modality(modality)
    n_meg = len(mne.pick_types(raw.info, meg=True, ref_meg=False, exclude=[]))
    n_eeg = len(mne.pick_types(raw.info, meg=False, eeg=True, exclude=[]))
    name = _recording_name(raw)
    if modality == "auto":
        if n_meg:
            return "meg"
        if n_eeg:
            return "eeg"
        raise DataError(
            f"{name}: no EEG or MEG channels (channel types: "
            f"{', '.join(sorted(set(raw.get_channel_types())))}); set the channel types in "
            "the recording's channels.tsv."
        )
    if (n_meg if modality == "meg" else n_eeg) == 0:
        raise DataError(
            f"{name}: --modality {modality} was requested but the recording has no "
            f"{modality.upper()} channels; choose --modality auto or fix the channel types in "
            "channels.tsv."
        )
    return modality


def _recording_name(raw: mne.io.BaseRaw) -> str:
    fnames = getattr(raw, "filenames", None) or ()
    fnames = [f for f in fnames if f is not None]
    return Path(fnames[0]).name if fnames else "the recording"


def _modality_picks(info: mne.Info, modality: str) -> np.ndarray:
    if modality == "meg":
        return mne.pick_types(info, meg=True, ref_meg=False, exclude="bads")
    return mne.pick_types(info, meg=False, eeg=True, exclude="bads")


def preprocess_raw(
    raw: mne.io.BaseRaw,
    *,
    modality: str,
    l_freq_hz: float | None = 0.5,
    h_freq_hz: float | None = 45.0,
    sfreq_hz: float | None = 100.0,
    n_jobs: int = 1,
    max_load_mb: float = 256.0,
    mr_artifacts=None,
) -> mne.io.BaseRaw:
    """Pick, band-pass, resample and (EEG) average-reference a recording for source imaging.

    Works on a copy; ``raw`` is not modified. A recording that is not preloaded (as
    :func:`read_ephys` returns it) is processed a few channels at a time, so memory stays
    bounded for long recordings; the result is the same as for the whole recording at once.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        The recording, e.g. from :func:`read_ephys`.
    modality : {'eeg', 'meg'}
        Which data channels to keep: EEG, or MEG magnetometers and gradiometers (reference
        sensors dropped). Channels marked bad are dropped.
    l_freq_hz : float | None
        High-pass edge in Hz (None: no high-pass).
    h_freq_hz : float | None
        Low-pass edge in Hz (None: no low-pass). Clamped to 0.9 x the Nyquist frequency of
        the lower of the original and the new sampling rate.
    sfreq_hz : float | None
        New sampling rate in Hz (None or equal to the current rate: no resampling).
    n_jobs : int
        Parallel jobs for filtering and resampling.
    max_load_mb : float
        For a recording that is not preloaded: at most this many MB (10^6 bytes) of
        full-rate float64 data are loaded at a time (whole channels; at least one channel).
        The peak memory of this function is a small multiple of this (MNE's filter and FFT
        work arrays), plus the output. Ignored when ``raw`` is preloaded (its data are
        processed at once, as by MNE).
    mr_artifacts : samba_bids.ephys.artifacts.MRArtifactRemoval | None
        MR artefacts to remove (:func:`~.artifacts.plan_mr_artifacts`): the gradient
        artefact, then the pulse artefact, from each channel group at the recording's
        sampling rate before the band-pass. Its quality-control figures are
        filled in as the groups pass. None: nothing removed.

    Returns
    -------
    mne.io.BaseRaw
        Preloaded copy, shape (n_channels, n_times) at ``sfreq_hz``; data in SI units (V, T,
        T/m). Annotations (events, volume triggers) are kept, onsets in s. EEG has an
        average-reference projector (not applied to the data; the inverse applies it).

    Raises
    ------
    DataError
        If fewer than 2 good channels of the modality remain, a channel holds NaN or infinite
        values, or all channels are flat (zero variance).
    UsageError
        If ``modality`` is not ``'eeg'`` or ``'meg'``, or ``max_load_mb`` is not positive.

    Notes
    -----
    Follows :meth:`mne.io.Raw.filter` (FIR, ``fir_design='firwin'``, MNE's default
    transition bands), :meth:`mne.io.Raw.resample` and
    :meth:`mne.io.Raw.set_eeg_reference` with ``projection=True``.

    Memory: filtering and FFT resampling act on each channel separately, so a recording
    that is not preloaded is split into groups of whole channels
    (``max_load_mb / (8 bytes x n_times)`` channels each). Each group is loaded alone (only
    its channels are read from the file), filtered and resampled by MNE's own methods, and the
    resampled groups are joined (:meth:`mne.io.Raw.add_channels`, with the info of the whole).
    The output equals the whole-recording result (identical on the real test recordings),
    edge samples included; splitting in time instead would not, because FFT resampling is
    global in time. The price is one read of the file per group (8 groups for 60 min of 64
    channels at 1 kHz) plus one for the value checks. Measured by
    ``benchmarks/bench_memory.py`` (60 min, 64 channels, 1 kHz): the electrophysiology stage
    (read, this function, source parcels) peaks at 0.93 GB RSS instead of 5.6 GB. Memory
    still grows with the duration through the outputs (at 100 Hz) and through the group
    size, which is at least one channel (29 MB of float64 per channel-hour at 1 kHz).
    """
    check_option("modality", modality, ("eeg", "meg"))
    if not max_load_mb > 0:
        raise UsageError(f"max_load_mb must be positive, got {max_load_mb!r}.")
    name = _recording_name(raw)
    picks = _modality_picks(raw.info, modality)
    if len(picks) < 2:
        raise DataError(
            f"{name}: {len(picks)} good {modality.upper()} channel(s) left after dropping "
            f"bad channels ({', '.join(raw.info['bads']) or 'none marked'}); source imaging "
            "needs at least 2: review the 'status' column of channels.tsv."
        )
    # Not preloaded: nothing is read and no data are copied here.
    out = raw.copy().pick(picks)
    _check_values(out, name)  # streams the file in chunks when not preloaded

    orig_sfreq = out.info["sfreq"]
    new_sfreq = orig_sfreq if sfreq_hz is None else float(sfreq_hz)
    if h_freq_hz is not None:
        limit = 0.9 * min(orig_sfreq, new_sfreq) / 2.0
        if h_freq_hz > limit:
            logger.warning(
                "%s: low-pass %.1f Hz lowered to %.1f Hz (below the Nyquist frequency at "
                "%g Hz).",
                name,
                h_freq_hz,
                limit,
                min(orig_sfreq, new_sfreq),
            )
            h_freq_hz = limit

    def band_pass(part: mne.io.BaseRaw) -> None:
        if l_freq_hz is not None or h_freq_hz is not None:
            part.filter(l_freq_hz, h_freq_hz, n_jobs=n_jobs, verbose=False)

    def filter_resample(part: mne.io.BaseRaw) -> mne.io.BaseRaw:
        part.load_data(verbose=False)
        if mr_artifacts is not None:
            mr_artifacts.remove_gradient(part)
        band_pass(part)
        if mr_artifacts is not None:
            mr_artifacts.remove_pulse(part, band_pass)
        if new_sfreq != orig_sfreq:
            part.resample(new_sfreq, n_jobs=n_jobs, verbose=False)
        return part

    groups = _channel_groups(out, max_load_mb)
    if len(groups) == 1:
        out = filter_resample(out)
    else:
        logger.info("%s: %d channels processed in %d groups of up to %d (%.0f MB each)",
                    name, len(out.ch_names), len(groups), len(groups[0]), max_load_mb)
        parts = [filter_resample(out.copy().pick(group)) for group in groups]
        out = _join_channel_groups(parts, out.info)
        del parts
    if modality == "eeg":
        out.set_eeg_reference("average", projection=True, verbose=False)
    logger.info(
        "%s: %d %s channels, band-pass %s-%s Hz, %g Hz, %d samples",
        name,
        len(out.ch_names),
        modality.upper(),
        l_freq_hz,
        None if h_freq_hz is None else round(h_freq_hz, 2),
        out.info["sfreq"],
        out.n_times,
    )
    return out


def _channel_groups(raw: mne.io.BaseRaw, max_load_mb: float) -> list[np.ndarray]:
    """Channel indices split so that each group's float64 data fit in ``max_load_mb``.

    A preloaded recording is one group (its data are in memory already).
    """
    n_ch = len(raw.ch_names)
    if raw.preload:
        return [np.arange(n_ch)]
    per_channel = 8.0 * raw.n_times
    size = int(min(n_ch, max(1, max_load_mb * 1e6 // per_channel)))
    return [np.arange(start, min(start + size, n_ch)) for start in range(0, n_ch, size)]


def _join_channel_groups(parts: list[mne.io.BaseRaw], info: mne.Info) -> mne.io.BaseRaw:
    """Join preprocessed channel groups into one recording with the info of the whole.

    :meth:`mne.io.Raw.add_channels` joins the data (and the calibration and read bookkeeping)
    but merges the groups' infos by concatenating their lists (``proc_history`` of
    Maxwell-filtered MEG comes out once per group, and MNE's rank estimation reads it). The
    joined recording therefore gets ``info`` (that of all channels before preprocessing) with
    the sampling rate and band edges that filtering and resampling set on every group.
    """
    out = parts[0]
    processed = out.info
    out.add_channels(parts[1:])
    info = info.copy()
    with info._unlock():
        for key in ("sfreq", "lowpass", "highpass"):
            info[key] = processed[key]
    info._check_consistency()
    out.info = info
    return out


def _check_values(raw: mne.io.BaseRaw, name: str) -> None:
    """Raise DataError for non-finite values or an all-flat recording (streams in chunks)."""
    n_ch = len(raw.ch_names)
    finite = np.ones(n_ch, bool)
    lo = np.full(n_ch, np.inf)
    hi = np.full(n_ch, -np.inf)
    for start in range(0, raw.n_times, _CHUNK_SAMPLES):
        block = raw.get_data(start=start, stop=min(start + _CHUNK_SAMPLES, raw.n_times))
        ok = np.isfinite(block)
        finite &= ok.all(axis=1)
        block = np.where(ok, block, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
            lo = np.fmin(lo, np.nanmin(block, axis=1))
            hi = np.fmax(hi, np.nanmax(block, axis=1))
    if not finite.all():
        bad = [raw.ch_names[i] for i in np.flatnonzero(~finite)]
        raise DataError(
            f"{name}: channel(s) {', '.join(bad)} contain NaN or infinite values; mark them "
            "bad in channels.tsv (status 'bad') or repair the recording."
        )
    flat = ~(hi > lo)
    if flat.all():
        raise DataError(
            f"{name}: all {n_ch} channels are flat (zero variance); the recording holds no "
            "signal: check the file and its channel units."
        )
    if flat.any():
        logger.warning(
            "%s: flat channel(s) %s; consider marking them bad in channels.tsv.",
            name,
            ", ".join(raw.ch_names[i] for i in np.flatnonzero(flat)),
        )
