"""Put electrophysiology and BOLD on one clock; segments per volume; blocked train/val/test split.

Time convention (used by the model): segment ``v`` is the electrophysiology during volume ``v``,
from its onset ``t_v`` to ``t_v + TR``; predicted BOLD of volume ``v`` is
``sum_k h(k TR) drive[v - k]`` for ``k = 0 .. K`` with ``K = ceil(hrf_support / TR)``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from .errors import DataError

logger = logging.getLogger(__name__)


def volume_onsets(raw, n_volumes, tr_s, *, trigger=None, source="the recording"):
    """Onset of each BOLD volume on the electrophysiology clock, in s from the first sample.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        The (preprocessed) recording; its annotations hold the volume triggers.
    n_volumes : int | None
        Volumes in the BOLD run. None for a recording without BOLD: every trigger is a
        volume, or without a trigger one volume every TR from the first sample for as long
        as the recording lasts.
    tr_s : float
        Repetition time, in s.
    trigger : str | None
        Annotation description marking each volume onset, e.g. ``"Scanner/Scan Start"`` as
        MNE reads BrainVision ``.vmrk`` markers; the part after the last ``/`` (``"Scan Start"``)
        also matches. None assumes both recordings start at t = 0 and logs it.
    source : str
        Name of the recording, for error messages.

    Returns
    -------
    onsets_s : ndarray, shape (n_volumes,)
        Onsets in s relative to ``raw.times[0]``.
    how : str
        ``"volume triggers 'X'"`` or ``"shared start at t = 0 (assumed)"``, for sidecars.

    Raises
    ------
    DataError
        If the trigger is absent or its count differs from ``n_volumes``.
    """
    if trigger is None:
        if n_volumes is None:
            n_volumes = int(np.floor(raw.n_times / raw.info["sfreq"] / float(tr_s) + 1e-9))
            logger.info("%s: no --volume-trigger given; %d volumes of %.3g s from the "
                        "recording's first sample.", source, n_volumes, tr_s)
            return (np.arange(n_volumes) * float(tr_s),
                    f"one volume every {float(tr_s):g} s from the recording's start (no BOLD "
                    "recorded)")
        logger.warning(
            "%s: no --volume-trigger given; assuming the recording and the BOLD run both start "
            "at t = 0 with one volume every %.3g s.", source, tr_s,
        )
        return np.arange(n_volumes) * float(tr_s), "shared start at t = 0 (assumed)"
    onsets = annotation_onsets(raw, trigger)
    if not len(onsets):
        present = sorted(set(np.asarray(raw.annotations.description).tolist()))
        shown = ", ".join(present[:10]) + (" ..." if len(present) > 10 else "")
        raise DataError(
            f"{source}: no annotation named {trigger!r} (present: {shown or 'none'}); "
            "pass the volume marker's description with --volume-trigger."
        )
    if n_volumes is None:
        return onsets, f"volume triggers {trigger!r}"
    if len(onsets) != n_volumes:
        raise DataError(
            f"{source}: {len(onsets)} {trigger!r} volume triggers but the BOLD run has "
            f"{n_volumes} volumes; trim dummy-scan markers or volumes so that they match."
        )
    return onsets, f"volume triggers {trigger!r}"


def annotation_onsets(raw, description):
    """Onsets of the annotations named ``description``, in s from the first sample.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        The recording.
    description : str
        The annotation's description, e.g. ``"Response/R128"`` or ``"Scanner/Scan Start"`` as
        MNE reads BrainVision ``.vmrk`` markers; the part after the last ``/`` (``"R128"``)
        also matches when no description matches whole.

    Returns
    -------
    ndarray, shape (n_markers,)
        Sorted onsets in s relative to ``raw.times[0]`` (empty when there is no such marker).
    """
    descriptions = np.asarray(raw.annotations.description)
    keep = descriptions == description
    if not keep.any():
        # BrainVision markers read by MNE are "Type/Description" (e.g. "Scanner/Scan Start")
        keep = np.array([d.rsplit("/", 1)[-1].strip() == description.strip()
                         for d in descriptions], dtype=bool)
    # MNE stores annotation onsets on the recording's clock, which starts at ``first_time``
    # (first_samp / sfreq): relative to meas_date when it is set, and shifted by first_time
    # when it is not (annotations set without orig_time are synced to the first sample);
    # either way the onset from the first sample is onset - first_time.
    return np.sort(np.asarray(raw.annotations.onset, float)[keep] - raw.first_time)


def segment_ephys(data, sfreq_hz, onsets_s, tr_s, *, source="the recording"):
    """Cut parcel time courses into one segment per volume.

    Parameters
    ----------
    data : ndarray, shape (n_parcels, n_times)
        Source-parcel time courses.
    sfreq_hz : float
        Their sampling rate, in Hz.
    onsets_s : ndarray, shape (n_volumes,)
        Volume onsets, in s (from :func:`volume_onsets`).
    tr_s : float
        Repetition time, in s.
    source : str
        Name of the recording, for messages.

    Returns
    -------
    segments : ndarray, shape (n_parcels, n_volumes, n_samples)
        ``n_samples = round(tr_s * sfreq_hz)`` samples from each onset; samples outside the
        recording are 0.
    covered : ndarray of bool, shape (n_volumes,)
        Whether the whole segment lies inside the recording.

    Raises
    ------
    DataError
        If fewer than half of the volumes are covered by the recording.
    """
    n_samples = int(round(tr_s * sfreq_hz))
    start = np.round(np.asarray(onsets_s) * sfreq_hz).astype(int)
    index = start[:, None] + np.arange(n_samples)[None, :]  # (V, S)
    inside = (index >= 0) & (index < data.shape[1])
    segments = np.where(inside[None], data[:, np.clip(index, 0, data.shape[1] - 1)], 0.0)
    covered = inside.all(axis=1)
    n_out = int((~covered).sum())
    if n_out > len(covered) / 2:
        raise DataError(
            f"{source} ({data.shape[1] / sfreq_hz:.1f} s) covers only {len(covered) - n_out} of "
            f"{len(covered)} volumes; check --volume-trigger or that the runs belong together."
        )
    if n_out:
        logger.warning("%s: %d volume(s) fall partly outside the recording; their "
                       "electrophysiology is zero-filled.", source, n_out)
    return segments, covered


@dataclass
class Split:
    """Contiguous train / validation / test blocks of volumes with gaps between them.

    Attributes
    ----------
    train, validation, test : ndarray of int
        0-based volume indices of each block, in run order.
    history : int
        ``K = ceil(hrf_support_s / tr_s)``: volumes of electrophysiology before a target that
        reach it through the HRF; also the gap between blocks.
    window_trs : int
        Targets per window (the configured value, shortened to fit the smallest block).
    tr_s : float
        Repetition time, in s.
    """

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    history: int
    window_trs: int
    tr_s: float

    def to_sidecar(self) -> dict:
        """Block indices for sidecars (``TrainVolumes``, ``ValidationVolumes``, ``TestVolumes``)."""
        return {
            "TrainVolumes": self.train.tolist(),
            "ValidationVolumes": self.validation.tolist(),
            "TestVolumes": self.test.tolist(),
            "GapVolumes": self.history,
        }


def blocked_split(n_volumes, tr_s, *, hrf_support_s=32.0, train_fraction=0.7,
                  validation_fraction=0.15, window_trs=15, source="the run") -> Split:
    """Split a run into train, validation and test blocks in time, separated by gaps.

    The gaps are ``K = ceil(hrf_support_s / tr_s)`` volumes, so no BOLD target of one block
    depends (through the HRF) on electrophysiology that is a target period of another
    (DESIGN.md, "Splits"; NeuroBOLT uses the same idea).

    Parameters
    ----------
    n_volumes : int
        Volumes in the run.
    tr_s : float
        Repetition time, in s.
    hrf_support_s : float
        HRF support, in s.
    train_fraction, validation_fraction : float
        Shares of the volumes left after the two gaps; the test block gets the rest.
    window_trs : int
        Requested targets per window.
    source : str
        Name of the run, for messages.

    Returns
    -------
    Split

    Raises
    ------
    DataError
        If the run is too short to give every block at least 2 volumes.
    """
    history = int(math.ceil(hrf_support_s / tr_s - 1e-9))
    usable = n_volumes - 2 * history
    n_train = int(math.floor(usable * train_fraction))
    n_val = int(math.floor(usable * validation_fraction))
    n_test = usable - n_train - n_val
    if min(n_train, n_val, n_test) < 2:
        need = 2 * history + int(math.ceil(2 / min(validation_fraction,
                                                    1 - train_fraction - validation_fraction)))
        raise DataError(
            f"{source}: {n_volumes} volumes (TR {tr_s:g} s) are too few for train, validation "
            f"and test blocks with {history}-volume gaps ({hrf_support_s:g} s of HRF); "
            f"about {need} volumes are needed."
        )
    train = np.arange(0, n_train)
    validation = np.arange(n_train + history, n_train + history + n_val)
    test = np.arange(validation[-1] + 1 + history, n_volumes)
    window = int(min(window_trs, n_val, n_test, n_train))
    return Split(train=train, validation=validation, test=test, history=history,
                 window_trs=window, tr_s=float(tr_s))


def fitting_split(n_volumes, tr_s, *, hrf_support_s=32.0, train_fraction=0.7,
                  validation_fraction=0.15, window_trs=15, source="the run") -> Split:
    """Split a run used only for training into a train block and a validation block.

    For a run that trains a model scored elsewhere (the other runs' folds of cross-validation
    by run, and the final model fitted on every run): the first volumes train, the last
    validate (early stopping), with a ``K``-volume gap between them, and no test block. The
    validation share is that of :func:`blocked_split` among the volumes it does not test:
    ``validation_fraction / (train_fraction + validation_fraction)``.

    Parameters
    ----------
    n_volumes : int
        Volumes in the run.
    tr_s : float
        Repetition time, in s.
    hrf_support_s : float
        HRF support, in s (the gap is ``K = ceil(hrf_support_s / tr_s)`` volumes).
    train_fraction, validation_fraction : float
        As :func:`blocked_split`.
    window_trs : int
        Requested targets per window.
    source : str
        Name of the run, for messages.

    Returns
    -------
    Split
        ``test`` is empty.

    Raises
    ------
    DataError
        If the run is too short to give both blocks at least 2 volumes.
    """
    history = int(math.ceil(hrf_support_s / tr_s - 1e-9))
    usable = n_volumes - history
    share = validation_fraction / (train_fraction + validation_fraction)
    n_val = int(math.floor(usable * share))
    n_train = usable - n_val
    if min(n_train, n_val) < 2:
        raise DataError(
            f"{source}: {n_volumes} volumes (TR {tr_s:g} s) are too few for train and "
            f"validation blocks with a {history}-volume gap ({hrf_support_s:g} s of HRF)."
        )
    train = np.arange(0, n_train)
    validation = np.arange(n_train + history, n_volumes)
    return Split(train=train, validation=validation, test=np.arange(0), history=history,
                 window_trs=int(min(window_trs, n_val, n_train)), tr_s=float(tr_s))


def held_out_split(n_volumes, tr_s, *, hrf_support_s=32.0, window_trs=15) -> Split:
    """A run held out whole: every volume is a test volume (cross-validation by run).

    Parameters
    ----------
    n_volumes : int
        Volumes in the run.
    tr_s : float
        Repetition time, in s.
    hrf_support_s : float
        HRF support, in s (``history`` = ceil(hrf_support_s / tr_s) volumes).
    window_trs : int
        Requested targets per window.

    Returns
    -------
    Split
        ``train`` and ``validation`` empty, ``test`` every volume.
    """
    history = int(math.ceil(hrf_support_s / tr_s - 1e-9))
    return Split(train=np.arange(0), validation=np.arange(0), test=np.arange(n_volumes),
                 history=history, window_trs=int(min(window_trs, n_volumes)),
                 tr_s=float(tr_s))


def standardize(values, train, *, axis=-1):
    """Z-score with the mean and standard deviation of the training volumes only.

    Parameters
    ----------
    values : ndarray, shape (n_parcels, n_volumes)
        Signals.
    train : ndarray of int
        Training volume indices.

    Returns
    -------
    z : ndarray, shape (n_parcels, n_volumes)
    mean, std : ndarray, shape (n_parcels, 1)
        The statistics used (std of a constant parcel is set to 1).
    """
    train_values = np.take(values, train, axis=axis)
    mean = train_values.mean(axis=axis, keepdims=True)
    std = train_values.std(axis=axis, keepdims=True)
    std = np.where(std > 0, std, 1.0)
    return (values - mean) / std, mean, std
